"""`python -m lesion_core augment`: real files in, PNGs and params.json out, clear errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from lesion_core.cli import main
from lesion_core.transforms import PRESETS, SKIN_TONES, dump_spec, image_steps

REPO = Path(__file__).resolve().parents[1]
GREEN = (0, 255, 0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def lesion_files(tmp_path) -> tuple[Path, Path]:
    """A 90x120 JPEG with a pure-green lesion (PNG would do too) and its 0/255 PNG mask."""
    h, w = 90, 120
    yy, xx = np.mgrid[:h, :w]
    mask = (((yy - 40) / 22) ** 2 + ((xx - 70) / 30) ** 2 <= 1).astype(np.uint8)
    image = np.full((h, w, 3), (200, 150, 120), np.uint8)
    image[mask == 1] = GREEN
    Image.fromarray(image).save(tmp_path / "lesion.png")
    Image.fromarray(image).save(tmp_path / "lesion.jpg", quality=95)
    Image.fromarray(mask * 255).save(tmp_path / "lesion_mask.png")
    return tmp_path / "lesion.jpg", tmp_path / "lesion_mask.png"


def run_cli(*argv) -> int:
    return main(["augment", *map(str, argv)])


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_command_line_writes_images_masks_and_params(lesion_files, tmp_path):
    image, mask = lesion_files
    pipeline = dump_spec(PRESETS["notebook_train"], tmp_path / "pipeline.json")
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "lesion_core", "augment", str(image), "--mask", str(mask),
         "--pipeline", str(pipeline), "--n", "3", "--seed", "7", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    params = json.loads((out / "params.json").read_text())
    assert params["seed"] == 7 and params["n"] == 3 and len(params["draws"]) == 3
    assert params["pipeline"] == image_steps(PRESETS["notebook_train"])  # ToTensor/Normalize left out
    for k, draw in enumerate(params["draws"]):
        picture, lesion = read_png(out / f"{k}_image.png"), read_png(out / f"{k}_mask.png")
        assert picture.dtype == np.uint8 and picture.shape == (224, 224, 3)  # RGB, not normalised
        assert lesion.shape == (224, 224) and set(np.unique(lesion)) <= {0, 255}
        names = [s["name"] for s in draw["steps"]]
        assert names == [s["name"] for s in params["pipeline"]]
        rotation = draw["steps"][names.index("RandomRotation")]
        assert -180 <= rotation["angle"] <= 180 and len(rotation["box"]) == 4
        assert tuple(draw["steps"][names.index("RandomChangeSkin")]["tone"]) in SKIN_TONES
        assert isinstance(draw["steps"][names.index("RandomHorizontalFlip")]["flipped"], bool)
        assert 0 < draw["lesion_kept"] <= 1  # as the Augmentations page says it under each draw


def test_written_image_and_mask_stay_aligned(lesion_files, tmp_path):
    _, mask = lesion_files
    spec = dump_spec([{"name": "RandomRotation", "params": {"degrees": 180}},
                      {"name": "RandomHorizontalFlip"}, {"name": "RandomVerticalFlip"}], tmp_path / "p.json")
    assert run_cli(tmp_path / "lesion.png", "--mask", mask, "--pipeline", spec, "--n", "6", "--out", tmp_path / "o") == 0
    for k in range(6):
        green = np.all(read_png(tmp_path / "o" / f"{k}_image.png") == GREEN, axis=-1)
        inside = read_png(tmp_path / "o" / f"{k}_mask.png") == 255
        assert not (green & ~ndimage.binary_dilation(inside, np.ones((3, 3)))).any()
        assert not (ndimage.binary_erosion(inside, np.ones((3, 3))) & ~green).any()


def test_same_seed_same_files_other_seed_other_draws(lesion_files, tmp_path):
    image, mask = lesion_files
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert run_cli(image, "--mask", mask, "--pipeline", "notebook_train", "--n", "2",
                       "--seed", seed, "--out", tmp_path / name) == 0
    draws = {n: json.loads((tmp_path / n / "params.json").read_text())["draws"] for n in "abc"}
    assert draws["a"] == draws["b"] and draws["a"] != draws["c"]
    np.testing.assert_array_equal(read_png(tmp_path / "a" / "1_image.png"), read_png(tmp_path / "b" / "1_image.png"))


def test_a_0_1_mask_and_no_mask_both_work(lesion_files, tmp_path):
    image, mask = lesion_files
    Image.fromarray(read_png(mask) // 255).save(tmp_path / "mask01.png")
    assert run_cli(image, "--mask", tmp_path / "mask01.png", "--pipeline", "eval", "--n", "1", "--out", tmp_path / "a") == 0
    assert set(np.unique(read_png(tmp_path / "a" / "0_mask.png"))) == {0, 255}
    assert run_cli(image, "--pipeline", "default_train", "--n", "2", "--out", tmp_path / "b") == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["0_image.png", "1_image.png", "params.json"]
    assert json.loads((tmp_path / "b" / "params.json").read_text())["draws"][0]["mask"] is None


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_image", "image not found"),
        ("unreadable_mask", "cannot read mask"),
        ("bad_json", r"not valid JSON \(line 1"),
        ("pipeline_is_an_image", r"not a text \(UTF-8 JSON\) file"),
        ("unknown_step", r"step 1 \(Flip\): unknown transform"),
        ("bad_param", r"step 1 \(RandomCrop\): parameter 'size'"),
        ("mask_needed", r"step 1 \(CropByMask\) needs a lesion mask: pass --mask"),
        ("zero_draws", "--n must be at least 1"),
        ("out_is_a_file", "cannot write to"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(case, message, lesion_files, tmp_path, capsys):
    image, mask = lesion_files
    pipeline = tmp_path / "p.json"
    pipeline.write_text(json.dumps([{"name": "RandomHorizontalFlip"}]))
    args = {"image": image, "--mask": mask, "--pipeline": pipeline, "--n": 2, "--out": tmp_path / "out"}
    if case == "missing_image":
        args["image"] = tmp_path / "nope.jpg"
    elif case == "unreadable_mask":
        (tmp_path / "m.png").write_text("not a png")
        args["--mask"] = tmp_path / "m.png"
    elif case == "bad_json":
        pipeline.write_text("[{'name': 'RandomCrop'}]")
    elif case == "pipeline_is_an_image":
        args["--pipeline"] = image
    elif case == "unknown_step":
        pipeline.write_text(json.dumps([{"name": "Flip"}]))
    elif case == "bad_param":
        pipeline.write_text(json.dumps([{"name": "RandomCrop", "params": {"size": -3}}]))
    elif case == "mask_needed":
        pipeline.write_text(json.dumps([{"name": "CropByMask"}]))
        del args["--mask"]
    elif case == "zero_draws":
        args["--n"] = 0
    elif case == "out_is_a_file":
        (tmp_path / "out").write_text("a file")
    argv = [args.pop("image")] + [x for kv in args.items() for x in kv]
    assert run_cli(*argv) == 2
    assert re.search(message, capsys.readouterr().err)


def test_large_images_are_shrunk_to_1024_by_default_and_kept_with_zero(tmp_path):
    big = np.full((1100, 2200, 3), 180, np.uint8)
    Image.fromarray(big).save(tmp_path / "big.png")
    assert run_cli(tmp_path / "big.png", "--pipeline", "eval", "--n", "1", "--out", tmp_path / "a") == 0
    assert read_png(tmp_path / "a" / "0_image.png").shape[:2] == (224, 224)
    flips = [{"name": "RandomHorizontalFlip", "params": {"p": 1.0}}]
    pipeline = dump_spec(flips, tmp_path / "flip.json")
    assert run_cli(tmp_path / "big.png", "--pipeline", pipeline, "--n", "1", "--out", tmp_path / "b") == 0
    assert read_png(tmp_path / "b" / "0_image.png").shape[:2] == (512, 1024)
    assert run_cli(tmp_path / "big.png", "--pipeline", pipeline, "--n", "1", "--max-side", "0",
                   "--out", tmp_path / "c") == 0
    assert read_png(tmp_path / "c" / "0_image.png").shape[:2] == (1100, 2200)
