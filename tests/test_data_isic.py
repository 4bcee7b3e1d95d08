"""The official ISIC 2017 layout, detected automatically: synthetic files and the real sample."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from lesion_core.data import LesionDataset, load_dataset

from test_data import lesion_arrays

_STEMS = {"train": "Training", "val": "Validation", "test": "Test_v2"}
_ONE_HOT = {0: ("0.0", "0.0"), 1: ("1.0", "0.0"), 2: ("0.0", "1.0")}


def make_isic(root: Path, splits: dict, source: Path | None = None) -> Path:
    """Write the official layout: split -> list of (isic id, label); images from source if given.

    With source (a notebook-layout folder of real images), the image and mask of
    source/images/<n>.jpg are copied; otherwise small synthetic lesions are drawn.
    """
    sources = sorted((source / "images").glob("*.jpg")) if source else []
    for split, rows in splits.items():
        stem = _STEMS[split]
        images = root / f"ISIC-2017_{stem}_Data"
        masks = root / f"ISIC-2017_{stem}_Part1_GroundTruth"
        images.mkdir(parents=True)
        masks.mkdir()
        with open(root / f"ISIC-2017_{stem}_Part3_GroundTruth.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image_id", "melanoma", "seborrheic_keratosis"])
            for isic_id, label in rows:
                writer.writerow([isic_id, *_ONE_HOT[label]])
                if sources:
                    real = sources.pop(0)
                    shutil.copy(real, images / f"{isic_id}.jpg")
                    shutil.copy(source / "masks" / f"{real.stem}.png",
                                masks / f"{isic_id}_segmentation.png")
                else:
                    image, mask = lesion_arrays(40, label)
                    Image.fromarray(image).save(images / f"{isic_id}.jpg")
                    Image.fromarray(mask * 255).save(masks / f"{isic_id}_segmentation.png")
                # The official download also holds superpixel files; they must be ignored.
                Image.new("RGB", (8, 8)).save(images / f"{isic_id}_superpixels.png")
    return root


def ids(start, n):
    return [(f"ISIC_{start + i:07d}", i % 3) for i in range(n)]


def test_official_layout_is_detected_with_its_splits(tmp_path):
    root = make_isic(tmp_path, {"train": ids(0, 9), "val": ids(100, 6), "test": ids(200, 3)})
    data = load_dataset(root)
    assert data.layout == "isic2017" and data.report.problems == []
    assert [len(data.split(s)) for s in ("train", "val", "test")] == [9, 6, 3]
    assert data.split("test")[0].id == "ISIC_0000200"
    assert {r.label for r in data.split("val")} == {0, 1, 2}
    sample = LesionDataset(data.split("train"))[1]
    assert sample["id"] == "ISIC_0000001" and sample["label"] == 1
    assert sample["mask"] is not None and sample["mask"].max() == 1


def test_training_only_is_split_stratified(tmp_path):
    root = make_isic(tmp_path, {"train": ids(0, 30)})
    data = load_dataset(root, val_fraction=0.2, test_fraction=0.2)
    for split in ("val", "test"):
        assert sorted(r.label for r in data.split(split)) == [0, 0, 1, 1, 2, 2]


def test_missing_segmentation_is_a_note(tmp_path):
    root = make_isic(tmp_path, {"train": ids(0, 9)})
    (root / "ISIC-2017_Training_Part1_GroundTruth" / "ISIC_0000004_segmentation.png").unlink()
    data = load_dataset(root)
    assert data.report.n_usable == 9
    assert [(n.id, n.kind) for n in data.report.notes if n.id] == [("ISIC_0000004", "no_mask")]


def test_missing_segmentation_folder_is_one_note(tmp_path):
    root = make_isic(tmp_path, {"train": ids(0, 6), "val": ids(50, 3), "test": ids(80, 3)})
    shutil.rmtree(root / "ISIC-2017_Training_Part1_GroundTruth")
    data = load_dataset(root)
    assert data.split("train")[0].mask_path is None and data.split("val")[0].mask_path
    assert [(n.id, n.kind) for n in data.report.notes] == [("", "no_masks")]
    assert "ISIC-2017_Training_Part1_GroundTruth/" in data.report.notes[0].message


def _rewrite_first_row(root: Path, melanoma: str, keratosis: str):
    path = root / "ISIC-2017_Training_Part3_GroundTruth.csv"
    lines = path.read_text().splitlines()
    lines[1] = f"ISIC_0000000,{melanoma},{keratosis}"
    path.write_text("\n".join(lines) + "\n")


def test_both_diagnoses_set_is_a_problem(tmp_path):
    root = make_isic(tmp_path, {"train": ids(0, 9)})
    _rewrite_first_row(root, "1.0", "1.0")
    problems = load_dataset(root).report.problems
    assert [(p.id, p.kind) for p in problems] == [("ISIC_0000000", "label_invalid")]


def test_fractional_diagnosis_is_a_problem(tmp_path):
    root = make_isic(tmp_path, {"train": ids(0, 9)})
    _rewrite_first_row(root, "0.5", "0.0")
    problems = load_dataset(root).report.problems
    assert [(p.id, p.kind) for p in problems] == [("ISIC_0000000", "label_invalid")]
    assert "0.5" in problems[0].message


def test_text_diagnosis_is_a_problem(tmp_path):
    root = make_isic(tmp_path, {"train": ids(0, 9)})
    _rewrite_first_row(root, "yes", "0.0")
    assert [p.kind for p in load_dataset(root).report.problems] == ["label_invalid"]


def test_missing_image_in_official_layout(tmp_path):
    root = make_isic(tmp_path, {"train": ids(0, 9)})
    (root / "ISIC-2017_Training_Data" / "ISIC_0000002.jpg").unlink()
    problems = load_dataset(root).report.problems
    assert [(p.id, p.kind) for p in problems] == [("ISIC_0000002", "missing_image")]


def test_real_images_in_the_official_layout(tmp_path, isic_dev_root):
    root = make_isic(tmp_path / "isic", {"train": ids(0, 6), "val": ids(50, 3), "test": ids(80, 3)},
                     source=isic_dev_root)
    data = load_dataset(root)
    assert data.layout == "isic2017" and data.report.problems == []
    assert data.report.n_usable == 12 and len(data.split("val")) == 3
    original = np.asarray(Image.open(sorted((isic_dev_root / "images").glob("*.jpg"))[0]))
    sample = LesionDataset(data.split("train"))[0]
    assert np.array_equal(sample["image"], original)
    assert set(np.unique(sample["mask"])) == {0, 1}
