"""Decoding images and masks (EXIF orientation, modes, JPEG draft mode), and checking
that a file is one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from lesion_core.errors import DataError
from lesion_core.i18n import N_


class BadFile(Exception):
    """A row-level problem found while checking files: args are (kind, message)."""


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode (L, LA, P, RGBA, CMYK, 16-bit, 32-bit) as 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        # 16/32-bit grey: PIL's convert would clip to 255; scale the range down instead.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max() > 255 else 255.0
        grey = np.clip(values / top * 255 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return image.convert("RGB")


def _fit_size(size: tuple, max_side: int | None) -> tuple:
    """(width, height) scaled so the longer side is at most max_side, keeping the aspect."""
    width, height = size
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _sideways(image: Image.Image) -> bool:
    """Whether the EXIF Orientation tag turns the stored pixels by 90 degrees (5 to 8)."""
    return image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)


def _source(path_or_file):
    """A Path, or a binary file object as is (an upload): PIL opens either."""
    return path_or_file if hasattr(path_or_file, "read") else Path(path_or_file)


def _name(source) -> str:
    return str(getattr(source, "name", source))


def _reason(exc: Exception) -> str:
    """Why PIL could not read a file, without PIL's repr of the file object (an upload's repr
    shows server internals)."""
    if isinstance(exc, UnidentifiedImageError):
        return N_("not an image format this app reads (JPEG, PNG, BMP, TIFF, WebP)")
    return str(exc)


def _open_image(path, max_side: int | None) -> Image.Image:
    """Decoded RGB PIL image, upright as its EXIF Orientation says, longer side <= max_side;
    JPEGs decode at reduced size (draft)."""
    try:
        with Image.open(path) as image:
            target = _fit_size(image.size, max_side)
            if image.format == "JPEG" and target != image.size:
                # DCT scaling decodes at 1/2, 1/4 or 1/8 size directly: several times faster.
                image.draft("RGB", target)
            image.load()
            # Phones store a photo's rotation in EXIF rather than turning its pixels; every
            # viewer applies it, so masks drawn on what the viewer showed must match it too.
            if _sideways(image):
                target = target[::-1]
            ImageOps.exif_transpose(image, in_place=True)
            rgb = _to_rgb(image)
    except FileNotFoundError:
        raise DataError(N_("image not found: {file}").format(file=_name(path))) from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(N_("cannot read image {file}: {error}").format(file=_name(path), error=_reason(exc))) from None
    if rgb.size != target:
        rgb = rgb.resize(target, Image.BILINEAR, reducing_gap=2.0)
    return rgb


def read_image(path, max_side: int | None = None) -> np.ndarray:
    """Image (a path or a binary file object) as uint8 (H, W, 3) RGB, upright (EXIF
    orientation applied); with max_side the longer side is at most max_side."""
    return np.asarray(_open_image(_source(path), max_side))


def _mask_levels(image: Image.Image) -> np.ndarray:
    """Mask pixel values as a 2-D array (any mode; colour masks are reduced to grey)."""
    if image.mode not in ("L", "1", "I", "I;16", "I;16B", "I;16L", "F"):
        image = image.convert("L")
    return np.asarray(image)


def _binarize(levels: np.ndarray) -> np.ndarray:
    """{0,1} uint8 from 0/1 or 0/255 masks: values above half the scale are lesion."""
    threshold = 0 if levels.max() <= 1 else (127 if levels.max() <= 255 else 32767)
    return (levels > threshold).astype(np.uint8)


def read_mask(path, shape: tuple) -> np.ndarray:
    """Mask (a path or a binary file object) as uint8 (H, W) in {0, 1}, resized (nearest)
    to shape=(H, W) if it differs."""
    path = _source(path)
    try:
        with Image.open(path) as image:
            mask = _binarize(_mask_levels(image))
    except FileNotFoundError:
        raise DataError(N_("mask not found: {file}").format(file=_name(path))) from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(N_("cannot read mask {file}: {error}").format(file=_name(path), error=_reason(exc))) from None
    height, width = shape[:2]
    if mask.shape != (height, width):
        mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST))
    return mask


NOTE_MODES = {"L": N_("grayscale"), "LA": N_("grayscale+alpha"), "1": N_("black-and-white"), "P": N_("palette"),
               "RGBA": "RGBA", "CMYK": "CMYK", "I;16": N_("16-bit"), "I;16B": N_("16-bit"),
               "I;16L": N_("16-bit"), "I": N_("32-bit integer"), "F": N_("32-bit float")}


def check_image(path: Path) -> tuple:
    """Cheaply decode an image: ((width, height) upright, mode) or raise (kind, message)."""
    try:
        if path.stat().st_size == 0:
            raise BadFile("not_an_image", N_("{file} is an empty file (0 bytes)").format(file=path.name))
        with Image.open(path) as image:
            size, mode = image.size, image.mode
            if _sideways(image):  # read_image turns it upright; its mask must match that
                size = size[::-1]
            if image.format == "JPEG":
                # Decoding at 1/8 size still reads every byte: truncation is detected, fast.
                image.draft(image.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
            image.load()
    except BadFile:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses to decode images this large (a small file can claim a huge size).
        raise BadFile("image_too_large", N_("{file}: {error}; downscale it").format(file=path.name, error=exc)) from None
    except UnidentifiedImageError:
        raise BadFile("not_an_image", N_("{file} is not an image file PIL can read").format(file=path.name)) from None
    except (PermissionError, IsADirectoryError) as exc:
        raise BadFile("unreadable_image", N_("{file} cannot be opened: {error}").format(file=path.name,
                                                                                  error=exc.strerror)) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadFile("corrupt_image", N_("{file} is corrupt or truncated: {error}").format(file=path.name,
                                                                                       error=exc)) from None
    return size, mode


def _distinct_values(image: Image.Image) -> np.ndarray:
    """Sorted distinct pixel values of a mask; PIL's histogram is ~5x faster than np.unique."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return np.unique(np.asarray(image))
    if image.mode not in ("1", "L"):
        image = image.convert("L")
    return np.flatnonzero(image.histogram()[:256])


def check_mask(path: Path, image_size: tuple) -> bool:
    """Raise (kind, message) for an unreadable, wrongly sized, empty or non-binary mask;
    return True when the whole image is marked as lesion (usable, but worth a note)."""
    try:
        with Image.open(path) as image:
            size = image.size
            values = _distinct_values(image)
    except UnidentifiedImageError:
        raise BadFile("corrupt_mask", N_("{file} is not an image file PIL can read").format(file=path.name)) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadFile("corrupt_mask", N_("{file} cannot be decoded: {error}").format(file=path.name, error=exc)) from None
    if size != image_size:
        raise BadFile("mask_size", N_("mask is {size} but the image is {image_size}").format(
            size=f"{size[0]}x{size[1]}", image_size=f"{image_size[0]}x{image_size[1]}"))
    if values.max() == 0:
        raise BadFile("empty_mask", N_("{file} has no lesion pixels (all zero)").format(file=path.name))
    if not any(set(values.tolist()) <= {0, top} for top in (1, 255, 65535)):
        shown = ", ".join(str(v) for v in values[:6]) + (" ..." if len(values) > 6 else "")
        raise BadFile("non_binary_mask", N_("{file} has {n} distinct values ({values}); masks must be 0/255 or 0/1 "
                                         "(saved as PNG, not JPEG)").format(file=path.name, n=len(values), values=shown))
    return len(values) == 1
