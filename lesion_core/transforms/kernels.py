"""Joint image+mask kernels on the pipeline state: orientation, crops, resizing, the lesion's
box, painting and shifting the skin tone. The state is {"image": uint8 3xHxW, "mask": uint8
1xHxW or None, ...}; every function returns a new state."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from torchvision.transforms.v2 import functional as F


def use_calling_thread() -> None:
    """Run OpenCV on the calling thread alone, as torch does in a DataLoader worker: the
    workers (or the server's sessions) are the parallelism, and a thread pool per worker would
    only oversubscribe the cores. Process-wide, so the entry points call it (the command line,
    the app, each DataLoader worker), never an import."""
    cv2.setNumThreads(0)

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


# Steps that turn the image into a float tensor; they must close a pipeline.
TENSOR_STEPS = ("ToTensor", "Normalize")


State = dict[str, Any]


Size = tuple[int, int]


def with_pixels(state: State, image: torch.Tensor, mask: torch.Tensor | None) -> State:
    """A copy of state with a new image and mask."""
    new = dict(state)
    new["image"], new["mask"] = image, mask
    return new


def state_size(state: State) -> Size:
    warp = state.get("warp")
    if warp is not None:
        return warp.size
    h, w = state["image"].shape[-2:]
    return (w, h) if state.get("orient", (0, 0, 0))[2] else (h, w)


def orient_state(state: State, flip_rows: bool, flip_cols: bool, transpose: bool) -> State:
    """The state with flips of the current rows/columns, then a transpose, added to its pending
    orientation."""
    rows, cols, turned = state.get("orient", (False, False, False))
    if turned:  # flipping the rows of a transposed image flips the columns underneath
        flip_rows, flip_cols = flip_cols, flip_rows
    new = dict(state)
    new["orient"] = (rows != flip_rows, cols != flip_cols, turned != transpose)
    return new


def apply_orient(state: State) -> State:
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


def crop_state(state: State, top: int, left: int, height: int, width: int) -> State:
    """Crop image and mask alike; areas outside the image are zero (black image, no lesion)."""
    mask = state["mask"]
    h, w = state["image"].shape[-2:]
    if top >= 0 and left >= 0 and top + height <= h and left + width <= w:  # a view, no checks
        window = (..., slice(top, top + height), slice(left, left + width))
        return with_pixels(state, state["image"][window], None if mask is None else mask[window])
    return with_pixels(
        state,
        F.crop_image(state["image"], top, left, height, width),
        None if mask is None else F.crop_mask(mask, top, left, height, width),
    )


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


def resized_size(in_size: Size, size: list[int]) -> Size:
    """torchvision's resize size: [shorter side] keeps the aspect ratio, [h, w] is exact."""
    if len(size) == 2:
        return size[0], size[1]
    h, w = in_size
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(size[0] * long / short)
    return (size[0], new_long) if h <= w else (new_long, size[0])


def resize_state(state: State, size: list[int], leave: int = 2) -> State:
    """Resize (size = [shorter side] or [h, w]): image bilinear+antialias, mask nearest.
    A shrink by 2 leave x or more keeps every k-th pixel of the image first, leaving
    leave..2 leave x to antialias.
    leave 2: Rescale, whose output is evaluated: torch's antialiased bilinear does the rest.
    leave 1: a random crop's zoom, a training augmentation: at most 2x is left, where plain
    bilinear already weighs every pixel, and OpenCV's (albumentations' resize, which
    antialiases nothing at any factor) takes a fifth of the time of torch's antialiased one."""
    image, mask = state["image"], state["mask"]
    out = resized_size(tuple(image.shape[-2:]), size)
    k = _stride_for(tuple(image.shape[-2:]), out, leave)
    if k > 1:
        image = _every_kth(image, k)
    if leave == 1 and max(*image.shape[-2:], *out) < WARP_MAX_SIDE:
        pixels = opencv_pixels(image)
        image = torch.from_numpy(cv2.resize(pixels, (out[1], out[0]), interpolation=cv2.INTER_LINEAR)).permute(2, 0, 1)
    else:
        # The interpolate call F.resize_image makes for uint8 bilinear, without its checks and
        # reshapes: the same pixels, half the time at 224 px.
        image = torch.nn.functional.interpolate(image[None], size=list(out), mode="bilinear", antialias=True)[0]
    # The mask is picked from the full-size one: the exact nearest pixels, and only their rows.
    return with_pixels(state, image, None if mask is None else _resize_mask(mask, out))


def opencv_pixels(image: torch.Tensor) -> np.ndarray:
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
    return pick(mask, rows, cols)


def pick(mask: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """mask[:, rows][:, :, cols] as a new contiguous tensor. Through numpy: torch's index_select
    on a view (a crop of a full-size mask) takes 10-25x longer than numpy's fancy indexing.
    (take, not a second fancy index, which would lay the result out column-major: later
    elementwise ops on it, the skin's painting, run 4x slower.)"""
    return torch.from_numpy(mask.numpy()[:, rows].take(cols, axis=2))


def lesion_box(mask: torch.Tensor, by: int = 0, bx: int = 0) -> list[int] | None:
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


_DARK = 8.0  # L*: below it a pixel is the dermoscope's black vignette or padding, not skin (as skin.py)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """float32 CIELAB (L* 0-100) of uint8 RGB (..., 3), through OpenCV (D65, sRGB)."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)


def shift_skin(pixels: np.ndarray, skin: np.ndarray, colour) -> None:
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


def binary(mask: torch.Tensor) -> torch.Tensor:
    """A new uint8 {0, 1} tensor: any non-zero value is lesion. (clamp: masks are never negative;
    mask != 0 builds a bool tensor 6x slower.)"""
    return mask.clamp(max=1).to(torch.uint8)


def binary_float(mask: torch.Tensor) -> torch.Tensor:
    """A new float32 {0, 1} tensor: any non-zero value is lesion."""
    return mask.float().clamp_(max=1) if mask.dtype != torch.float32 else mask.clamp(max=1)
