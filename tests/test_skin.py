"""Skin tone (ITA) of synthetic patches of known CIELAB colour, and check-data --json."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image
from skimage.color import lab2rgb

from lesion_core.data import skin
from lesion_core.cli import main


def patch(lab, size=64, lesion=(20, 10, 5), vignette=True):
    """A skin patch of one CIELAB colour with a dark lesion in the middle and black corners;
    returns (image uint8 (H, W, 3), mask {0, 1})."""
    rgb = np.clip(lab2rgb(np.array(lab, float).reshape(1, 1, 3)), 0, 1)[0, 0]
    image = np.empty((size, size, 3), np.uint8)
    image[:] = np.round(rgb * 255).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    image[mask == 1] = lesion
    if vignette:  # the dermoscope's black corners must not darken the estimate
        yy, xx = np.mgrid[:size, :size]
        image[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 > (0.65 * size) ** 2] = 0
    return image, mask


@pytest.mark.parametrize("lab, group", [
    ((85, 5, 12), "very light"), ((70, 8, 20), "light"), ((62, 10, 20), "intermediate"),
    ((55, 12, 20), "tan"), ((45, 12, 25), "brown"), ((25, 10, 14), "dark"),
])
def test_ita_of_a_patch_of_known_colour(lab, group):
    expected = math.degrees(math.atan((lab[0] - 50) / lab[2]))
    image, mask = patch(lab)
    angle = skin.image_ita(image, mask)
    assert angle == pytest.approx(expected, abs=1.5)  # uint8 rounding of the colour only
    assert skin.ita_group(angle) == group


def test_group_boundaries_and_missing_values():
    assert [skin.ita_group(a) for a in (55.01, 55, 41, 28, 10, -30, -30.01)] == [
        "very light", "light", "intermediate", "tan", "brown", "dark", "dark"]
    assert skin.ita_group(None) == skin.NO_MASK
    image, mask = patch((70, 8, 20))
    assert skin.image_ita(image, None) is None
    assert skin.image_ita(image, np.ones_like(mask)) is None  # all lesion, no skin


def test_lesion_pixels_do_not_count():
    light, mask = patch((80, 5, 15), lesion=(10, 5, 2))
    dark_lesion, _ = patch((80, 5, 15), lesion=(250, 250, 250))
    assert skin.image_ita(light, mask) == pytest.approx(skin.image_ita(dark_lesion, mask))


def test_palette_tones_land_in_their_own_groups():
    for name, rgb in skin.PALETTE_RGB.items():
        image = np.empty((32, 32, 3), np.uint8)
        image[:] = rgb
        assert skin.ita_group(skin.image_ita(image, np.zeros((32, 32), np.uint8))) == name


def test_check_data_json_reports_the_skin_tone_distribution(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    tones = [(85, 5, 12), (45, 12, 25), (25, 10, 14)]
    rows = []
    for index in range(30):
        label, sample_id = index % 3, f"p{index:03d}"
        image, mask = patch(tones[(index // 3) % 3], size=96)
        Image.fromarray(image).save(tmp_path / "images" / f"{sample_id}.jpg", quality=95)
        if index != 0:
            Image.fromarray(mask * 255).save(tmp_path / "masks" / f"{sample_id}.png")
        rows.append((sample_id, label))
    with open(tmp_path / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("id", "label"), *rows])
    assert main(["check-data", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["usable"] is True and out["n_usable"] == 30
    per_split = out["skin_tone"]["distribution"]
    totals = {g: sum(c[g] for split in per_split.values() for c in split.values()) for g in out["skin_tone"]["groups"]}
    assert totals == {"very light": 11, "light": 0, "intermediate": 0, "tan": 0, "brown": 9, "dark": 9,
                      "no mask": 1}
    assert sum(per_split["train"]["nevus"].values()) == out["counts"]["train"]["nevus"]
