"""The lesion crop inside an exported graph: image and mask in, the model's input window out.

A lesion-crop run's evaluation pipeline starts CropByMask(border) and then resizes and crops
what is left: CropByMask -> Rescale(shorter side S) -> CenterCrop(size), as eval_spec derives
it from the notebook's recipe, or CropByMask -> Rescale([h, w]), or CropByMask -> CenterCrop.
The crop's size depends on the mask, so the graph never materialises it: it computes, per
image and per axis, the weights that take the source pixels straight to the static output,
as the Python pipeline would (lesion_core.transforms):

- the box: the rows and columns where the mask is non-zero, grown by the border and clamped
  to the image (kernels.lesion_box); an empty mask keeps the whole image;
- the resize: torchvision's size (shorter side S, the longer side floor(S * long / short)),
  the every-k-th pixel pick of a shrink by 4x or more (kernels.resize_state, leave 2), then
  torch's antialiased bilinear weights (a triangle as wide as the shrink), rounded to uint8
  as the pipeline's uint8 resize is;
- the centre crop: torchvision's offset (half-to-even rounding), zero where it pads.

The graph reproduces torch's uint8 resize too: its int16 fixed-point weights (as many bits as
keep twice the largest weight under 2^15) and the rounding to uint8 between the horizontal and
the vertical pass, which is what torch runs on x86 CPUs with AVX2; there the model's input is
the same, pixel for pixel (measured on real ISIC images, 256 to 3,328 px). Where torch resizes
uint8 otherwise (its generic kernel), a pixel may differ by one level: CROP_TOLERANCE allows for it.
"""

from __future__ import annotations

import torch
from torch import nn

from lesion_core.errors import ModelError
from lesion_core.i18n import N_

# Largest allowed |exported - predict| for a lesion-crop run: room for one uint8 level of a pixel
# here and there where torch does not resize with the kernel reproduced here (see above).
# Measured where it does: see the README's Export section (under 1e-6).
CROP_TOLERANCE = 1e-3


def centre_offset(extra: torch.Tensor) -> torch.Tensor:
    """torchvision's centre-crop offset for an image `extra` pixels larger than the window
    (int64 tensor): round(extra / 2) half-to-even, and -((-extra) // 2) where it pads."""
    half = torch.div(extra, 2, rounding_mode="floor")
    grown = half + torch.remainder(extra, 2) * torch.remainder(half, 2)
    padded = -torch.div(-extra, 2, rounding_mode="floor")
    return torch.where(extra >= 0, grown, padded)


def lesion_bounds(mask: torch.Tensor, axis: int, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, end) int64 (N,) of the rows (axis 1) or columns (axis 2) where a mask (N, H, W)
    is non-zero, grown by border, clamped; the whole axis where the mask is empty."""
    full = mask.shape[axis]
    hit = mask.amax(dim=3 - axis) > 0  # (N, full)
    index = torch.arange(full, device=mask.device).unsqueeze(0)
    first = torch.where(hit, index, torch.full_like(index, full)).amin(dim=1)
    last = torch.where(hit, index + 1, torch.zeros_like(index)).amax(dim=1)
    empty = last == 0
    start = torch.where(empty, torch.zeros_like(first), (first - border).clamp(min=0))
    end = torch.where(empty, torch.full_like(last, full), (last + border).clamp(max=full))
    return start, end


def axis_weights(full: int, start: torch.Tensor, length: torch.Tensor, resized: torch.Tensor, offset: torch.Tensor,
                 out: int, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights float32 (N, out, full), scale float32 (N, 1, 1)): row i holds the weights of
    the source pixels that make output pixel i, i.e. pixel offset + i of the crop [start, start
    + length) resized to `resized` pixels (every step-th pixel first) by torch's antialiased
    bilinear resize in uint8: its weights, in the fixed point it turns them into (integers, to
    be divided by scale); zero rows where the centre crop pads."""
    picked = torch.div(length - torch.div(step, 2, rounding_mode="floor") + step - 1, step, rounding_mode="floor")
    ratio = (picked.double() / resized.double()).unsqueeze(1).unsqueeze(2)  # (N, 1, 1), as torch: in double
    support = ratio.clamp(min=1.0)
    window = offset.unsqueeze(1) + torch.arange(out, device=start.device).unsqueeze(0)  # (N, out) resized indices
    # torch's fixed point depends on the largest weight of the whole resize: the edge rows, which
    # the centre crop may drop, weigh most
    row = torch.cat([window, torch.zeros_like(offset).unsqueeze(1), (resized - 1).unsqueeze(1)], dim=1)
    centre = ratio * (row.double().unsqueeze(2) + 0.5)  # in the picked pixels' coordinates
    from_start = torch.arange(full, device=start.device).unsqueeze(0) - start.unsqueeze(1) \
        - torch.div(step, 2, rounding_mode="floor").unsqueeze(1)  # (N, full)
    picked_index = torch.div(from_start, step.unsqueeze(1), rounding_mode="floor")
    taken = (torch.remainder(from_start, step.unsqueeze(1)) == 0) & (from_start >= 0) \
        & (picked_index < picked.unsqueeze(1))
    distance = (picked_index.double().unsqueeze(1) + 0.5 - centre).abs() / support  # (N, out + 2, full)
    weights = (1.0 - distance).clamp(min=0.0) * taken.unsqueeze(1).double()
    weights = weights / weights.sum(dim=2, keepdim=True).clamp(min=1e-12)
    # torch's int16 weights: the most bits (up to 22) that keep 2 x the largest weight under 2^15
    largest = weights.amax(dim=(1, 2)).unsqueeze(1)  # (N, 1)
    bits = (torch.floor(0.5 + largest * torch.pow(2.0, torch.arange(1, 23, device=start.device).double()))
            < 32768).sum(dim=1)
    scale = torch.pow(2.0, bits.double()).unsqueeze(1).unsqueeze(2)
    fixed = torch.floor(weights[:, :out] * scale + 0.5)
    inside = ((window >= 0) & (window < resized.unsqueeze(1))).unsqueeze(2)
    return fixed * inside.double(), scale


class LesionWindow(nn.Module):
    """(image float (N, 3, H, W) in 0-255, mask uint8 (N, H, W)) -> float (N, 3, h, w) in
    0-255: CropByMask(border), then an optional Rescale (shorter side, or [h, w]) and an
    optional CenterCrop, in one resampling with the weights of axis_weights."""

    def __init__(self, border: tuple[int, int], shorter: int = 0, exact: tuple[int, int] = (0, 0),
                 crop: tuple[int, int] = (0, 0)):
        super().__init__()
        self.by, self.bx = int(border[0]), int(border[1])
        self.shorter = int(shorter)  # Rescale(int); 0: none
        self.exact_h, self.exact_w = int(exact[0]), int(exact[1])  # Rescale([h, w]); 0: none
        self.crop_h, self.crop_w = int(crop[0]), int(crop[1])  # CenterCrop; 0: none
        self.out_h = self.crop_h or self.exact_h
        self.out_w = self.crop_w or self.exact_w
        self.resizes = self.shorter > 0 or self.exact_h > 0

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        top, bottom = lesion_bounds(mask, 1, self.by)
        left, right = lesion_bounds(mask, 2, self.bx)
        h, w = bottom - top, right - left
        if self.shorter > 0:  # torchvision's size: the shorter side S, the other floor(S * long / short)
            short = torch.minimum(h, w)
            new_h, new_w = torch.div(self.shorter * h, short, rounding_mode="floor"), \
                torch.div(self.shorter * w, short, rounding_mode="floor")
        elif self.exact_h > 0:
            new_h, new_w = torch.full_like(h, self.exact_h), torch.full_like(w, self.exact_w)
        else:
            new_h, new_w = h, w
        if self.resizes:  # kernels.resize_state: a shrink by 4x or more keeps every k-th pixel first
            factor = torch.minimum(h.double() / new_h.double(), w.double() / new_w.double())
            step = torch.where(factor >= 4.0, torch.floor(factor / 2.0), torch.ones_like(factor)).long()
        else:
            step = torch.ones_like(h)
        off_h = centre_offset(new_h - self.crop_h) if self.crop_h > 0 else torch.zeros_like(h)
        off_w = centre_offset(new_w - self.crop_w) if self.crop_w > 0 else torch.zeros_like(w)
        rows, row_scale = axis_weights(image.shape[2], top, h, new_h, off_h, self.out_h, step)  # (N, out_h, H)
        cols, col_scale = axis_weights(image.shape[3], left, w, new_w, off_w, self.out_w, step)  # (N, out_w, W)
        # torch's uint8 resize: the horizontal pass in fixed point, rounded to uint8, then the
        # vertical one; in float64, where the integer sums (up to 2^30) are exact
        x = torch.matmul(image.double(), cols.unsqueeze(1).transpose(2, 3))  # (N, 3, H, out_w)
        x = torch.floor(x / col_scale.unsqueeze(1) + 0.5).clamp(0.0, 255.0)
        x = torch.matmul(rows.unsqueeze(1), x)  # (N, 3, out_h, out_w)
        return torch.floor(x / row_scale.unsqueeze(1) + 0.5).clamp(0.0, 255.0).float()


def lesion_window(steps: list[dict]) -> tuple[LesionWindow | None, list[dict]]:
    """(the graph module of a pipeline's leading CropByMask with the Rescale and CenterCrop it
    absorbs, the steps left to run on its fixed-size output), or (None, steps) when the
    pipeline does not crop to the lesion; ModelError where the crop cannot be exported."""
    names = [s["name"] for s in steps]
    if "CropByMask" not in names:
        return None, steps
    if names[0] != "CropByMask" or names.count("CropByMask") > 1:
        raise ModelError(N_(
            "the run's evaluation pipeline crops to the lesion after other steps, which cannot be exported "
            "(export supports one CropByMask step, first)"))
    border = steps[0]["params"]["border"]
    border = (border, border) if isinstance(border, int) else tuple(border)
    rest, shorter, exact, crop = steps[1:], 0, (0, 0), (0, 0)
    if rest and rest[0]["name"] == "Rescale":
        size = rest.pop(0)["params"]["size"]
        shorter, exact = (size, (0, 0)) if isinstance(size, int) else (0, tuple(size))
    if rest and rest[0]["name"] == "CenterCrop":
        size = rest.pop(0)["params"]["size"]
        crop = (size, size) if isinstance(size, int) else tuple(size)
    if crop == (0, 0) and exact == (0, 0):
        raise ModelError(N_(
            "the run's evaluation pipeline crops to the lesion and then sets no fixed size (a CenterCrop "
            "or a Rescale to [h, w] right after the CropByMask), which cannot be exported"))
    return LesionWindow(border, shorter, exact, crop), rest
