"""The pipeline's steps. Each draws its random parameters once, from torch's global RNG (so
torch.manual_seed and DataLoader worker seeding reproduce them), and applies them to the
image and its mask alike through the kernels."""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from lesion_core.i18n import N_
from lesion_core.transforms.kernels import (
    SKIN_TONES,
    WARP_SHRINK_MAX,
    Size,
    State,
    binary_float,
    crop_state,
    lesion_box,
    orient_state,
    resize_state,
    resized_size,
    state_size,
    with_pixels,
)
from lesion_core.transforms.lazy import (
    Warp,
    materialize,
    paint_skin,
    rotated_lesion_window,
    rotation_warp,
    warp_pixels,
    with_warp,
)


def pair(value: int | list[int]) -> Size:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


class Transform:
    """One pipeline step. ``run(state)`` draws its random parameters once, applies them to
    image and mask alike and returns (new state, the parameters it drew or computed)."""

    needs_mask = False
    # Whether run() accepts a state whose image still owes a deferred warp (and composes with
    # it), and a pending orientation (flips, quarter turns); the pipeline applies them before
    # any other step.
    takes_warp = False
    takes_orient = False

    def run(self, state: State) -> tuple[State, dict]:
        raise NotImplementedError

    def output_size(self, in_size: Size | None) -> Size | None:
        """The output (h, w) when known without running, given the input size (or None)."""
        return None

    @staticmethod
    def check(params: dict) -> None:
        """Raise ValueError when parameters are individually valid but inconsistent together."""

    def area_scale(self, in_size: Size, out_size: Size, params: dict) -> float:
        """How much larger one input pixel is in the output (its area): 1 for crops, flips and
        rotations; the resizing steps say otherwise. What lesion_kept divides the lesion by."""
        return 1.0


class CropByMask(Transform):
    """Crop to the lesion's bounding box plus a border (by, bx), clamped to the image."""

    needs_mask = True

    def __init__(self, border: int | list[int]):
        self.by, self.bx = pair(border)

    def run(self, state):
        box = lesion_box(state["mask"], self.by, self.bx)
        if box is None:  # no lesion: nothing to crop to, keep the whole image
            return state, {"box": None}
        return crop_state(state, *box), {"box": box}


class RandomCrop(Transform):
    """A random (h, w) window; an image smaller than the window is first zero-padded evenly
    (mask 0 there) so every output has the requested size and batches stack."""

    takes_warp = True

    def __init__(self, size: int | list[int]):
        self.size = pair(size)

    def run(self, state):
        h, w = state_size(state)
        ch, cw = self.size
        pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
        top = int(torch.randint(h + pad_h - ch + 1, (1,))) - pad_h // 2
        left = int(torch.randint(w + pad_w - cw + 1, (1,))) - pad_w // 2
        box = [top, left, ch, cw]
        if state.get("warp") is not None:  # image and mask are cut from their sources at the end
            return with_warp(state, state["warp"].crop(*box)), {"box": box}
        # F.crop zero-fills whatever lies outside the image, which is exactly the padding.
        return crop_state(state, *box), {"box": box}

    def output_size(self, in_size):
        return self.size


class CenterCrop(Transform):
    """The central (h, w) window (zero-padded when the image is smaller)."""

    def __init__(self, size: int | list[int]):
        self.size = pair(size)

    def run(self, state):
        mask = state["mask"]
        image = F.center_crop_image(state["image"], list(self.size))
        return with_pixels(state, image, None if mask is None else F.center_crop_mask(mask, list(self.size))), {}

    def output_size(self, in_size):
        return self.size


class Rescale(Transform):
    """Resize: an int sets the shorter side (aspect ratio kept), [h, w] sets the exact size."""

    takes_warp = True

    def __init__(self, size: int | list[int]):
        self.size = [size] if isinstance(size, int) else list(size)

    def run(self, state):
        warp = state.get("warp")
        if warp is not None:
            out = resized_size(warp.size, self.size)
            # One bilinear resampling shrinks by up to 2x without visible aliasing; beyond
            # that the image is resampled now and shrunk with antialiasing.
            if min(warp.size[0] / out[0], warp.size[1] / out[1]) <= WARP_SHRINK_MAX:
                return with_warp(state, warp.resize(out)), {"size": list(out)}
            state = materialize(state)
        state = resize_state(state, self.size)
        return state, {"size": list(state_size(state))}

    def output_size(self, in_size):
        return tuple(self.size) if len(self.size) == 2 else None

    def area_scale(self, in_size, out_size, params):
        return out_size[0] * out_size[1] / (in_size[0] * in_size[1])


class RandomCenterCrop(Transform):
    """A central square crop whose side is drawn in [min_size, max_size] on every call
    (the notebook drew it once, when the pipeline was built)."""

    def __init__(self, min_size: int, max_size: int):
        self.min_size, self.max_size = min_size, max_size

    @staticmethod
    def check(params):
        if params["min_size"] > params["max_size"]:
            raise Inverted("min_size", params["min_size"], "max_size", params["max_size"])

    def run(self, state):
        side = int(torch.randint(self.min_size, self.max_size + 1, (1,)))
        state, _ = CenterCrop(side).run(state)
        return state, {"size": side}

    def output_size(self, in_size):
        return (self.min_size, self.min_size) if self.min_size == self.max_size else None


class RandomRotation(Transform):
    """Rotate by an angle drawn in [-degrees, degrees]; with expand the whole rotated image
    is kept (black corners); with crop_to_lesion the result is cropped to the rotated lesion."""

    def __init__(self, degrees: float, expand: bool, crop_to_lesion: bool):
        self.degrees, self.expand, self.crop_to_lesion = degrees, expand, crop_to_lesion
        self.needs_mask = crop_to_lesion

    # Set by Pipeline when a Rescale to this shorter side follows with only size-free steps
    # between: rotating a full-size original only to shrink it afterwards wastes ~95% of the work.
    shrink_to: int | None = None

    def run(self, state):
        angle = float(torch.empty(1).uniform_(-self.degrees, self.degrees))
        params = {"angle": angle}
        if self.shrink_to is not None:
            scale = self._prescale(state, angle)
            if scale < 0.75:
                h, w = state_size(state)
                state = resize_state(state, [max(1, round(h * scale)), max(1, round(w * scale))])
                params["prescale"] = round(scale, 4)
        mask = state["mask"]
        warp = rotation_warp(state_size(state), angle, self.expand)
        window = [0, 0, *warp.size]
        if self.crop_to_lesion:  # only the part of the canvas that can hold the lesion
            window = rotated_lesion_window(mask, warp) or window
        if mask is not None:
            mask = warp_pixels(mask, warp, window, "nearest")
        if self.crop_to_lesion:
            box = lesion_box(mask)
            if box is not None:  # canvas coordinates of the rotated lesion's tight box
                params["box"] = [box[0] + window[0], box[1] + window[1], box[2], box[3]]
                mask = F.crop_mask(mask, *box)
                window = params["box"]
            elif window != [0, 0, *warp.size]:  # no lesion on the canvas after all: keep it whole
                window = [0, 0, *warp.size]
                mask = torch.zeros(1, *warp.size, dtype=torch.uint8)
        if window != [0, 0, *warp.size]:
            warp = warp.crop(*window)
        # The image is resampled once, when a step needs its pixels (see materialize); the
        # steps after this one only move the mask's rows and columns.
        identity = Warp(1, 0, 0, 0, 1, 0, warp.size, pre=warp)
        return with_warp(state, identity, mask), params

    def _prescale(self, state: State, angle: float) -> float:
        """The factor that leaves the rotated result (the lesion's box with crop_to_lesion, else
        the canvas) about the later Rescale's side: the shrinking is done here, antialiased, and
        the rotation, resampled with that Rescale in one pass, changes the size by little."""
        h, w = state_size(state)
        if self.shrink_to >= 0.75 * math.hypot(h, w):  # no result is larger than the diagonal
            return 1.0
        theta = math.radians(angle)
        cos, sin = abs(math.cos(theta)), abs(math.sin(theta))
        if self.crop_to_lesion and state["mask"] is not None:
            t = max(1, min(h, w) // 256)  # a coarse grid of lesion points is plenty for a size
            points = torch.nonzero(state["mask"][0, ::t, ::t]).float() * t
            if points.shape[0] < 2:
                return 1.0
            y, x = points[:, 0], points[:, 1]
            c, s = math.cos(theta), math.sin(theta)
            rows, cols = x * s + y * c, x * c - y * s
            out = min(float(rows.max() - rows.min()), float(cols.max() - cols.min())) + t
        elif self.expand:
            out = min(h * cos + w * sin, h * sin + w * cos)
        else:
            out = min(h, w)
        return min(1.0, self.shrink_to / max(out, 1.0))

    def output_size(self, in_size):
        return None if self.expand or self.crop_to_lesion else in_size

    def area_scale(self, in_size, out_size, params):
        return params.get("prescale", 1.0) ** 2


class RandomFlip(Transform):
    horizontal = True  # left-right; False: top-bottom
    takes_warp = True
    takes_orient = True

    def __init__(self, p: float):
        self.p = p

    def run(self, state):
        flipped = bool(torch.rand(1) < self.p)
        if flipped:
            if state.get("warp") is not None:
                state = with_warp(state, state["warp"].flip(self.horizontal))
            else:
                state = orient_state(state, not self.horizontal, self.horizontal, False)
        return state, {"flipped": flipped}

    def output_size(self, in_size):
        return in_size


class RandomHorizontalFlip(RandomFlip):
    """Mirror left-right with probability p."""


class RandomVerticalFlip(RandomFlip):
    """Mirror top-bottom with probability p."""

    horizontal = False


class RandomRotate90(Transform):
    """Rotate by k * 90 degrees, k drawn in {0, 1, 2, 3}: exact, no interpolation, no corners."""

    takes_warp = True  # (it applies a pending warp itself, then defers the turn)
    takes_orient = True

    def run(self, state):
        k = int(torch.randint(4, (1,)))
        state = materialize(state) if state.get("warp") is not None else state
        # torch.rot90 by k over (-2, -1): flip the columns then transpose (k = 1), flip both
        # (k = 2), flip the rows then transpose (k = 3).
        if k:
            state = orient_state(state, k >= 2, k <= 2, k % 2 == 1)
        return state, {"k": k}

    def output_size(self, in_size):
        return in_size if in_size is not None and in_size[0] == in_size[1] else None


class RandomResizedCrop(Transform):
    """A random window covering scale_min..scale_max of the area with aspect ratio in
    ratio_min..ratio_max, resized to size (torchvision's draw): a cheap zoom + shift."""

    def __init__(self, size: int | list[int], scale_min: float, scale_max: float, ratio_min: float, ratio_max: float):
        self.size = pair(size)
        self._v2 = v2.RandomResizedCrop(self.size, scale=(scale_min, scale_max), ratio=(ratio_min, ratio_max))

    @staticmethod
    def check(params):
        for low, high in (("scale_min", "scale_max"), ("ratio_min", "ratio_max")):
            if params[low] > params[high]:
                raise Inverted(low, params[low], high, params[high])

    def run(self, state):
        p = _resized_crop_params(self._v2, *state_size(state))
        box = [p["top"], p["left"], p["height"], p["width"]]
        state = resize_state(crop_state(state, *box), list(self.size), leave=1)
        return state, {"box": box}

    def area_scale(self, in_size, out_size, params):
        return out_size[0] * out_size[1] / (params["box"][2] * params["box"][3])

    def output_size(self, in_size):
        return self.size


def _resized_crop_params(rrc: v2.RandomResizedCrop, height: int, width: int) -> dict:
    """rrc.make_params for an image of that size: torchvision's draw, the same calls on the
    global RNG (so the same windows for a seed), without its input inspection (~30 us)."""
    area = height * width
    log_ratio = rrc._log_ratio
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(rrc.scale[0], rrc.scale[1]).item()
        aspect_ratio = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = torch.randint(0, height - h + 1, size=(1,)).item()
            left = torch.randint(0, width - w + 1, size=(1,)).item()
            return {"top": top, "left": left, "height": h, "width": w}
    in_ratio = width / height  # torchvision's fallback: the central crop
    if in_ratio < min(rrc.ratio):
        w, h = width, int(round(width / min(rrc.ratio)))
    elif in_ratio > max(rrc.ratio):
        h, w = height, int(round(height * max(rrc.ratio)))
    else:
        w, h = width, height
    return {"top": (height - h) // 2, "left": (width - w) // 2, "height": h, "width": w}


class ColorJitter(Transform):
    """Random brightness, contrast and saturation factors in [1 - x, 1 + x], applied in that
    order to the image only (the mask is unchanged: colour does not move the lesion)."""

    _ops = {"brightness": F.adjust_brightness_image, "contrast": F.adjust_contrast_image,
            "saturation": F.adjust_saturation_image}

    def __init__(self, brightness: float, contrast: float, saturation: float):
        self.amounts = {"brightness": brightness, "contrast": contrast, "saturation": saturation}

    def run(self, state):
        image, factors = state["image"], {}
        for name, amount in self.amounts.items():
            factor = float(torch.empty(1).uniform_(max(0.0, 1 - amount), 1 + amount))
            image, factors[name] = self._ops[name](image, factor), factor
        return with_pixels(state, image, state["mask"]), factors

    def output_size(self, in_size):
        return in_size


class ShadesOfGrey(Transform):
    """Colour constancy (shades of grey): rescale the channels so that the light's colour,
    estimated as each channel's p-mean, becomes neutral grey. Evaluation applies it too.

    p = 1 is grey world, a large p approaches white patch; 6 is the usual choice for
    dermoscopy (Barata et al. 2015). The same image always gets the same correction."""

    def __init__(self, p: int):
        self.p = p

    def run(self, state):
        image = state["image"]
        # The estimate needs no more than ~64k pixels: every k-th pixel of a large image.
        k = max(1, math.isqrt(image.shape[-2] * image.shape[-1] // _GREY_SAMPLE_PIXELS))
        light = image[:, ::k, ::k].float().div_(255).pow_(self.p).mean(dim=(1, 2)).pow_(1 / self.p)
        if float(light.min()) < _GREY_DARKEST:  # a (nearly) black channel: nothing to balance
            return state, {"gain": [1.0, 1.0, 1.0]}
        # gain_c = |light| / (sqrt(3) light_c): a grey light (equal channels) gets gain 1
        gain = (light.norm() / (math.sqrt(3) * light)).clamp_(_GREY_GAIN[0], _GREY_GAIN[1])
        out = image.float().mul_(gain.view(3, 1, 1)).round_().clamp_(max=255).to(torch.uint8)
        return with_pixels(state, out, state["mask"]), {"gain": [round(float(g), 4) for g in gain]}

    def output_size(self, in_size):
        return in_size


_GREY_SAMPLE_PIXELS = 1 << 16


_GREY_DARKEST = 1 / 255  # a channel's p-mean below one level: leave the image as it is


_GREY_GAIN = (0.25, 4.0)  # the strongest correction applied to one channel


class ChangeSkin(Transform):
    """Give the skin (every pixel outside the lesion) one tone, keeping its texture."""

    needs_mask = True
    takes_warp = True

    def __init__(self, colour: list[int]):
        self.colour = tuple(colour)

    def run(self, state):
        return paint_skin(state, self.colour), {}

    def output_size(self, in_size):
        return in_size


class RandomChangeSkin(Transform):
    """Give the skin one of the notebook's 62 skin tones, keeping its texture, or keep it (1 draw in 63).

    The tones are SKIN_TONES; its first entry, (0, 0, 0), means "keep the original skin"."""

    needs_mask = True

    takes_warp = True

    def run(self, state):
        tone = SKIN_TONES[int(torch.randint(len(SKIN_TONES), (1,)))]
        if tone != SKIN_TONES[0]:
            state = paint_skin(state, tone)
        return state, {"tone": list(tone)}

    def output_size(self, in_size):
        return in_size


class ToTensor(Transform):
    """uint8 3xHxW image -> float32 in [0, 1]; mask -> float32 1xHxW {0, 1} (plain tensors)."""

    # (255 mean, 255 std) per channel when Pipeline fuses the Normalize that follows into this
    # step: two passes over the image instead of four; dividing (not multiplying by 1/x) keeps
    # the ends of the range exact, so 255 with mean = std = 0.5 gives 1.0, not 1.0000001.
    fused_normalize: tuple[torch.Tensor, torch.Tensor] | None = None

    def run(self, state):
        new = dict(state)
        image = new["image"]
        # Per-channel arithmetic on channels-last memory (a crop of the HxWx3 input, a warp's
        # output) runs 5x slower than on planes: one uint8 copy into planes first pays for
        # itself; numpy's copy takes a third of the time of torch's contiguous() here.
        if image.stride(0) == 1:
            image = torch.from_numpy(np.ascontiguousarray(image.numpy()))
        image = image.float()
        if self.fused_normalize is None:
            new["image"] = image.div_(255)
        else:
            mean, std = self.fused_normalize
            new["image"] = image.sub_(mean).div_(std)
        if new["mask"] is not None:
            new["mask"] = binary_float(new["mask"])
        return new, {}

    def output_size(self, in_size):
        return in_size


class Normalize(Transform):
    """(image - mean) / std per channel, on the float tensor from ToTensor."""

    fused = False  # set by Pipeline when the ToTensor before it already normalised

    def __init__(self, mean: list[float], std: list[float]):
        self.mean, self.std = list(mean), list(std)

    def fuse_into(self, to_tensor: ToTensor) -> None:
        """Let to_tensor normalise as it converts: (x - 255 mean) / (255 std)."""
        to_tensor.fused_normalize = tuple(255 * torch.tensor(v, dtype=torch.float32).view(3, 1, 1)
                                          for v in (self.mean, self.std))
        self.fused = True

    def run(self, state):
        if self.fused:
            return state, {}
        new = dict(state)
        new["image"] = F.normalize_image(state["image"], self.mean, self.std)
        return new, {}

    def output_size(self, in_size):
        return in_size


class Inverted(ValueError):
    """A check's "a parameter is larger than its upper bound", its values kept for _check_step."""

    def __init__(self, low: str, low_value, high: str, high_value):
        self.values = {"low": low, "low_value": low_value, "high": high, "high_value": high_value}
        super().__init__(N_("{low} ({low_value}) is larger than {high} ({high_value})").format(**self.values))
