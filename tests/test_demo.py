"""The demo generator: layout, determinism, exact masks, class differences, cached demo_dir."""

from __future__ import annotations

import csv
import time

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from lesion_core.data import demo
from lesion_core.data import load_dataset, read_image, read_mask
from lesion_core.data.demo import demo_dir, generate_demo
from lesion_core.errors import DataError
from lesion_core.paths import cache_dir


def test_layout_is_the_notebooks(demo_root):
    rows = list(csv.DictReader(open(demo_root / "labels.csv")))
    assert len(rows) == 60 and list(rows[0]) == ["id", "label"]
    assert sorted(int(r["label"]) for r in rows) == [0] * 20 + [1] * 20 + [2] * 20
    for row in rows[:6]:
        image = Image.open(demo_root / "images" / f"{row['id']}.jpg")
        mask = np.asarray(Image.open(demo_root / "masks" / f"{row['id']}.png"))
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (96, 96)
        assert mask.shape == (96, 96) and set(np.unique(mask)) == {0, 255}
    data = load_dataset(demo_root)
    assert data.report.problems == [] and data.report.notes == []


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = generate_demo(tmp_path / "a", n_per_class=2, size=64, seed=5)
    b = generate_demo(tmp_path / "b", n_per_class=2, size=64, seed=5)
    c = generate_demo(tmp_path / "c", n_per_class=2, size=64, seed=6)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 13
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / "images/demo_0000.jpg").read_bytes() != (c / "images/demo_0000.jpg").read_bytes()


def test_mask_is_exactly_where_the_lesion_is_drawn():
    rng = np.random.default_rng(0)
    for kind in range(3):
        image, mask = demo.make_sample(kind, 128, rng)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
        # Pixels just inside the edge differ from skin just outside it (the lesion is drawn
        # exactly under the mask, lossless here since make_sample returns raw arrays).
        inner = ndimage.binary_erosion(mask, iterations=3)
        outer = ndimage.binary_dilation(mask, iterations=3) & ~ndimage.binary_dilation(mask)
        gap = np.abs(np.median(image[inner], 0) - np.median(image[outer], 0)).max()
        assert gap > 10, (kind, gap)


def _class_features(root):
    """Per class: border irregularity, colour spread, texture and brightness inside the lesion."""
    features = {0: [], 1: [], 2: []}
    for record in load_dataset(root).records:
        image = read_image(record.image_path).astype(float)
        mask = read_mask(record.mask_path, image.shape[:2]).astype(bool)
        perimeter = (mask & ~ndimage.binary_erosion(mask)).sum()
        inner = ndimage.binary_erosion(mask, iterations=3)
        features[record.label].append((
            perimeter**2 / (4 * np.pi * mask.sum()),  # 1-ish for a disc, more when ragged
            (image[..., 2] - image[..., 0])[inner].std(),  # blue vs red: several colours
            np.abs(ndimage.laplace(image.mean(2)))[inner].mean(),  # fine texture
            image[inner].mean(),
        ))
    return {k: np.mean(v, axis=0) for k, v in features.items()}


def test_classes_differ_the_way_real_ones_do(demo_root):
    nevus, melanoma, keratosis = (_class_features(demo_root)[k] for k in range(3))
    assert melanoma[0] > 1.3 * max(nevus[0], keratosis[0])  # irregular border
    assert melanoma[1] > 2 * nevus[1]  # several colours, nevus even
    assert keratosis[2] > 3 * max(nevus[2], melanoma[2])  # textured, waxy
    assert keratosis[3] > nevus[3]  # paler


def test_whole_image_mean_colour_does_not_give_the_class_away(demo_root):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    records = load_dataset(demo_root).records
    means = np.array([read_image(r.image_path).reshape(-1, 3).mean(0) for r in records])
    labels = [r.label for r in records]
    accuracy = cross_val_score(LogisticRegression(max_iter=2000), means / 255, labels, cv=4).mean()
    assert accuracy < 0.75


def test_non_empty_folder_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        generate_demo(tmp_path, n_per_class=1, size=48)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_a_file_as_the_output_folder_is_refused(tmp_path):
    (tmp_path / "file.txt").write_text("mine")
    with pytest.raises(DataError, match="not a folder"):
        generate_demo(tmp_path / "file.txt", n_per_class=1, size=48)


def test_too_small_is_refused(tmp_path):
    with pytest.raises(DataError, match="size >= 32"):
        generate_demo(tmp_path / "x", n_per_class=1, size=8)


def test_demo_dir_generates_once_then_reuses(monkeypatch):
    calls = []
    real = demo.generate_demo

    def small(out, **_):  # the default 300 x 320px would cost seconds per test run
        calls.append(out)
        return real(out, n_per_class=2, size=48)

    monkeypatch.setattr(demo, "generate_demo", small)
    root = demo_dir()
    assert root == cache_dir() / f"demo-{demo.DEMO_VERSION}"
    assert load_dataset(root).report.n_usable == 6
    stamp = (root / "labels.csv").stat().st_mtime_ns
    assert demo_dir() == root and len(calls) == 1
    assert (root / "labels.csv").stat().st_mtime_ns == stamp
    assert [p.name for p in cache_dir().iterdir()] == [root.name]  # no temporary folder left


def test_default_demo_is_made_in_seconds(tmp_path):
    start = time.perf_counter()
    root = generate_demo(tmp_path / "d", n_per_class=10, size=320)
    elapsed = time.perf_counter() - start
    assert read_image(root / "images" / "demo_0000.jpg").shape == (320, 320, 3)
    assert elapsed < 10, f"30 images took {elapsed:.1f}s"  # 300 must stay well under a minute
