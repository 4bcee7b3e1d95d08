"""Skin tone of an image: the Individual Typology Angle (ITA) of the skin around the lesion.

ITA = atan((L* - 50) / b*) in degrees, in CIELAB (D65), from the pixels outside the lesion
mask; the usual six categories (Chardon et al. 1991; Del Bino et al. 2013) name it. One value
per image: the ITA of the median L* and median b* of its skin, robust to hairs and rulers.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.color import lab2rgb, rgb2lab

from lesion_core.data.images import read_image, read_mask
from lesion_core.i18n import N_

# (name, lowest ITA in degrees), lightest first; a value belongs to the first group it reaches.
ITA_GROUPS = ((N_("very light"), 55.0), (N_("light"), 41.0), (N_("intermediate"), 28.0), (N_("tan"), 10.0),
              (N_("brown"), -30.0), (N_("dark"), -math.inf))
GROUP_NAMES = tuple(name for name, _ in ITA_GROUPS)
NO_MASK = N_("no mask")
# Dermoscopes leave black corners (the lens's vignette): near-black pixels are not skin.
_MIN_LIGHTNESS = 8.0
# Too few skin pixels (a lesion filling the frame) give no estimate.
_MIN_PIXELS = 50

# One CIELAB colour per group, in the middle of its ITA range (a* 12, b* 16-20, as skin is),
# painted by the robustness report; PALETTE_RGB holds them as uint8 RGB.
PALETTE_LAB = {"very light": (80.0, 8.0, 15.0), "light": (68.0, 10.0, 17.0),
               "intermediate": (61.0, 12.0, 18.0), "tan": (56.0, 13.0, 19.0),
               "brown": (44.0, 14.0, 22.0), "dark": (30.0, 12.0, 16.0)}


def lab_to_rgb(lab) -> tuple[int, int, int]:
    """One CIELAB (L*, a*, b*) colour as uint8 RGB (sRGB, D65)."""
    rgb = lab2rgb(np.asarray(lab, dtype=float).reshape(1, 1, 3))[0, 0]
    return tuple(int(round(v * 255)) for v in np.clip(rgb, 0, 1))


PALETTE_RGB = {name: lab_to_rgb(lab) for name, lab in PALETTE_LAB.items()}


def ita_from_lab(lightness: float, b_star: float) -> float:
    """ITA in degrees; atan2 keeps it defined (and monotone in L*) when b* is 0 or negative."""
    return math.degrees(math.atan2(lightness - 50.0, b_star))


def ita_group(angle: float | None) -> str:
    """The category of an ITA angle ("very light" ... "dark"); NO_MASK when there is none."""
    if angle is None or not math.isfinite(angle):
        return NO_MASK
    return next(name for name, low in ITA_GROUPS if angle > low or low == -math.inf)


def image_ita(image: np.ndarray, mask: np.ndarray | None) -> float | None:
    """ITA of the skin of one image: uint8 (H, W, 3) RGB, mask (H, W) {0, 1} (1 = lesion).

    None without a mask or with fewer than a few dozen skin pixels."""
    if mask is None:
        return None
    skin = np.asarray(mask) == 0
    if skin.sum() < _MIN_PIXELS:
        return None
    lab = rgb2lab(np.asarray(image)[skin].reshape(-1, 1, 3)).reshape(-1, 3)
    lab = lab[lab[:, 0] >= _MIN_LIGHTNESS]
    if len(lab) < _MIN_PIXELS:
        return None
    return ita_from_lab(float(np.median(lab[:, 0])), float(np.median(lab[:, 2])))


def dataset_tones(records, max_side: int = 128) -> list[dict]:
    """{"id", "split", "label", "ita", "group"} per record, from images decoded small (fast)."""
    rows = []
    for record in records:
        image = read_image(record.image_path, max_side)
        mask = read_mask(record.mask_path, image.shape[:2]) if record.mask_path else None
        angle = image_ita(image, mask)
        rows.append({"id": record.id, "split": record.split, "label": record.label,
                     "ita": None if angle is None else round(angle, 2), "group": ita_group(angle)})
    return rows


def distribution(rows: list[dict], class_names) -> dict:
    """{split: {class name: {group: count}}} over GROUP_NAMES and NO_MASK (zeros included)."""
    out: dict = {}
    for row in rows:
        per_class = out.setdefault(row["split"], {n: dict.fromkeys((*GROUP_NAMES, NO_MASK), 0) for n in class_names})
        per_class[class_names[row["label"]]][row["group"]] += 1
    return out
