"""Joint image+mask augmentations: transforms, skin tones, registry, spec <-> pipeline.

A pipeline is data: a JSON list of steps ``{"name": ..., "params": {...}}``. ``REGISTRY``
describes every step and its parameters (type, default, range, help) so the page can draw
widgets, the CLI can read a pipeline from a file and a run can store the exact pipeline.

Each step draws its random parameters once (from torch's global RNG, so ``torch.manual_seed``
and DataLoader worker seeding reproduce them) and applies them to the image and its mask
alike. Inside a pipeline the image is a uint8 3xHxW tensor and the mask a uint8 1xHxW tensor
(non-zero = lesion; {0, 1} again on the way out); each step calls torchvision v2's kernels by
kind, ``*_image`` for the image and ``*_mask`` for the mask
(nearest interpolation, so masks stay binary). Calling the kernels directly, rather than
dispatching on ``tv_tensors`` wrappers, saves about a third of the time of a 224-px chain.
A rotation defers its resampling: the flips, skin tone, rescale and crop after it compose with
it, and the image is sampled once, at the final size, by OpenCV's warpAffine (see "deferred
warps"); quarter turns and
flips are applied in one copy (see "deferred turns"). Samples enter and leave as numpy (image
uint8 (H, W, 3), mask uint8 (H, W) in {0, 1} or None) unless the pipeline ends in
ToTensor(+Normalize).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from torchvision.utils import make_grid

from lesion_core.errors import TransformError
from lesion_core.i18n import N_

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The notebook's palette, in its order. (0, 0, 0) means "keep the original skin".
SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (141, 85, 36), (198, 134, 66), (224, 172, 105), (241, 194, 125),
    (255, 219, 172), (143, 91, 72), (128, 81, 64), (114, 72, 55), (99, 62, 47),
    (84, 53, 38), (255, 224, 189), (255, 205, 148), (234, 192, 134), (255, 173, 96),
    (255, 227, 159), (244, 204, 199), (247, 213, 208), (255, 230, 226), (255, 238, 231),
    (255, 231, 223), (250, 219, 208), (235, 204, 171), (210, 153, 108), (195, 124, 77),
    (182, 107, 62), (142, 75, 50), (244, 194, 194), (250, 235, 230), (244, 217, 210),
    (244, 208, 205), (219, 173, 146), (230, 192, 172), (239, 212, 200), (235, 201, 197),
    (227, 186, 186), (204, 154, 139), (212, 169, 156), (220, 183, 173), (227, 198, 190),
    (235, 212, 207), (218, 176, 130), (208, 161, 115), (190, 142, 96), (212, 166, 127),
    (218, 176, 148), (195, 150, 123), (208, 162, 134), (235, 199, 175), (226, 182, 162),
    (218, 172, 147), (254, 182, 183), (252, 202, 191), (255, 221, 217), (255, 230, 222),
    (38, 7, 1), (61, 12, 2), (132, 55, 34), (175, 110, 81), (198, 144, 118), (74, 51, 45),
    (198, 141, 130), (237, 216, 199),
)

# OpenCV runs on the calling thread alone, as torch does in a DataLoader worker: the workers
# are the parallelism, and a thread pool per worker would only oversubscribe the cores.
cv2.setNumThreads(0)

# Steps that turn the image into a float tensor; they must close a pipeline.
TENSOR_STEPS = ("ToTensor", "Normalize")

State = dict[str, Any]
Size = tuple[int, int]


# --------------------------------------------------------------------------- joint ops


def _with(state: State, image: torch.Tensor, mask: torch.Tensor | None) -> State:
    """A copy of state with a new image and mask."""
    new = dict(state)
    new["image"], new["mask"] = image, mask
    return new


def _size(state: State) -> Size:
    warp = state.get("warp")
    if warp is not None:
        return warp.size
    h, w = state["image"].shape[-2:]
    return (w, h) if state.get("orient", (0, 0, 0))[2] else (h, w)


# --------------------------------------------------------------------------- deferred turns
#
# 90-degree turns and flips only reorder pixels: consecutive ones are kept as one pending
# orientation (flip the rows, flip the columns, then transpose) and applied in one copy when a
# step needs the pixels, instead of a copy each.


def _orient(state: State, flip_rows: bool, flip_cols: bool, transpose: bool) -> State:
    """The state with flips of the current rows/columns, then a transpose, added to its pending
    orientation."""
    rows, cols, turned = state.get("orient", (False, False, False))
    if turned:  # flipping the rows of a transposed image flips the columns underneath
        flip_rows, flip_cols = flip_cols, flip_rows
    new = dict(state)
    new["orient"] = (rows != flip_rows, cols != flip_cols, turned != transpose)
    return new


def _apply_orient(state: State) -> State:
    """The state with its pending orientation applied to image and mask (one copy each)."""
    if "orient" not in state:
        return state
    new = dict(state)
    rows, cols, turned = new.pop("orient")
    dims = [d for d, flip in ((-2, rows), (-1, cols)) if flip]
    for key in ("image", "mask"):
        t = new[key]
        if t is not None:
            t = t.flip(dims) if dims else t
            new[key] = t.transpose(-2, -1) if turned else t
    return new


def _crop(state: State, top: int, left: int, height: int, width: int) -> State:
    """Crop image and mask alike; areas outside the image are zero (black image, no lesion)."""
    mask = state["mask"]
    h, w = state["image"].shape[-2:]
    if top >= 0 and left >= 0 and top + height <= h and left + width <= w:  # a view, no checks
        window = (..., slice(top, top + height), slice(left, left + width))
        return _with(state, state["image"][window], None if mask is None else mask[window])
    return _with(
        state,
        F.crop_image(state["image"], top, left, height, width),
        None if mask is None else F.crop_mask(mask, top, left, height, width),
    )


# Shrinking by more than 2 x leave (4 for Rescale) first keeps every k-th pixel, then
# antialiases the rest of the way (leave..2 leave x): about what a JPEG draft decode does, at a
# fraction of the cost of filtering every pixel of a full-size original (2000x3000) down to 224 px.

# The largest shrink a deferred warp takes on without antialiasing (see Rescale).
WARP_SHRINK_MAX = 2.0

# OpenCV's remap keeps pixel coordinates in 16 bits: both sides of what it reads and writes
# must stay under this.
WARP_MAX_SIDE = 32767


def _stride_for(in_size: Size, out_size: Size, leave: int = 2) -> int:
    """The pixel stride that leaves between leave x and 2 leave x to antialias, or 1 for a
    shrink by less than 2 leave x."""
    factor = min(in_size[0] / out_size[0], in_size[1] / out_size[1])
    return int(factor // leave) if factor >= 2 * leave else 1


def _out_size(in_size: Size, size: list[int]) -> Size:
    """torchvision's resize size: [shorter side] keeps the aspect ratio, [h, w] is exact."""
    if len(size) == 2:
        return size[0], size[1]
    h, w = in_size
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(size[0] * long / short)
    return (size[0], new_long) if h <= w else (new_long, size[0])


def _resize(state: State, size: list[int], leave: int = 2) -> State:
    """Resize (size = [shorter side] or [h, w]): image bilinear+antialias, mask nearest.
    A shrink by 2 leave x or more keeps every k-th pixel of the image first, leaving
    leave..2 leave x to antialias.
    leave 2: Rescale, whose output is evaluated: torch's antialiased bilinear does the rest.
    leave 1: a random crop's zoom, a training augmentation: at most 2x is left, where plain
    bilinear already weighs every pixel, and OpenCV's (albumentations' resize, which
    antialiases nothing at any factor) takes a fifth of the time of torch's antialiased one."""
    image, mask = state["image"], state["mask"]
    out = _out_size(tuple(image.shape[-2:]), size)
    k = _stride_for(tuple(image.shape[-2:]), out, leave)
    if k > 1:
        image = _every_kth(image, k)
    if leave == 1 and max(*image.shape[-2:], *out) < WARP_MAX_SIDE:
        pixels = _opencv_pixels(image)
        image = torch.from_numpy(cv2.resize(pixels, (out[1], out[0]), interpolation=cv2.INTER_LINEAR)).permute(2, 0, 1)
    else:
        # The interpolate call F.resize_image makes for uint8 bilinear, without its checks and
        # reshapes: the same pixels, half the time at 224 px.
        image = torch.nn.functional.interpolate(image[None], size=list(out), mode="bilinear", antialias=True)[0]
    # The mask is picked from the full-size one: the exact nearest pixels, and only their rows.
    return _with(state, image, None if mask is None else _resize_mask(mask, out))


def _opencv_pixels(image: torch.Tensor) -> np.ndarray:
    """A uint8 (C, H, W) tensor as the array OpenCV reads: HxW for one channel, else HxWxC with
    each pixel's channels side by side (the layout of a decoded image, and of OpenCV's own
    outputs: no copy then; a turned view or planes are copied into it)."""
    pixels = image.permute(1, 2, 0).numpy()
    if pixels.shape[2] == 1:
        return pixels[..., 0]
    return pixels if pixels.strides[1:] == (pixels.shape[2], 1) else np.ascontiguousarray(pixels)


def _every_kth(image: torch.Tensor, k: int) -> torch.Tensor:
    """The centre pixel of each k x k block of a uint8 (3, H, W) image, copied once into HxWx3
    order (interpolate would copy a strided view itself, through its slow path, at 3x the cost).
    OpenCV's nearest warp by the whole-number scale k picks exactly those pixels, in a third of
    the time of torch's strided copy; other layouts (a turned view, planes) and giants take
    torch's, which reads only the pixels it keeps."""
    h, w = image.shape[-2:]
    pixels = image.permute(1, 2, 0).numpy()
    if pixels.strides[1:] == (3, 1) and max(h, w) < WARP_MAX_SIDE:
        size = (len(range(k // 2, w, k)), len(range(k // 2, h, k)))
        matrix = np.array([[k, 0, k // 2], [0, k, k // 2]], dtype=np.float64)
        return torch.from_numpy(cv2.warpAffine(pixels, matrix, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
                                ).permute(2, 0, 1)
    return image[..., k // 2::k, k // 2::k].permute(1, 2, 0).contiguous().permute(2, 0, 1)


def _resize_mask(mask: torch.Tensor, out: Size) -> torch.Tensor:
    """torchvision's NEAREST_EXACT resize of a (1, H, W) mask (source pixel floor((i + 0.5) *
    in / out)) by row and column indices: a fraction of interpolate's time, and it reads only
    the rows it keeps."""
    h, w = mask.shape[-2:]
    # (np.minimum: np.clip's argument checks cost more than the indices)
    rows = np.minimum(np.floor((np.arange(out[0]) + 0.5) * (h / out[0])).astype(np.int64), h - 1)
    cols = np.minimum(np.floor((np.arange(out[1]) + 0.5) * (w / out[1])).astype(np.int64), w - 1)
    return _pick(mask, rows, cols)


def _pick(mask: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """mask[:, rows][:, :, cols] as a new contiguous tensor. Through numpy: torch's index_select
    on a view (a crop of a full-size mask) takes 10-25x longer than numpy's fancy indexing.
    (take, not a second fancy index, which would lay the result out column-major: later
    elementwise ops on it, the skin's painting, run 4x slower.)"""
    return torch.from_numpy(mask.numpy()[:, rows].take(cols, axis=2))


def _lesion_box(mask: torch.Tensor, by: int = 0, bx: int = 0) -> list[int] | None:
    """[top, left, h, w] of the lesion's bounding box grown by (by, bx), clamped; None if empty."""
    if mask[0].numel() <= _SMALL_BOX_MAX:  # OpenCV's boundingRect: a fifth of numpy's any on these
        left, top, width, height = cv2.boundingRect(mask[0].numpy())
        if width == 0:
            return None
        top_, left_, bottom, right = top, left, top + height, left + width
    else:  # torch's amax (not any: 5x slower along a dimension): faster than either on originals
        rows = torch.nonzero(mask[0].amax(dim=1)).flatten()
        if rows.numel() == 0:
            return None
        cols = torch.nonzero(mask[0].amax(dim=0)).flatten()
        top_, left_, bottom, right = int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1
    h, w = mask.shape[-2:]
    top, left = max(top_ - by, 0), max(left_ - bx, 0)
    bottom, right = min(bottom + by, h), min(right + bx, w)
    return [top, left, bottom - top, right - left]


_SMALL_BOX_MAX = 1 << 20  # pixels


def _paint_skin(state: State, colour: tuple[int, int, int]) -> State:
    """The skin (every non-lesion pixel) takes the colour as its median tone and keeps its
    texture (_shift_skin); lesion pixels are kept. With a deferred warp the painting waits for
    the image, at its final size."""
    warp = state.get("warp")
    if warp is not None and warp.paint is None:
        # The painted area is the image as it stands: where a later crop pads, it stays black.
        (h, w), a, c, e, f = warp.size, warp.a, warp.c, warp.e, warp.f
        area = (min(c, a * w + c), max(c, a * w + c), min(f, e * h + f), max(f, e * h + f))
        new = dict(state)
        new["warp"] = dataclasses.replace(warp, paint=tuple(colour), paint_area=area)
        return new
    state = _materialize(state)  # (a second tone before the first is painted: rare)
    pixels = state["image"].permute(1, 2, 0).numpy().copy()  # (the input image is shared, never written)
    _shift_skin(pixels, state["mask"][0].numpy() == 0, colour)
    return _with(state, torch.from_numpy(pixels).permute(2, 0, 1), state["mask"])


_DARK = 8.0  # L*: below it a pixel is the dermoscope's black vignette or padding, not skin (as skin.py)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """float32 CIELAB (L* 0-100) of uint8 RGB (..., 3), through OpenCV (D65, sRGB)."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)


def _shift_skin(pixels: np.ndarray, skin: np.ndarray, colour) -> None:
    """In place on uint8 (H, W, 3) RGB: the skin pixels (bool (H, W)) moved in CIELAB by the
    difference between the colour and the skin's median, so the skin takes that tone and keeps
    its texture (pores, hairs, shading), as a darker or lighter skin would look. Near-black
    pixels (the dermoscope's vignette, padding) are no skin and stay as they are."""
    lab = _lab(pixels)
    skin = skin & (lab[..., 0] >= _DARK)
    if not skin.any():
        return
    values = lab[skin]
    lab[skin] = values + (_lab(np.array([[colour]], np.uint8))[0, 0] - np.median(values, axis=0))
    rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)[skin]
    pixels[skin] = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- deferred warps
#
# A rotation, the flips, skin tones, rescale and crop after it are one affine map from the
# output back to the rotation's input: the image is resampled once, at the end, at the final
# size (a 224-px crop instead of the rotated canvas and then the rescaled one). The rotation
# samples the mask at once (nearest) to find the lesion's box; the flips, rescale and crop
# after it are axis-aligned, so the mask then waits too and is picked at the end by row and
# column indices. state["warp"] holds what image and mask still owe.


@dataclass(frozen=True)
class _Warp:
    """Output pixel coordinates (x, y) (pixel centres at +0.5) -> input coordinates:
    xs = a x + b y + c, ys = d x + e y + f; size: the output (h, w).
    In a state's deferred warp the input is the mask as it stands (the rotated lesion) and pre
    maps that onward to the image as it stands (the rotation's input); paint: a skin colour
    to apply once the image is resampled, or None."""

    a: float
    b: float
    c: float
    d: float
    e: float
    f: float
    size: Size
    paint: tuple[int, int, int] | None = None
    paint_area: tuple[float, float, float, float] | None = None  # x0, x1, y0, y1 in input coordinates
    pre: _Warp | None = None

    def then(self, a: float, b: float, c: float, d: float, e: float, f: float, size: Size) -> _Warp:
        """This warp after a step whose output (x, y) reads its input at (a x + b y + c, d x + e y + f)."""
        return _Warp(self.a * a + self.b * d, self.a * b + self.b * e, self.a * c + self.b * f + self.c,
                     self.d * a + self.e * d, self.d * b + self.e * e, self.d * c + self.e * f + self.f,
                     size, self.paint, self.paint_area, self.pre)

    def full(self) -> _Warp:
        """Output -> the image as it stands: pre after this."""
        return self if self.pre is None else self.pre.then(self.a, self.b, self.c, self.d, self.e, self.f, self.size)

    def crop(self, top: int, left: int, height: int, width: int) -> _Warp:
        return self.then(1, 0, left, 0, 1, top, (height, width))

    def resize(self, out: Size) -> _Warp:
        (h, w), (oh, ow) = self.size, out
        return self.then(w / ow, 0, 0, 0, h / oh, 0, out)

    def flip(self, horizontal: bool) -> _Warp:
        h, w = self.size
        return self.then(-1, 0, w, 0, 1, 0, self.size) if horizontal else self.then(1, 0, 0, 0, -1, h, self.size)


def _warp_source_window(warp: _Warp, top: int, left: int, height: int, width: int, src: Size) -> list[int]:
    """[top, left, h, w] of the source pixels that output window reads (bilinear), clamped."""
    xs, ys = [], []
    for x in (left, left + width):
        for y in (top, top + height):
            xs.append(warp.a * x + warp.b * y + warp.c)
            ys.append(warp.d * x + warp.e * y + warp.f)
    y0, x0 = max(math.floor(min(ys)) - 1, 0), max(math.floor(min(xs)) - 1, 0)
    y1, x1 = min(math.ceil(max(ys)) + 1, src[0]), min(math.ceil(max(xs)) + 1, src[1])
    return [y0, x0, max(y1 - y0, 0), max(x1 - x0, 0)]


_CV2_MODES = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}


def _warp(source: torch.Tensor, warp: _Warp, window: list[int], mode: str) -> torch.Tensor:
    """uint8 (C, h, w), in channels-last memory: the window [top, left, h, w] of warp's output
    sampled from the uint8 (C, H, W) source (C 1 or 3; bilinear or nearest; zeros outside the
    source). OpenCV's warpAffine, not torch's grid_sample: on uint8 pixels, with no float
    copy of the source and no grid to build, it takes a third of the time (bench/augment.py);
    its 1/32-pixel fixed-point positions land within one level of torchvision's rotate."""
    top, left, height, width = window
    channels = source.shape[0]
    sy, sx, sh, sw = _warp_source_window(warp, top, left, height, width, tuple(source.shape[-2:]))
    if height <= 0 or width <= 0:  # (OpenCV would read an empty size as the source's)
        raise ValueError(f"empty warp window {window}")
    if sh == 0 or sw == 0:
        return torch.zeros(height, width, channels, dtype=torch.uint8).permute(2, 0, 1)
    if max(sh, sw, height, width) >= WARP_MAX_SIDE:
        raise TransformError(N_("cannot rotate an image this large ({height}x{width} px): both sides must stay "
                                "under {limit} px; load it with a smaller max side").format(
            height=max(sh, height), width=max(sw, width), limit=WARP_MAX_SIDE))
    region = _opencv_pixels(source[:, sy:sy + sh, sx:sx + sw])  # only what is read
    # The output's (x, y) reads the source at warp(x + 0.5, y + 0.5) in our coordinates (pixel
    # centres at +0.5); OpenCV's pixel centres are whole numbers, and the region starts at (sx, sy).
    matrix = np.array([[warp.a, warp.b, warp.a * (left + 0.5) + warp.b * (top + 0.5) + warp.c - 0.5 - sx],
                       [warp.d, warp.e, warp.d * (left + 0.5) + warp.e * (top + 0.5) + warp.f - 0.5 - sy]])
    out = cv2.warpAffine(region, matrix, (width, height), flags=_CV2_MODES[mode] | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = torch.from_numpy(out)
    return out[None] if channels == 1 else out.permute(2, 0, 1)


def _materialize(state: State) -> State:
    """The state with its deferred warp applied to the image (and the skin painted): plain again."""
    state = _apply_orient(state)
    warp = state.get("warp")
    if warp is None:
        return state
    new = dict(state)
    del new["warp"]
    # The input coordinates of the output's pixel centres, per row and column (the steps after
    # the rotation are axis-aligned). Index vectors of a few hundred entries: numpy, at a
    # microsecond an operation, not torch.
    (h, w), (base_h, base_w) = warp.size, warp.pre.size
    x = (np.arange(w) + 0.5) * warp.a + warp.c
    y = (np.arange(h) + 0.5) * warp.e + warp.f
    # A crop reaching past the rotated image pads: black, no lesion, as F.crop pads.
    padded = _beyond(x, 0, base_w) or _beyond(y, 0, base_h)
    if padded:
        pad_cols, pad_rows = (x < 0) | (x >= base_w), (y < 0) | (y >= base_h)
    mask = state["mask"]
    if mask is not None:
        rows, cols = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
        if padded:
            rows, cols = np.clip(rows, 0, base_h - 1), np.clip(cols, 0, base_w - 1)
        mask = _pick(mask, rows, cols)  # nearest: the pixel that holds the centre
        if padded:
            _zero_rows_cols(mask, pad_rows, pad_cols)
        new["mask"] = mask
    image = _warp(state["image"], warp.full(), [0, 0, h, w], "bilinear")
    if padded:
        _zero_rows_cols(image, pad_rows, pad_cols)
    if warp.paint is not None:
        skin = mask[0].numpy() == 0
        # Outside the area that was painted (padding added after the painting) the image stays.
        x0, x1, y0, y1 = warp.paint_area
        if _beyond(x, x0, x1) or _beyond(y, y0, y1):
            skin &= ((y >= y0) & (y < y1))[:, None] & ((x >= x0) & (x < x1))[None, :]
        _shift_skin(image.permute(1, 2, 0).numpy(), skin, warp.paint)  # in place, on what the warp wrote
    new["image"] = image
    return new


def _beyond(v: np.ndarray, low: float, high: float) -> bool:
    """Whether a value of v, a monotonic vector (an output row's or column's input
    coordinates), lies outside [low, high): its ends say, without a pass over it."""
    return bool(min(v[0], v[-1]) < low or max(v[0], v[-1]) >= high)


def _zero_rows_cols(tensor: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> None:
    """Zero, in place, the rows and columns of a (C, H, W) tensor where the bool vectors are true."""
    tensor[:, torch.from_numpy(rows)] = 0
    tensor[:, :, torch.from_numpy(cols)] = 0


def _with_warp(state: State, warp: _Warp, mask: torch.Tensor | None = None) -> State:
    new = dict(state)
    new["warp"] = warp
    if mask is not None:
        new["mask"] = mask
    return new


def _rotation_warp(size: Size, angle: float, expand: bool) -> _Warp:
    """torchvision's rotate (counter-clockwise, about the centre; expand: the canvas that holds
    every corner, sized as torchvision sizes it) as a warp from the canvas to the image."""
    h, w = size
    theta = math.radians(angle)
    # Rounded so that quarter turns are exact (cos 90 degrees is 6e-17, which would grow the canvas).
    cos, sin = round(math.cos(theta), 12), round(math.sin(theta), 12)
    if expand:
        xs = [cos * x + sin * y for x in (-w / 2, w / 2) for y in (-h / 2, h / 2)]
        ys = [-sin * x + cos * y for x in (-w / 2, w / 2) for y in (-h / 2, h / 2)]
        # torchvision's _compute_affine_output_size, corners taken relative to the input's centre
        ow = math.ceil(max(xs) + w / 2) - math.floor(min(xs) + w / 2)
        oh = math.ceil(max(ys) + h / 2) - math.floor(min(ys) + h / 2)
    else:
        oh, ow = h, w
    # source = R^T (output - canvas centre) + image centre
    return _Warp(cos, -sin, w / 2 - cos * ow / 2 + sin * oh / 2,
                 sin, cos, h / 2 - sin * ow / 2 - cos * oh / 2, (oh, ow))


def _rotated_lesion_window(mask: torch.Tensor, warp: _Warp) -> list[int] | None:
    """A window of the rotation canvas that holds every pixel of the rotated (nearest) lesion:
    the box around the rotated corners of the lesion's box, and a pixel of slack; None if there
    is no lesion, or none of it on the canvas (a rotation without expand can turn a lesion near a
    corner out of it). (Sampling the rest of the canvas would only find background.)"""
    box = _lesion_box(mask)
    if box is None:
        return None
    top, left, height, width = box
    # warp maps canvas -> image; its inverse (a rotation: the transpose) maps image -> canvas.
    dx = np.array([left, left + width, left, left + width]) - warp.c
    dy = np.array([top, top, top + height, top + height]) - warp.f
    ox, oy = dx * warp.a + dy * warp.d, dx * warp.b + dy * warp.e
    oh, ow = warp.size
    x0, x1 = max(math.floor(ox.min()) - 1, 0), min(math.ceil(ox.max()) + 1, ow)
    y0, y1 = max(math.floor(oy.min()) - 1, 0), min(math.ceil(oy.max()) + 1, oh)
    return [y0, x0, y1 - y0, x1 - x0] if y1 > y0 and x1 > x0 else None


def _pair(value: int | list[int]) -> Size:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


# --------------------------------------------------------------------------- transforms


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
        self.by, self.bx = _pair(border)

    def run(self, state):
        box = _lesion_box(state["mask"], self.by, self.bx)
        if box is None:  # no lesion: nothing to crop to, keep the whole image
            return state, {"box": None}
        return _crop(state, *box), {"box": box}


class RandomCrop(Transform):
    """A random (h, w) window; an image smaller than the window is first zero-padded evenly
    (mask 0 there) so every output has the requested size and batches stack."""

    takes_warp = True

    def __init__(self, size: int | list[int]):
        self.size = _pair(size)

    def run(self, state):
        h, w = _size(state)
        ch, cw = self.size
        pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
        top = int(torch.randint(h + pad_h - ch + 1, (1,))) - pad_h // 2
        left = int(torch.randint(w + pad_w - cw + 1, (1,))) - pad_w // 2
        box = [top, left, ch, cw]
        if state.get("warp") is not None:  # image and mask are cut from their sources at the end
            return _with_warp(state, state["warp"].crop(*box)), {"box": box}
        # F.crop zero-fills whatever lies outside the image, which is exactly the padding.
        return _crop(state, *box), {"box": box}

    def output_size(self, in_size):
        return self.size


class CenterCrop(Transform):
    """The central (h, w) window (zero-padded when the image is smaller)."""

    def __init__(self, size: int | list[int]):
        self.size = _pair(size)

    def run(self, state):
        mask = state["mask"]
        image = F.center_crop_image(state["image"], list(self.size))
        return _with(state, image, None if mask is None else F.center_crop_mask(mask, list(self.size))), {}

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
            out = _out_size(warp.size, self.size)
            # One bilinear resampling shrinks by up to 2x without visible aliasing; beyond
            # that the image is resampled now and shrunk with antialiasing.
            if min(warp.size[0] / out[0], warp.size[1] / out[1]) <= WARP_SHRINK_MAX:
                return _with_warp(state, warp.resize(out)), {"size": list(out)}
            state = _materialize(state)
        state = _resize(state, self.size)
        return state, {"size": list(_size(state))}

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
            raise _Inverted("min_size", params["min_size"], "max_size", params["max_size"])

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
                h, w = _size(state)
                state = _resize(state, [max(1, round(h * scale)), max(1, round(w * scale))])
                params["prescale"] = round(scale, 4)
        mask = state["mask"]
        warp = _rotation_warp(_size(state), angle, self.expand)
        window = [0, 0, *warp.size]
        if self.crop_to_lesion:  # only the part of the canvas that can hold the lesion
            window = _rotated_lesion_window(mask, warp) or window
        if mask is not None:
            mask = _warp(mask, warp, window, "nearest")
        if self.crop_to_lesion:
            box = _lesion_box(mask)
            if box is not None:  # canvas coordinates of the rotated lesion's tight box
                params["box"] = [box[0] + window[0], box[1] + window[1], box[2], box[3]]
                mask = F.crop_mask(mask, *box)
                window = params["box"]
            elif window != [0, 0, *warp.size]:  # no lesion on the canvas after all: keep it whole
                window = [0, 0, *warp.size]
                mask = torch.zeros(1, *warp.size, dtype=torch.uint8)
        if window != [0, 0, *warp.size]:
            warp = warp.crop(*window)
        # The image is resampled once, when a step needs its pixels (see _materialize); the
        # steps after this one only move the mask's rows and columns.
        identity = _Warp(1, 0, 0, 0, 1, 0, warp.size, pre=warp)
        return _with_warp(state, identity, mask), params

    def _prescale(self, state: State, angle: float) -> float:
        """The factor that leaves the rotated result (the lesion's box with crop_to_lesion, else
        the canvas) about the later Rescale's side: the shrinking is done here, antialiased, and
        the rotation, resampled with that Rescale in one pass, changes the size by little."""
        h, w = _size(state)
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


class _RandomFlip(Transform):
    horizontal = True  # left-right; False: top-bottom
    takes_warp = True
    takes_orient = True

    def __init__(self, p: float):
        self.p = p

    def run(self, state):
        flipped = bool(torch.rand(1) < self.p)
        if flipped:
            if state.get("warp") is not None:
                state = _with_warp(state, state["warp"].flip(self.horizontal))
            else:
                state = _orient(state, not self.horizontal, self.horizontal, False)
        return state, {"flipped": flipped}

    def output_size(self, in_size):
        return in_size


class RandomHorizontalFlip(_RandomFlip):
    """Mirror left-right with probability p."""


class RandomVerticalFlip(_RandomFlip):
    """Mirror top-bottom with probability p."""

    horizontal = False


class RandomRotate90(Transform):
    """Rotate by k * 90 degrees, k drawn in {0, 1, 2, 3}: exact, no interpolation, no corners."""

    takes_warp = True  # (it applies a pending warp itself, then defers the turn)
    takes_orient = True

    def run(self, state):
        k = int(torch.randint(4, (1,)))
        state = _materialize(state) if state.get("warp") is not None else state
        # torch.rot90 by k over (-2, -1): flip the columns then transpose (k = 1), flip both
        # (k = 2), flip the rows then transpose (k = 3).
        if k:
            state = _orient(state, k >= 2, k <= 2, k % 2 == 1)
        return state, {"k": k}

    def output_size(self, in_size):
        return in_size if in_size is not None and in_size[0] == in_size[1] else None


class RandomResizedCrop(Transform):
    """A random window covering scale_min..scale_max of the area with aspect ratio in
    ratio_min..ratio_max, resized to size (torchvision's draw): a cheap zoom + shift."""

    def __init__(self, size: int | list[int], scale_min: float, scale_max: float, ratio_min: float, ratio_max: float):
        self.size = _pair(size)
        self._v2 = v2.RandomResizedCrop(self.size, scale=(scale_min, scale_max), ratio=(ratio_min, ratio_max))

    @staticmethod
    def check(params):
        for low, high in (("scale_min", "scale_max"), ("ratio_min", "ratio_max")):
            if params[low] > params[high]:
                raise _Inverted(low, params[low], high, params[high])

    def run(self, state):
        p = _resized_crop_params(self._v2, *_size(state))
        box = [p["top"], p["left"], p["height"], p["width"]]
        state = _resize(_crop(state, *box), list(self.size), leave=1)
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
        return _with(state, image, state["mask"]), factors

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
        return _with(state, out, state["mask"]), {"gain": [round(float(g), 4) for g in gain]}

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
        return _paint_skin(state, self.colour), {}

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
            state = _paint_skin(state, tone)
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
            new["mask"] = _binary_float(new["mask"])
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


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ParamInfo:
    """One parameter: type is "int" | "float" | "bool" | "int_or_pair" (int or [a, b]) |
    "colour" (int or [r, g, b], each taken mod 256) | "floats3" ([x, y, z]).
    min/max bound every number in the value (None: unbounded); for "colour" they are the
    widget's range, since values outside it are taken mod 256."""

    name: str
    type: str
    default: Any
    min: float | None = None
    max: float | None = None
    help: str = ""
    choices: tuple | None = None


@dataclass(frozen=True)
class TransformInfo:
    """One registry entry. kind: "geometric" (moves pixels of image and mask alike),
    "colour" (changes image colours only, mask untouched) or "tensor" (ToTensor, Normalize)."""

    name: str
    cls: type
    help: str
    params: tuple[ParamInfo, ...]
    needs_mask: bool
    random: bool
    kind: str

    def defaults(self) -> dict:
        """A fresh {name: default} dict: copied, so editing it never changes the registry."""
        return copy.deepcopy({p.name: p.default for p in self.params})


_SIZE_HELP = "int = square side in pixels, [h, w] = height and width"


def _entry(cls, kind, random, *params, help=None, needs_mask=None) -> TransformInfo:
    return TransformInfo(
        name=cls.__name__,
        cls=cls,
        help=help or " ".join(cls.__doc__.split("\n\n")[0].split()),
        params=tuple(params),
        needs_mask=cls.needs_mask if needs_mask is None else needs_mask,
        random=random,
        kind=kind,
    )


REGISTRY: dict[str, TransformInfo] = {
    info.name: info
    for info in (
        _entry(CropByMask, "geometric", False,
               ParamInfo("border", "int_or_pair", 10, 0, 10000, "pixels kept around the lesion: int, or [by, bx]")),
        _entry(RandomCrop, "geometric", True, ParamInfo("size", "int_or_pair", 224, 1, 10000, _SIZE_HELP)),
        _entry(CenterCrop, "geometric", False, ParamInfo("size", "int_or_pair", 224, 1, 10000, _SIZE_HELP)),
        _entry(Rescale, "geometric", False,
               ParamInfo("size", "int_or_pair", 256, 1, 10000,
                         "int = shorter side (aspect kept), [h, w] = exact size")),
        _entry(RandomCenterCrop, "geometric", True,
               ParamInfo("min_size", "int", 100, 1, 10000, "smallest side drawn"),
               ParamInfo("max_size", "int", 224, 1, 10000, "largest side drawn")),
        _entry(RandomRotation, "geometric", True,
               ParamInfo("degrees", "float", 180.0, 0, 180, "angle drawn in [-degrees, degrees]"),
               ParamInfo("expand", "bool", True, help="grow the canvas so no corner is cut off"),
               ParamInfo("crop_to_lesion", "bool", False, help="crop to the rotated lesion afterwards (needs a mask)"),
               help="Rotate by a random angle; optionally crop to the rotated lesion (then it needs a mask).",
               needs_mask=False),
        _entry(RandomHorizontalFlip, "geometric", True, ParamInfo("p", "float", 0.5, 0, 1, "probability of a flip")),
        _entry(RandomVerticalFlip, "geometric", True, ParamInfo("p", "float", 0.5, 0, 1, "probability of a flip")),
        _entry(RandomRotate90, "geometric", True),
        _entry(RandomResizedCrop, "geometric", True,
               ParamInfo("size", "int_or_pair", 224, 1, 10000, _SIZE_HELP),
               ParamInfo("scale_min", "float", 0.35, 0.01, 1, "smallest fraction of the area kept"),
               ParamInfo("scale_max", "float", 1.0, 0.01, 1, "largest fraction of the area kept"),
               ParamInfo("ratio_min", "float", 0.75, 0.1, 10, "smallest aspect ratio w/h of the window"),
               ParamInfo("ratio_max", "float", 4 / 3, 0.1, 10, "largest aspect ratio w/h of the window")),
        _entry(ColorJitter, "colour", True,
               ParamInfo("brightness", "float", 0.2, 0, 1, "brightness factor drawn in [1-x, 1+x]"),
               ParamInfo("contrast", "float", 0.2, 0, 1, "contrast factor drawn in [1-x, 1+x]"),
               ParamInfo("saturation", "float", 0.2, 0, 1, "saturation factor drawn in [1-x, 1+x]")),
        _entry(ShadesOfGrey, "colour", False,
               ParamInfo("p", "int", 6, 1, 16, "Minkowski norm of the light's estimate: 1 grey world, 6 usual")),
        _entry(ChangeSkin, "colour", False,
               ParamInfo("colour", "colour", [198, 134, 66], 0, 255,
                         "int (grey level) or [r, g, b], each taken mod 256")),
        _entry(RandomChangeSkin, "colour", True),
        _entry(ToTensor, "tensor", False),
        _entry(Normalize, "tensor", False,
               ParamInfo("mean", "floats3", list(IMAGENET_MEAN), -10, 10,
                         "per-channel mean (ImageNet; 0.5 for TF-Lite nets)"),
               ParamInfo("std", "floats3", list(IMAGENET_STD), 1e-6, 10,
                         "per-channel std (ImageNet; 0.5 for TF-Lite nets)")),
    )
}


def _step(name: str, **params) -> dict:
    return {"name": name, "params": params}


def preset(name: str, size: int = 224) -> list[dict]:
    """A named pipeline spec whose crops end at (size, size), so the trainer never has to
    resize a second time; the Rescale before a crop keeps the usual 256/224 margin."""
    margin = round(size * 256 / 224)
    norm = _step("Normalize", mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    if name == "notebook_train":
        # The notebook's training chain, bugs fixed: crop to the lesion, rotate and re-crop to
        # it, flips, a random skin tone, then a crop of the rescaled lesion.
        return [
            _step("CropByMask", border=10),
            _step("RandomRotation", degrees=180, expand=True, crop_to_lesion=True),
            _step("RandomHorizontalFlip", p=0.5),
            _step("RandomVerticalFlip", p=0.5),
            _step("RandomChangeSkin"),
            _step("Rescale", size=margin),
            _step("RandomCrop", size=size),
            _step("ToTensor"),
            norm,
        ]
    if name == "default_train":
        # The recipe that reached mean AUC 0.887 (MEASUREMENTS.md): crop/resize first, so the
        # rotations and flips then touch size x size pixels only; no mask needed.
        return [
            _step("RandomResizedCrop", size=size, scale_min=0.35, scale_max=1.0, ratio_min=0.75, ratio_max=4 / 3),
            _step("RandomRotate90"),
            _step("RandomHorizontalFlip", p=0.5),
            _step("RandomVerticalFlip", p=0.5),
            _step("ToTensor"),
            norm,
        ]
    if name == "eval":
        return [_step("Rescale", size=margin), _step("CenterCrop", size=size), _step("ToTensor"), norm]
    raise TransformError(N_("unknown preset {name}; known: {known}").format(name=repr(name),
                                                                            known=", ".join(PRESET_NAMES)))


PRESET_NAMES = ("notebook_train", "default_train", "eval")
PRESETS: dict[str, list[dict]] = {name: preset(name) for name in PRESET_NAMES}


# --------------------------------------------------------------------------- evaluation


def crops_to_lesion(spec) -> bool:
    """Whether a pipeline crops to the lesion (CropByMask, or RandomRotation with crop_to_lesion)."""
    return any(s["name"] == "CropByMask" or (s["name"] == "RandomRotation" and s["params"]["crop_to_lesion"])
               for s in validate_spec(spec))


def needs_mask(spec) -> bool:
    """Whether some step of the pipeline needs the lesion mask."""
    return any(REGISTRY[s["name"]].needs_mask or (s["name"] == "RandomRotation" and s["params"]["crop_to_lesion"])
               for s in validate_spec(spec))


def _eval_step(step: dict) -> list[dict]:
    """The deterministic counterpart of one training step: its central draw (angle 0, no
    flip, factor 1, original skin), a centred window for a random one, [] when that is a no-op."""
    name, params = step["name"], step["params"]
    if name == "RandomRotation":
        # Angle 0 leaves the image as it is, but the crop to the lesion still happens.
        return [_step("CropByMask", border=0)] if params["crop_to_lesion"] else []
    if name == "RandomCrop":
        return [_step("CenterCrop", size=params["size"])]
    if name == "RandomCenterCrop":
        return [_step("CenterCrop", size=(params["min_size"] + params["max_size"]) // 2)]
    if name == "RandomResizedCrop":
        # The usual evaluation of a random-resized-crop recipe: the 256/224 margin, then the centre.
        side = min(_pair(params["size"]))
        return [_step("Rescale", size=round(side * 256 / 224)), _step("CenterCrop", size=params["size"])]
    if REGISTRY[name].random:  # flips, 90-degree turns, colour jitter, random skin tones
        return []
    return [copy.deepcopy(step)]


def eval_spec(train_spec) -> list[dict]:
    """The evaluation pipeline that matches a training pipeline: every deterministic step kept
    (a crop to the lesion included, so a model trained on lesion crops is scored on lesion
    crops), every random step replaced by its deterministic counterpart or dropped. Crops to
    the lesion in a row become one: the tighter border is what the second leaves."""
    steps = []
    for out in (out for step in validate_spec(train_spec) for out in _eval_step(step)):
        if out["name"] == "CropByMask" and steps and steps[-1]["name"] == "CropByMask":
            border = [min(a, b) for a, b in zip(_pair(steps[-1]["params"]["border"]), _pair(out["params"]["border"]))]
            out = _step("CropByMask", border=border[0] if border[0] == border[1] else border)
            steps.pop()
        steps.append(out)
    return validate_spec(steps)


EVAL_HELP = ("Derived from the training pipeline: the same crops (to the lesion too), each random step "
             "at its central draw (a centred window, no rotation, no flip, no jitter, the original skin).")


def describe_steps(spec) -> str:
    """'CropByMask(border=0) -> Rescale(size=110) -> ...': a pipeline in one readable line."""
    parts = [f"{s['name']}({', '.join(f'{k}={v}' for k, v in s['params'].items())})" for s in validate_spec(spec)]
    return " → ".join(parts) or "(no steps: the image is resized to the model's input)"


def eval_mismatch(train_spec, eval_spec_) -> str | None:
    """Why an evaluation pipeline does not see the kind of image training saw, or None."""
    if crops_to_lesion(train_spec) and not crops_to_lesion(eval_spec_):
        return ("the training pipeline crops to the lesion but the evaluation pipeline does not, so the model "
                "would be scored on whole images; use eval_augment \"auto\" (derived from the training "
                "pipeline) or add a CropByMask step to it")
    return None


# --------------------------------------------------------------------------- spec checking


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _in_range(v, info: ParamInfo) -> None:
    if (info.min is not None and v < info.min) or (info.max is not None and v > info.max):
        raise ValueError(N_("must be between {min} and {max}").format(min=info.min, max=info.max))


def _ints(value, lengths: tuple[int, ...], problem: str) -> list[int]:
    """value as a list of ints (one int, or a list of one of these lengths); ValueError(problem) if not."""
    if _is_int(value):
        return [value]
    if isinstance(value, (list, tuple)) and len(value) in lengths and all(_is_int(v) for v in value):
        return list(value)
    raise ValueError(problem)


def _coerce(value, info: ParamInfo):
    """The canonical JSON value of one parameter; ValueError says what is wrong."""
    kind = info.type
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(N_("must be true or false"))
        return value
    if kind == "int":
        if not _is_int(value):
            raise ValueError(N_("must be an integer"))
        _in_range(value, info)
        return value
    if kind == "float":
        if not _is_number(value):
            raise ValueError(N_("must be a number"))
        _in_range(value, info)
        return float(value)
    if kind == "int_or_pair":
        values = _ints(value, (2,), N_("must be an integer or a list of two integers"))
        for v in values:
            _in_range(v, info)
        return value if _is_int(value) else values
    if kind == "colour":
        values = _ints(value, (3,), N_("must be an integer or a list [r, g, b] of three integers"))
        return [v % 256 for v in values] * (3 if len(values) == 1 else 1)
    if kind == "floats3":
        if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_number(v) for v in value)):
            raise ValueError(N_("must be a list of three numbers"))
        for v in value:
            _in_range(v, info)
        return [float(v) for v in value]
    raise AssertionError(f"unknown parameter type {kind}")  # a registry bug, not a user error


class _Inverted(ValueError):
    """A check's "a parameter is larger than its upper bound", its values kept for _check_step."""

    def __init__(self, low: str, low_value, high: str, high_value):
        self.values = {"low": low, "low_value": low_value, "high": high, "high_value": high_value}
        super().__init__(N_("{low} ({low_value}) is larger than {high} ({high_value})").format(**self.values))


def _check_step(index: int, step) -> dict:
    # Whole sentences per message (not a "step {index}" prefix glued on), so each one is
    # translated as a whole on the pages.
    if not isinstance(step, dict) or not isinstance(step.get("name"), str):
        raise TransformError(N_("step {index}: expected {form}, got {step}").format(
            index=index, form='{"name": ..., "params": {...}}', step=repr(step)))
    name = step["name"]
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        if close:
            raise TransformError(N_("step {index} ({name}): unknown transform; did you mean {close}? known: {known}")
                                 .format(index=index, name=name, close=close[0], known=", ".join(REGISTRY)))
        raise TransformError(N_("step {index} ({name}): unknown transform; known: {known}").format(
            index=index, name=name, known=", ".join(REGISTRY)))
    extra = set(step) - {"name", "params"}
    if extra:
        raise TransformError(N_("step {index} ({name}): unexpected keys {keys}; a step has only name and params")
                             .format(index=index, name=name, keys=sorted(extra)))
    given = step.get("params", {})
    if not isinstance(given, dict):
        raise TransformError(N_("step {index} ({name}): params must be an object, got {params}").format(
            index=index, name=name, params=repr(given)))
    info = REGISTRY[name]
    known = {p.name: p for p in info.params}
    unknown = set(given) - set(known)
    if unknown:
        names = ", ".join(map(repr, sorted(unknown)))
        if not known:
            raise TransformError(N_("step {index} ({name}): unknown parameter {unknown}; known: none").format(
                index=index, name=name, unknown=names))
        raise TransformError(N_("step {index} ({name}): unknown parameter {unknown}; known: {known}").format(
            index=index, name=name, unknown=names, known=", ".join(known)))
    params = info.defaults()
    for key, value in given.items():
        try:
            params[key] = _coerce(value, known[key])
        except ValueError as exc:
            raise TransformError(N_("step {index} ({name}): parameter '{param}' {problem}; got {value}").format(
                index=index, name=name, param=key, problem=exc, value=repr(value))) from None
    try:
        info.cls.check(params)
    except _Inverted as exc:  # one message with the step: nested, "{low} (...) is larger" would take the step for {low}
        raise TransformError(N_("step {index} ({name}): {low} ({low_value}) is larger than {high} ({high_value})")
                             .format(index=index, name=name, **exc.values)) from None
    except ValueError as exc:
        raise TransformError(N_("step {index} ({name}): {problem}").format(index=index, name=name, problem=exc)) from None
    return {"name": name, "params": params}


def _check_order(steps: list[dict]) -> None:
    names = [s["name"] for s in steps]
    for tensor_step in TENSOR_STEPS:
        if names.count(tensor_step) > 1:
            raise TransformError(N_("the pipeline has {name} more than once; keep one").format(name=tensor_step))
    if "ToTensor" in names:
        at = names.index("ToTensor")
        after = [n for n in names[at + 1:] if n != "Normalize"]
        if after:
            raise TransformError(N_(
                "step {index} ({name}) comes after ToTensor; move ToTensor (and Normalize) to the end"
            ).format(index=names.index(after[0], at) + 1, name=after[0]))
    if "Normalize" in names and ("ToTensor" not in names or names.index("Normalize") < names.index("ToTensor")):
        raise TransformError(N_("step {index} (Normalize) needs ToTensor before it; add a ToTensor step").format(
            index=names.index("Normalize") + 1))


def validate_spec(spec) -> list[dict]:
    """Check a spec and return its canonical form (every parameter filled in, JSON types).

    Raises TransformError naming the step (1-based) and parameter at fault."""
    if not isinstance(spec, (list, tuple)):
        raise TransformError(N_("a pipeline is a list of steps, got {type}").format(type=type(spec).__name__))
    steps = [_check_step(i, step) for i, step in enumerate(spec, start=1)]
    _check_order(steps)
    return steps


# --------------------------------------------------------------------------- pipeline


def _to_state(sample: dict) -> State:
    """A sample's numpy image/mask as uint8 CHW tensors sharing their memory, format checked."""
    sid, image, mask = sample.get("id", "?"), sample.get("image"), sample.get("mask")
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        raise TransformError(N_("sample {id}: image must be a uint8 HxWx3 RGB array, got {got}").format(id=sid, got=got))
    state = dict(sample)
    # Shared, never copied unless strided (torch refuses negative strides): no step writes in
    # place, so a read-only array (np.asarray of a PIL image) is safe to share, whatever
    # torch's warning says. A full-size copy costs more than the whole default_train chain.
    state["image"] = _shared_tensor(image).permute(2, 0, 1)
    if mask is not None:
        if not (isinstance(mask, np.ndarray) and mask.shape == image.shape[:2]):
            raise TransformError(N_("sample {id}: mask must be an HxW array matching the image {shape}, got {got}")
                                 .format(id=sid, shape=image.shape[:2], got=getattr(mask, "shape", type(mask).__name__)))
        # Any non-zero value is lesion (0/255 masks work too). Steps only move values or test
        # them against zero, so a uint8 or bool mask is shared as is and made 0/1 at the end,
        # on the small output instead of the full-size input.
        if mask.dtype == np.bool_:
            mask = mask.view(np.uint8)
        elif mask.dtype != np.uint8:
            mask = (mask != 0).astype(np.uint8)
        state["mask"] = _shared_tensor(mask).unsqueeze(0)
    return state


def _shared_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing the array's memory (a copy only when it is not C-contiguous)."""
    global _READ_ONLY_WARNED
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    if array.flags.writeable or _READ_ONLY_WARNED:
        return torch.from_numpy(array)
    # torch warns about read-only arrays once per process; silenced that once, later calls skip
    # catch_warnings, which cost more than a 224-px default_train chain's flips.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        tensor = torch.from_numpy(array)
    _READ_ONLY_WARNED = True
    return tensor


_READ_ONLY_WARNED = False


def _binary(mask: torch.Tensor) -> torch.Tensor:
    """A new uint8 {0, 1} tensor: any non-zero value is lesion. (clamp: masks are never negative;
    mask != 0 builds a bool tensor 6x slower.)"""
    return mask.clamp(max=1).to(torch.uint8)


def _binary_float(mask: torch.Tensor) -> torch.Tensor:
    """A new float32 {0, 1} tensor: any non-zero value is lesion."""
    return mask.float().clamp_(max=1) if mask.dtype != torch.float32 else mask.clamp(max=1)


def _from_state(state: State) -> dict:
    """Back to the sample format: numpy uint8 HxWx3 / HxW, or plain tensors after ToTensor."""
    sample = dict(state)
    image, mask = state["image"], state["mask"]
    if image.dtype == torch.uint8:
        # copy(), so the output never aliases the caller's input arrays.
        sample["image"] = image.permute(1, 2, 0).numpy().copy()
        sample["mask"] = None if mask is None else _binary(mask)[0].numpy()
    return sample


class Pipeline:
    """A validated spec turned into transforms. pipeline(sample) -> sample."""

    # False applies every deferred warp at once (each step on a plain image): the reference
    # the deferred path is tested against.
    defer = True

    def __init__(self, spec):
        self.spec = validate_spec(spec)
        self.steps = [REGISTRY[s["name"]].cls(**s["params"]) for s in self.spec]
        for index, step in enumerate(self.steps):
            if isinstance(step, RandomRotation):
                step.shrink_to = _later_shorter_side(self.steps[index + 1:])
            if isinstance(step, Normalize) and index and isinstance(self.steps[index - 1], ToTensor):
                step.fuse_into(self.steps[index - 1])

    def __call__(self, sample: dict) -> dict:
        return self.apply_with_params(sample)[0]

    def apply_with_params(self, sample: dict, lesion_kept: bool = False) -> tuple[dict, list[dict]]:
        """(transformed sample, one dict per step of what it drew: angle, flipped, box, size, tone...).

        lesion_kept: the sample also holds "lesion_kept", the share of the input's lesion that
        the output still shows (crops cut it; resizing does not count), None without a lesion."""
        state, drawn, scale = _to_state(sample), [], 1.0
        for index, (step_spec, step) in enumerate(zip(self.spec, self.steps), start=1):
            if step.needs_mask and state["mask"] is None:
                raise TransformError(N_("step {index} ({name}) needs a lesion mask; sample {id} has none").format(
                    index=index, name=step_spec["name"], id=state.get("id", "?")))
            if not step.takes_warp:
                state = _materialize(state)
            elif not step.takes_orient:
                state = _apply_orient(state)
            before = _size(state)
            state, params = step.run(state)
            if lesion_kept:
                scale *= step.area_scale(before, _size(state), params)
            if not self.defer:
                state = _materialize(state)
            drawn.append(params)
        out = _from_state(_materialize(state))
        if lesion_kept:
            out["lesion_kept"] = _lesion_kept(sample.get("mask"), out["mask"], scale)
        return out, drawn

    def __repr__(self) -> str:
        return f"Pipeline({json.dumps(self.spec)})"


def _lesion_kept(before: np.ndarray | None, after: np.ndarray | None, scale: float) -> float | None:
    """The share of the lesion pixels before that the mask after still holds, at its scale
    (capped at 1: nearest-neighbour resizing rounds a lesion's area by a few percent)."""
    if before is None or after is None:
        return None
    area = float(np.count_nonzero(before)) * scale
    return None if area == 0 else min(1.0, float(np.count_nonzero(after)) / area)


def _later_shorter_side(steps: list[Transform]) -> int | None:
    """The side of the Rescale(int) that ends a run of steps which work at any size (flips,
    colours), or None: what a step before them may shrink its image to without losing detail."""
    for step in steps:
        if isinstance(step, Rescale):
            return step.size[0] if len(step.size) == 1 else None
        if not isinstance(step, _SIZE_FREE):
            return None
    return None


_SIZE_FREE = (_RandomFlip, ChangeSkin, RandomChangeSkin, ColorJitter)


def build_pipeline(spec) -> Pipeline:
    """Validate a spec (list of {"name", "params"}) and build it; TransformError names the bad step."""
    return Pipeline(spec)


def image_steps(spec) -> list[dict]:
    """The canonical spec without its closing ToTensor/Normalize: what still yields an image."""
    return [s for s in validate_spec(spec) if s["name"] not in TENSOR_STEPS]


def finalize_spec(spec, size: int, mean, std) -> list[dict]:
    """The spec followed by what makes fixed-size (size, size) float tensors normalised with
    the model's mean/std: Rescale [size, size] unless the steps already end at that size,
    then ToTensor and Normalize(mean, std). The model's normalisation replaces the spec's
    own, because the weights expect it."""
    steps = image_steps(spec)
    out_size = None
    for s in steps:
        out_size = REGISTRY[s["name"]].cls(**s["params"]).output_size(out_size)
    if out_size != (size, size):
        steps.append(_step("Rescale", size=[size, size]))
    steps += [_step("ToTensor"), _step("Normalize", mean=list(mean), std=list(std))]
    return validate_spec(steps)


def load_spec(path) -> list[dict]:
    """Read and validate a pipeline JSON file (a list of steps)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TransformError(N_("cannot read pipeline file {file}: {error}").format(
            file=path, error=exc.strerror or exc)) from None
    except UnicodeDecodeError:
        raise TransformError(N_("pipeline file {file} is not a text (UTF-8 JSON) file").format(file=path)) from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TransformError(N_("pipeline file {file} is not valid JSON (line {line}, column {column}: {error})")
                             .format(file=path, line=exc.lineno, column=exc.colno, error=exc.msg)) from None
    try:
        return validate_spec(spec)
    except TransformError as exc:
        raise TransformError(N_("pipeline file {file}: {error}").format(file=path, error=exc)) from None


def dump_spec(spec, path) -> Path:
    """Validate and write a spec as indented JSON; returns the path."""
    path = Path(path)
    path.write_text(json.dumps(validate_spec(spec), indent=2) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- preview helpers


def preview_draws(sample: dict, spec, n: int = 8, seed: int = 0) -> list[tuple[dict, list[dict]]]:
    """n draws of the spec's image steps on one sample: [(numpy sample, per-step params)];
    each sample holds "lesion_kept" (see Pipeline.apply_with_params).

    Seeded inside a forked RNG, so the same seed gives the same draws and the caller's
    global torch RNG is left untouched."""
    pipeline = build_pipeline(image_steps(spec))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [pipeline.apply_with_params(sample, lesion_kept=True) for _ in range(n)]


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """bool HxW: lesion pixels with a 4-neighbour outside the lesion (or on the image edge)."""
    inside = np.asarray(mask) != 0
    padded = np.pad(inside, 1, constant_values=False)
    eroded = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return inside & ~eroded


def overlay(image: np.ndarray, mask: np.ndarray | None, mode: str = "outline",
            colour=(0, 255, 0), alpha: float = 0.3) -> np.ndarray:
    """uint8 HxWx3: the image with the mask drawn as an outline, or as a translucent fill
    (alpha of the colour: the lesion keeps 1 - alpha of its contrast beneath) edged by the outline."""
    out = np.array(image, dtype=np.uint8)
    if mask is None:
        return out
    if mode not in ("outline", "overlay"):
        raise ValueError(f'mode must be "outline" or "overlay", got {mode!r}')
    if mode == "overlay":
        inside = np.asarray(mask) != 0
        blend = (1 - alpha) * out[inside] + alpha * np.asarray(colour, dtype=np.float32)
        out[inside] = np.round(blend).astype(np.uint8)
    out[mask_outline(mask)] = colour
    return out


def _unnormalize(t: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo Normalize on (..., 3, H, W); mean/std None means the tensor is already in [0, 1]."""
    if mean is None:
        return t
    shape = (3, 1, 1)
    return t * torch.tensor(std, dtype=t.dtype).view(shape) + torch.tensor(mean, dtype=t.dtype).view(shape)


def denormalize(tensor: torch.Tensor, mean=None, std=None) -> np.ndarray:
    """float (3, H, W) or (N, 3, H, W) tensor -> uint8 (H, W, 3) or (N, H, W, 3).
    With mean/std None the tensor is taken as already in [0, 1]."""
    t = _unnormalize(tensor.detach().float().cpu(), mean, std)
    return (t.clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1).numpy()


def batch_grid(images, mean=None, std=None, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """uint8 HxWx3 grid of a batch (the notebook's show_batch, via make_grid).

    images: a (N, 3, H, W) tensor, or a list of (3, H, W) tensors, of samples whose "image" is
    such a tensor, or of uint8 HxWx3 arrays; all one size. Tensors are un-normalised with
    mean/std (None: already in [0, 1])."""
    if isinstance(images, torch.Tensor):
        batch = _unnormalize(images.detach().float().cpu(), mean, std)
    else:
        tensors = []
        for item in images:
            img = item["image"] if isinstance(item, dict) else item
            if isinstance(img, np.ndarray):
                tensors.append(torch.from_numpy(img).permute(2, 0, 1).float() / 255)
            else:
                tensors.append(_unnormalize(img.detach().float().cpu(), mean, std))
        if len({tuple(t.shape) for t in tensors}) > 1:
            raise TransformError(N_("batch_grid needs images of one size; end the pipeline with a fixed-size crop"))
        batch = torch.stack(tensors)
    return denormalize(make_grid(batch.clamp(0, 1), nrow=nrow, padding=padding))
