"""Robustness report: the shifts themselves, the report of a tiny real run, the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lesion_core import runs
from lesion_core.cli import main
from lesion_core.data import skin
from lesion_core.evaluation import robustness
from lesion_core.transforms import kernels
from lesion_core import training
from tests.test_train import tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def image_and_mask(size=40):
    rng = np.random.default_rng(0)
    image = rng.integers(40, 200, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[5:15, 20:35] = 1  # off centre, so a rotation moves it
    return image, mask


def condition(kind, value):
    return {"name": kind, "kind": kind, "ita_group": None, "value": value}


@pytest.mark.parametrize("group", ["very light", "intermediate", "dark"])
def test_skin_shift_gives_the_groups_tone_keeps_the_texture_and_only_the_skin(group):
    image, mask = image_and_mask()
    before = image.copy()
    tone = list(skin.PALETTE_RGB[group])
    out, same_mask = robustness.shift(image, mask, condition("skin", tone))
    assert (out[mask == 1] == image[mask == 1]).all() and same_mask is mask
    assert (image == before).all()  # the input (a cached, shared array) is never written
    assert skin.ita_group(skin.image_ita(out, mask)) == group
    assert out[mask == 0].std(axis=0).min() > 10  # texture kept: not one flat colour
    expected = image.copy()  # the same kernel as the RandomChangeSkin augmentation
    kernels.shift_skin(expected, mask == 0, tone)
    assert (out == expected).all()


def test_rotation_moves_the_mask_with_the_image():
    image, mask = image_and_mask()
    image[mask == 1] = 255  # a white lesion on darker skin: where it goes, the mask must go
    out, rotated = robustness.shift(image, mask, condition("rotation", 30.0))
    assert set(np.unique(rotated)) <= {0, 1} and abs(int(rotated.sum()) - int(mask.sum())) < 0.15 * mask.sum()
    assert not (rotated == mask).all()
    assert out[rotated == 1].mean() > 200 and out[rotated == 0].mean() < 200


def test_brightness_contrast_and_blur():
    image, mask = image_and_mask()
    darker, _ = robustness.shift(image, mask, condition("brightness", 0.5))
    np.testing.assert_allclose(darker.astype(float), image * 0.5, atol=1)
    flat, _ = robustness.shift(image, mask, condition("contrast", 0.3))
    blurred, _ = robustness.shift(image, mask, condition("blur", 2.0))
    assert flat.std() < image.std() * 0.5 and blurred.std() < image.std() * 0.5


def test_report_of_a_tiny_run_with_images_without_masks(demo_root, tmp_path, capsys):
    data_copy = shutil.copytree(demo_root, tmp_path / "data")
    run_dir = training.run_training(tiny_config(data_copy, epochs=1), tmp_path / "runs")
    test_ids = runs.read_config(run_dir)["data"]["split"]["splits"]["test"]
    for sample_id in test_ids[:2]:
        (data_copy / "masks" / f"{sample_id}.png").unlink()
    assert main(["robustness", str(run_dir), "--json", "--resamples", "200"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((run_dir / "robustness_test.json").read_text())
    n = len(test_ids)
    assert report["n"] == n and report["skipped_no_mask"] == 2
    # The unshifted baseline reproduces the run's own test metrics (same model, same pipeline).
    stored = runs.read_metrics(run_dir, "test")
    assert report["baseline"]["mean_auc"]["value"] == pytest.approx(stored["mean_auc"], abs=1e-3)
    rows = {row["name"]: row for row in report["conditions"]}
    assert len(rows) == 11
    for row in rows.values():
        assert set(row) >= {"name", "kind", "ita_group", "mean_auc", "ci_low", "ci_high", "n"}
        assert row["n"] == (n - 2 if row["kind"] == "skin" else n)
        assert (row["ita_group"] is None) == (row["kind"] != "skin")
    assert {r["ita_group"] for r in rows.values() if r["kind"] == "skin"} == {
        "very light", "light", "intermediate", "tan", "brown", "dark"}
    assert sum(g["n"] for g in report["groups"]) == n
    assert next(g for g in report["groups"] if g["ita_group"] == "no mask")["n"] == 2
    assert all(g["warning"] for g in report["groups"])  # a handful of demo images per group
    assert robustness.read_report(run_dir, "test")["run"] == run_dir.name
    assert len(robustness.figure(report).data) == 1
    assert main(["robustness", str(run_dir), "--resamples", "100"]) == 0
    assert "skin dark" in capsys.readouterr().out


def test_a_damaged_stored_report_is_ignored(tmp_path):
    (tmp_path / "robustness_test.json").write_text('{"baseline": {}, "conditions": [1, 2]}')
    assert robustness.read_report(tmp_path, "test") is None
    (tmp_path / "robustness_test.json").write_text("not json")
    assert robustness.read_report(tmp_path, "test") is None
