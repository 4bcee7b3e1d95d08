"""Deferred warps: a rotation is recorded, composed with the flips, crops and resizes after
it, and the image is resampled once, at the final size, by OpenCV's warpAffine (lazy
resampling, as MONAI does)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from lesion_core.errors import TransformError
from lesion_core.i18n import N_
from lesion_core.transforms.kernels import (
    WARP_MAX_SIDE,
    Size,
    State,
    apply_orient,
    lesion_box,
    opencv_pixels,
    pick,
    shift_skin,
    with_pixels,
)


@dataclass(frozen=True)
class Warp:
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
    pre: Warp | None = None

    def then(self, a: float, b: float, c: float, d: float, e: float, f: float, size: Size) -> Warp:
        """This warp after a step whose output (x, y) reads its input at (a x + b y + c, d x + e y + f)."""
        return Warp(self.a * a + self.b * d, self.a * b + self.b * e, self.a * c + self.b * f + self.c,
                     self.d * a + self.e * d, self.d * b + self.e * e, self.d * c + self.e * f + self.f,
                     size, self.paint, self.paint_area, self.pre)

    def full(self) -> Warp:
        """Output -> the image as it stands: pre after this."""
        return self if self.pre is None else self.pre.then(self.a, self.b, self.c, self.d, self.e, self.f, self.size)

    def crop(self, top: int, left: int, height: int, width: int) -> Warp:
        return self.then(1, 0, left, 0, 1, top, (height, width))

    def resize(self, out: Size) -> Warp:
        (h, w), (oh, ow) = self.size, out
        return self.then(w / ow, 0, 0, 0, h / oh, 0, out)

    def flip(self, horizontal: bool) -> Warp:
        h, w = self.size
        return self.then(-1, 0, w, 0, 1, 0, self.size) if horizontal else self.then(1, 0, 0, 0, -1, h, self.size)


def _warp_source_window(warp: Warp, top: int, left: int, height: int, width: int, src: Size) -> list[int]:
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


def warp_pixels(source: torch.Tensor, warp: Warp, window: list[int], mode: str) -> torch.Tensor:
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
    region = opencv_pixels(source[:, sy:sy + sh, sx:sx + sw])  # only what is read
    # The output's (x, y) reads the source at warp(x + 0.5, y + 0.5) in our coordinates (pixel
    # centres at +0.5); OpenCV's pixel centres are whole numbers, and the region starts at (sx, sy).
    matrix = np.array([[warp.a, warp.b, warp.a * (left + 0.5) + warp.b * (top + 0.5) + warp.c - 0.5 - sx],
                       [warp.d, warp.e, warp.d * (left + 0.5) + warp.e * (top + 0.5) + warp.f - 0.5 - sy]])
    out = cv2.warpAffine(region, matrix, (width, height), flags=_CV2_MODES[mode] | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = torch.from_numpy(out)
    return out[None] if channels == 1 else out.permute(2, 0, 1)


def materialize(state: State) -> State:
    """The state with its deferred warp applied to the image (and the skin painted): plain again."""
    state = apply_orient(state)
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
        mask = pick(mask, rows, cols)  # nearest: the pixel that holds the centre
        if padded:
            _zero_rows_cols(mask, pad_rows, pad_cols)
        new["mask"] = mask
    image = warp_pixels(state["image"], warp.full(), [0, 0, h, w], "bilinear")
    if padded:
        _zero_rows_cols(image, pad_rows, pad_cols)
    if warp.paint is not None:
        skin = mask[0].numpy() == 0
        # Outside the area that was painted (padding added after the painting) the image stays.
        x0, x1, y0, y1 = warp.paint_area
        if _beyond(x, x0, x1) or _beyond(y, y0, y1):
            skin &= ((y >= y0) & (y < y1))[:, None] & ((x >= x0) & (x < x1))[None, :]
        shift_skin(image.permute(1, 2, 0).numpy(), skin, warp.paint)  # in place, on what the warp wrote
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


def with_warp(state: State, warp: Warp, mask: torch.Tensor | None = None) -> State:
    new = dict(state)
    new["warp"] = warp
    if mask is not None:
        new["mask"] = mask
    return new


def rotation_warp(size: Size, angle: float, expand: bool) -> Warp:
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
    return Warp(cos, -sin, w / 2 - cos * ow / 2 + sin * oh / 2,
                 sin, cos, h / 2 - sin * ow / 2 - cos * oh / 2, (oh, ow))


def rotated_lesion_window(mask: torch.Tensor, warp: Warp) -> list[int] | None:
    """A window of the rotation canvas that holds every pixel of the rotated (nearest) lesion:
    the box around the rotated corners of the lesion's box, and a pixel of slack; None if there
    is no lesion, or none of it on the canvas (a rotation without expand can turn a lesion near a
    corner out of it). (Sampling the rest of the canvas would only find background.)"""
    box = lesion_box(mask)
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


def paint_skin(state: State, colour: tuple[int, int, int]) -> State:
    """The skin (every non-lesion pixel) takes the colour as its median tone and keeps its
    texture (shift_skin); lesion pixels are kept. With a deferred warp the painting waits for
    the image, at its final size."""
    warp = state.get("warp")
    if warp is not None and warp.paint is None:
        # The painted area is the image as it stands: where a later crop pads, it stays black.
        (h, w), a, c, e, f = warp.size, warp.a, warp.c, warp.e, warp.f
        area = (min(c, a * w + c), max(c, a * w + c), min(f, e * h + f), max(f, e * h + f))
        new = dict(state)
        new["warp"] = dataclasses.replace(warp, paint=tuple(colour), paint_area=area)
        return new
    state = materialize(state)  # (a second tone before the first is painted: rare)
    pixels = state["image"].permute(1, 2, 0).numpy().copy()  # (the input image is shared, never written)
    shift_skin(pixels, state["mask"][0].numpy() == 0, colour)
    return with_pixels(state, torch.from_numpy(pixels).permute(2, 0, 1), state["mask"])
