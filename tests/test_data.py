"""lesion_core.data: notebook layout, validation report (one test per bad input), splits, cache."""

from __future__ import annotations

import csv
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lesion_core.data import (
    CLASS_NAMES,
    LesionDataset,
    from_spec,
    load_dataset,
    read_image,
    read_mask,
)
from lesion_core.errors import DataError
from lesion_core.paths import cache_dir


def lesion_arrays(size=48, label=0, seed=0):
    """A real-looking tiny sample: uint8 (size, size, 3) image and {0,1} (size, size) mask."""
    rng = np.random.default_rng([seed, label])
    yy, xx = np.mgrid[:size, :size]
    mask = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3.5) ** 2).astype(np.uint8)
    skin = np.array([220, 180, 150]) + rng.integers(-10, 10, 3)
    lesion = np.array([[120, 70, 40], [40, 30, 30], [170, 140, 100]])[label % 3]
    image = np.where(mask[..., None] == 1, lesion, skin).astype(np.uint8)
    return image, mask


def write_csv(path: Path, rows, header=("id", "label")):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def make_dataset(root: Path, n_per_class=7, size=48, masks=True, labels_file="labels.csv"):
    """Write a valid notebook-layout dataset (JPEG images, 0/255 PNG masks); return root."""
    (root / "images").mkdir(parents=True)
    if masks:
        (root / "masks").mkdir()
    rows = []
    for index in range(n_per_class * 3):
        label, sample_id = index % 3, f"s{index:03d}"
        image, mask = lesion_arrays(size, label, index)
        Image.fromarray(image).save(root / "images" / f"{sample_id}.jpg", quality=95)
        if masks:
            Image.fromarray(mask * 255).save(root / "masks" / f"{sample_id}.png")
        rows.append((sample_id, label))
    write_csv(root / labels_file, rows)
    return root


def add_row(root: Path, sample_id: str, label="0"):
    with open(root / "labels.csv", "a", newline="") as handle:
        csv.writer(handle).writerow([sample_id, label])


def only_problem(data, sample_id):
    """The single problem reported for sample_id, checked to appear in the formatted report."""
    found = [p for p in data.report.problems if p.id == sample_id]
    assert len(found) == 1, data.report.format()
    assert sample_id in data.report.format()
    assert sample_id not in [r.id for r in data.records]
    return found[0]


@pytest.fixture
def good(tmp_path):
    return make_dataset(tmp_path / "data")


# ---------------------------------------------------------------------------- notebook layout


def test_demo_dataset_loads_with_stratified_splits(demo_root):
    data = load_dataset(demo_root)
    assert data.layout == "csv"
    assert data.class_names == CLASS_NAMES
    assert data.report.n_usable == 60 and data.report.problems == []
    for split in ("train", "val", "test"):
        counts = data.report.counts[split]
        assert set(counts) == set(CLASS_NAMES)
        assert max(counts.values()) - min(counts.values()) <= 1, counts  # stratified
    assert sum(data.report.counts["train"].values()) == 42


def test_samples_have_the_contract_format(good):
    data = load_dataset(good)
    sample = LesionDataset(data.split("train"))[0]
    assert set(sample) == {"image", "mask", "label", "id"}
    assert sample["image"].dtype == np.uint8 and sample["image"].shape == (48, 48, 3)
    assert sample["mask"].dtype == np.uint8 and set(np.unique(sample["mask"])) == {0, 1}
    assert isinstance(sample["label"], int) and isinstance(sample["id"], str)


def test_transform_is_applied_to_the_whole_sample(good):
    records = load_dataset(good).records
    dataset = LesionDataset(records, transform=lambda s: {**s, "label": s["label"] + 10})
    assert dataset[0]["label"] == records[0].label + 10


def test_given_class_names_allow_more_labels(tmp_path):
    root = make_dataset(tmp_path / "d")
    add_row(root, "s000x", "3")
    Image.open(root / "images" / "s000.jpg").save(root / "images" / "s000x.jpg")
    data = load_dataset(root, class_names=["a", "b", "c", "d"])
    assert data.class_names == ("a", "b", "c", "d")
    assert "s000x" in [r.id for r in data.records]
    assert only_problem(load_dataset(root), "s000x").kind == "label_out_of_range"


def test_max_size_is_a_seeded_permutation_like_the_notebook(good):
    data = load_dataset(good, max_size=5, split_seed=42)
    expected = sorted(f"s{i:03d}" for i in np.random.RandomState(42).permutation(21)[:5])
    assert sorted(r.id for r in data.records) == expected
    assert data.report.n_rows == 5
    again = load_dataset(good, max_size=5, split_seed=42)
    assert [r.id for r in again.records] == [r.id for r in data.records]
    other = load_dataset(good, max_size=5, split_seed=7)
    assert sorted(r.id for r in other.records) != expected


def test_split_is_reproduced_exactly_from_the_spec(good):
    data = load_dataset(good, split_seed=3)
    spec = data.to_spec()
    assert sum(len(ids) for ids in spec["splits"].values()) == 21
    # A later load with another seed would split differently; the spec replays the old split.
    assert load_dataset(good, split_seed=4).to_spec()["splits"] != spec["splits"]
    spec["split_seed"] = 4
    assert from_spec(spec).to_spec()["splits"] == data.to_spec()["splits"]


def test_spec_ids_no_longer_in_the_dataset_are_reported(good):
    spec = load_dataset(good).to_spec()
    (good / "images" / f"{spec['splits']['train'][0]}.jpg").unlink()
    data = from_spec(spec)
    assert data.report.n_usable == 20
    assert {p.kind for p in data.report.problems} == {"missing_image", "not_in_dataset"}


@pytest.mark.parametrize("val, test", [(0.15, 1.0), (-0.1, 0.15), (0.6, 0.5)])
def test_split_fractions_that_leave_no_training_data_are_refused(good, val, test):
    with pytest.raises(DataError, match=r"must each be in \[0, 1\)"):
        load_dataset(good, val_fraction=val, test_fraction=test)


def test_db_csv_files_are_the_splits(tmp_path):
    root = make_dataset(tmp_path / "d", labels_file="all.csv")
    rows = list(csv.reader(open(root / "all.csv")))[1:]
    write_csv(root / "DBtrain.csv", rows[:6])
    write_csv(root / "DBval.csv", rows[6:9])
    write_csv(root / "DBtest.csv", rows[9:])
    data = load_dataset(root)
    assert [r.id for r in data.split("val")] == [r[0] for r in rows[6:9]]
    assert [r.id for r in data.split("test")] == [r[0] for r in rows[9:]]


def test_db_files_without_test_carve_test_from_train(tmp_path):
    root = make_dataset(tmp_path / "d", n_per_class=6, labels_file="all.csv")
    rows = list(csv.reader(open(root / "all.csv")))[1:]
    write_csv(root / "DBtrain.csv", rows[:15])
    write_csv(root / "DBval.csv", rows[15:])
    data = load_dataset(root, test_fraction=0.2)
    assert [r.id for r in data.split("val")] == [r[0] for r in rows[15:]]
    assert len(data.split("test")) == 3 and len(data.split("train")) == 12


def test_no_masks_folder_gives_one_note_and_samples_without_mask(tmp_path):
    root = make_dataset(tmp_path / "d", masks=False)
    data = load_dataset(root)
    assert data.report.n_usable == 21 and data.report.problems == []
    assert [n.kind for n in data.report.notes] == ["no_masks"]
    assert LesionDataset(data.records)[0]["mask"] is None


def test_missing_mask_is_a_note_not_an_exclusion(good):
    (good / "masks" / "s004.png").unlink()
    data = load_dataset(good)
    assert data.report.n_usable == 21
    assert [(n.id, n.kind) for n in data.report.notes] == [("s004", "no_mask")]
    record = next(r for r in data.records if r.id == "s004")
    assert record.mask_path is None


# ---------------------------------------------------------------------------- bad inputs


def test_missing_image(good):
    (good / "images" / "s001.jpg").unlink()
    assert only_problem(load_dataset(good), "s001").kind == "missing_image"


def test_unreadable_image(good):
    path = good / "images" / "s001.jpg"
    path.unlink()
    path.mkdir()  # exists but cannot be read as a file (works even as root, unlike chmod)
    assert only_problem(load_dataset(good), "s001").kind == "unreadable_image"


def test_truncated_jpeg(good):
    path = good / "images" / "s001.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    problem = only_problem(load_dataset(good), "s001")
    assert problem.kind == "corrupt_image" and "truncated" in problem.message


def test_corrupt_jpeg_body(good):
    path = good / "images" / "s002.jpg"
    data = bytearray(path.read_bytes())
    data[200:] = b"\x00" * (len(data) - 200)  # header kept, entropy-coded data destroyed
    path.write_bytes(bytes(data))
    assert only_problem(load_dataset(good), "s002").kind == "corrupt_image"


def test_text_file_named_jpg(good):
    (good / "images" / "s001.jpg").write_text("id,label\nthis is not an image\n")
    assert only_problem(load_dataset(good), "s001").kind == "not_an_image"


def test_zero_byte_image(good):
    (good / "images" / "s001.jpg").write_bytes(b"")
    problem = only_problem(load_dataset(good), "s001")
    assert problem.kind == "not_an_image" and "0 bytes" in problem.message


def test_mask_size_differs_from_image(good):
    Image.new("L", (40, 48), 255).save(good / "masks" / "s003.png")
    problem = only_problem(load_dataset(good), "s003")
    assert problem.kind == "mask_size" and "40x48" in problem.message


def test_empty_mask(good):
    Image.new("L", (48, 48), 0).save(good / "masks" / "s003.png")
    assert only_problem(load_dataset(good), "s003").kind == "empty_mask"


def test_non_binary_mask(good):
    # A mask saved as JPEG (renamed .png) has in-between values around the edge.
    _, mask = lesion_arrays()
    Image.fromarray(mask * 255).save(good / "masks" / "s003.png", format="JPEG", quality=50)
    problem = only_problem(load_dataset(good), "s003")
    assert problem.kind == "non_binary_mask" and "distinct values" in problem.message


def test_corrupt_mask(good):
    (good / "masks" / "s003.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert only_problem(load_dataset(good), "s003").kind == "corrupt_mask"


def test_zero_one_masks_are_binary(good):
    _, mask = lesion_arrays()
    Image.fromarray(mask).save(good / "masks" / "s003.png")  # values {0, 1}
    data = load_dataset(good)
    assert data.report.problems == []
    record = next(r for r in data.records if r.id == "s003")
    assert np.array_equal(LesionDataset([record])[0]["mask"], mask)


def test_sixteen_bit_masks_are_binary(good):
    _, mask = lesion_arrays()
    Image.fromarray(mask.astype(np.uint16) * 65535).save(good / "masks" / "s003.png")
    data = load_dataset(good)
    assert data.report.problems == []
    record = next(r for r in data.records if r.id == "s003")
    assert np.array_equal(LesionDataset([record])[0]["mask"], mask)


@pytest.mark.parametrize("label, kind", [
    ("3", "label_out_of_range"),
    ("-1", "label_out_of_range"),
    ("1.0", "label_not_integer"),
    ("melanoma", "label_not_integer"),
])
def test_bad_label(good, label, kind):
    add_row(good, "s000b", label)
    (good / "images" / "s000b.jpg").write_bytes((good / "images" / "s000.jpg").read_bytes())
    problem = only_problem(load_dataset(good), "s000b")
    assert problem.kind == kind and label in problem.message


def test_duplicate_id(good):
    add_row(good, "s005", "1")
    data = load_dataset(good)
    problems = [p for p in data.report.problems if p.id == "s005"]
    assert [p.kind for p in problems] == ["duplicate_id"]
    assert [r.label for r in data.records if r.id == "s005"] == [2]  # the first row is kept


def test_id_with_parent_folder_never_escapes(tmp_path):
    root = make_dataset(tmp_path / "d")
    image, _ = lesion_arrays()
    Image.fromarray(image).save(tmp_path / "outside.jpg")  # would be found if the id were used
    add_row(root, "../../outside", "0")
    assert only_problem(load_dataset(root), "../../outside").kind == "unsafe_id"


def test_absolute_id_never_escapes(good):
    add_row(good, "/etc/passwd", "0")
    assert only_problem(load_dataset(good), "/etc/passwd").kind == "unsafe_id"


def test_windows_absolute_id(good):
    add_row(good, "C:\\Windows\\win", "0")
    assert only_problem(load_dataset(good), "C:\\Windows\\win").kind == "unsafe_id"


def test_empty_id(good):
    add_row(good, "", "0")
    problems = load_dataset(good).report.problems
    assert [(p.id, p.kind) for p in problems] == [("", "unsafe_id")]


@pytest.mark.parametrize(
    "mode, note",
    [("L", "grayscale"), ("RGBA", "RGBA"), ("I;16", "16-bit"), ("P", "palette")],
)
def test_unusual_image_modes_are_converted_and_noted(good, mode, note):
    image, _ = lesion_arrays()
    if mode == "I;16":
        pil = Image.fromarray(image[..., 0].astype(np.uint16) * 257)  # full 16-bit range
    else:
        pil = Image.fromarray(image).convert(mode)
    pil.save(good / "images" / "s004.jpg", format="PNG")  # PNG keeps the mode
    data = load_dataset(good)
    assert data.report.problems == []
    assert [(n.id, n.kind) for n in data.report.notes] == [("s004", "converted_image")]
    assert note in data.report.notes[0].message
    record = next(r for r in data.records if r.id == "s004")
    converted = LesionDataset([record])[0]["image"]
    assert converted.shape == (48, 48, 3) and converted.dtype == np.uint8
    if mode == "I;16":  # scaled down, not clipped: the 16-bit values map back to 8 bits
        assert np.abs(converted[..., 0].astype(int) - image[..., 0]).max() <= 1


def png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG file whose header claims width x height pixels (a decompression bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def test_image_too_large_to_decode_is_reported_not_a_crash(good):
    png_claiming_size(good / "images" / "s004.jpg", 20000, 20000)
    problem = only_problem(load_dataset(good), "s004")
    assert problem.kind == "image_too_large" and "downscale" in problem.message
    with pytest.raises(DataError, match="cannot read image"):
        read_image(good / "images" / "s004.jpg")


def test_mask_too_large_to_decode_is_reported_not_a_crash(good):
    png_claiming_size(good / "masks" / "s004.png", 20000, 20000)
    assert only_problem(load_dataset(good), "s004").kind == "corrupt_mask"
    with pytest.raises(DataError, match="cannot read mask"):
        read_mask(good / "masks" / "s004.png", (48, 48))


def test_nothing_usable_is_refused_with_the_report(good):
    for path in (good / "images").iterdir():
        path.unlink()
    with pytest.raises(DataError, match="no usable samples") as caught:
        load_dataset(good)
    assert "s000: [missing_image]" in str(caught.value)


def test_csv_without_id_label_header(tmp_path):
    root = make_dataset(tmp_path / "d")
    write_csv(root / "labels.csv", [("s000", "0")], header=("name", "class"))
    with pytest.raises(DataError, match="columns id, label"):
        load_dataset(root)


def test_folder_without_a_dataset(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="no dataset found"):
        load_dataset(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nope")


def test_check_images_false_skips_decoding(good):
    (good / "images" / "s001.jpg").write_bytes(b"")
    data = load_dataset(good, check_images=False)
    assert data.report.n_usable == 21  # only existence is checked; decoding happens later


# ---------------------------------------------------------------------------- decoding


def test_read_image_decodes_large_jpeg_at_reduced_size(tmp_path):
    big = np.zeros((1500, 2000, 3), np.uint8)
    big[:, 1000:] = (200, 100, 50)  # right half coloured, to check orientation
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=90)
    small = read_image(tmp_path / "big.jpg", max_side=200)
    assert small.shape == (150, 200, 3) and small.dtype == np.uint8
    assert small[:, :90].mean() < 10 and abs(int(small[75, 150, 0]) - 200) < 10
    assert read_image(tmp_path / "big.jpg").shape == (1500, 2000, 3)


def save_sideways_jpeg(path: Path, upright: np.ndarray) -> None:
    """Store upright (H, W, 3) as a phone does: pixels turned to W x H, EXIF Orientation 6."""
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(np.rot90(upright).copy()).save(path, quality=95, exif=exif)


def upright_test_image(h=400, w=240) -> np.ndarray:
    """Dark top half, light bottom half: any 90-degree turn or flip shows."""
    image = np.full((h, w, 3), 220, np.uint8)
    image[: h // 2] = 30
    return image


def test_read_image_applies_exif_orientation(tmp_path):
    upright = upright_test_image()
    save_sideways_jpeg(tmp_path / "phone.jpg", upright)
    with Image.open(tmp_path / "phone.jpg") as stored:
        assert stored.size == (400, 240)  # the pixels really are stored sideways
    image = read_image(tmp_path / "phone.jpg")
    assert image.shape == (400, 240, 3)
    assert np.abs(image.astype(int) - upright).max() < 20
    small = read_image(tmp_path / "phone.jpg", max_side=100)  # draft-mode decode too
    assert small.shape == (100, 60, 3)
    assert small[:40].mean() < 60 and small[60:].mean() > 190


def test_mask_drawn_on_the_upright_photo_fits_an_exif_rotated_image(good):
    upright = upright_test_image(96, 48)
    save_sideways_jpeg(good / "images" / "s004.jpg", upright)
    mask = np.zeros((96, 48), np.uint8)
    mask[10:40, 5:30] = 255
    Image.fromarray(mask).save(good / "masks" / "s004.png")
    data = load_dataset(good)
    assert data.report.problems == [], data.report.format()
    record = next(r for r in data.records if r.id == "s004")
    sample = LesionDataset([record], max_side=96)[0]
    assert sample["image"].shape == (96, 48, 3) and np.array_equal(sample["mask"], mask // 255)


def test_read_image_bad_file_is_a_data_error(tmp_path):
    (tmp_path / "x.jpg").write_text("nope")
    with pytest.raises(DataError, match="cannot read image"):
        read_image(tmp_path / "x.jpg")


def test_read_mask_resizes_with_nearest(tmp_path):
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 20:40] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    small = read_mask(tmp_path / "m.png", (20, 30))
    assert small.shape == (20, 30) and set(np.unique(small)) == {0, 1}
    assert small[5:15, 10:20].all() and small.sum() == 100


def test_dataset_max_side_keeps_aspect_and_mask_follows(tmp_path):
    root = make_dataset(tmp_path / "d", n_per_class=1)
    image, mask = lesion_arrays(size=300)
    wide = np.concatenate([image, image], axis=1)  # 300x600
    Image.fromarray(wide).save(root / "images" / "s000.jpg")
    Image.fromarray(np.concatenate([mask, mask], axis=1) * 255).save(root / "masks" / "s000.png")
    record = next(r for r in load_dataset(root).records if r.id == "s000")
    sample = LesionDataset([record], max_side=100)[0]
    assert sample["image"].shape == (50, 100, 3) and sample["mask"].shape == (50, 100)
    assert set(np.unique(sample["mask"])) == {0, 1}


# ---------------------------------------------------------------------------- decoded cache


def test_cache_is_reused_and_invalidated_when_the_file_changes(good):
    record = load_dataset(good).records[0]
    first = LesionDataset([record], max_side=32)[0]
    entries = list((cache_dir() / "decoded").glob("*.npy"))
    assert len(entries) == 1
    # Reading again uses the entry: overwrite it with a marker and see the marker come back.
    marked = np.dstack([first["image"], first["mask"]])
    marked[0, 0, :3] = (1, 2, 3)
    np.save(entries[0], marked)
    assert tuple(LesionDataset([record], max_side=32)[0]["image"][0, 0]) == (1, 2, 3)
    # Changing the image file (new content and mtime) gives a new key and a fresh decode.
    Image.new("RGB", (48, 48), (0, 255, 0)).save(record.image_path, format="JPEG")
    os.utime(record.image_path, ns=(1, 10**18))
    fresh = LesionDataset([record], max_side=32)[0]
    assert fresh["image"][..., 1].mean() > 240
    assert len(list((cache_dir() / "decoded").glob("*.npy"))) == 2


@pytest.mark.parametrize("max_side", [None, 32])
def test_image_deleted_after_the_load_is_a_data_error(good, max_side):
    record = load_dataset(good).records[0]
    record.image_path.unlink()
    with pytest.raises(DataError, match="image not found"):
        LesionDataset([record], max_side=max_side)[0]


def test_cached_sample_equals_direct_decode(good):
    record = load_dataset(good).records[0]
    direct = LesionDataset([record], max_side=32, cache=False)[0]
    for _ in range(2):  # first call writes the cache, second reads it
        cached = LesionDataset([record], max_side=32)[0]
        assert np.array_equal(cached["image"], direct["image"])
        assert np.array_equal(cached["mask"], direct["mask"])
        assert cached["image"].flags.c_contiguous and cached["mask"].flags.c_contiguous


def test_cached_sample_without_mask_stays_without_mask(tmp_path):
    data = load_dataset(make_dataset(tmp_path / "d", masks=False))
    for _ in range(2):
        sample = LesionDataset(data.records[:1], max_side=32)[0]
        assert sample["mask"] is None and sample["image"].shape == (32, 32, 3)


def test_damaged_cache_entry_is_decoded_again(good):
    record = load_dataset(good).records[0]
    expected = LesionDataset([record], max_side=32)[0]["image"]
    (entry,) = (cache_dir() / "decoded").glob("*.npy")
    entry.write_bytes(b"half a file")
    assert np.array_equal(LesionDataset([record], max_side=32)[0]["image"], expected)


def test_no_max_side_means_no_cache(good):
    LesionDataset(load_dataset(good).records)[0]
    assert not (cache_dir() / "decoded").exists()


# ---------------------------------------------------------------------------- real data


def test_real_isic_sample_has_300_usable_100_per_class(isic_dev_root):
    data = load_dataset(isic_dev_root)
    assert data.report.problems == [] and data.report.n_usable == 300
    per_class = {name: 0 for name in CLASS_NAMES}
    for counts in data.report.counts.values():
        for name, n in counts.items():
            per_class[name] += n
    assert per_class == {name: 100 for name in CLASS_NAMES}
    sample = LesionDataset(data.records[:1], max_side=128)[0]
    assert sample["image"].shape == (128, 128, 3) and sample["mask"].max() == 1


def test_lesion_core_never_imports_streamlit():
    root = Path(__file__).resolve().parents[1]
    # Every module of the package, subpackages included (__main__ would run the CLI).
    modules = sorted(".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
                     for p in (root / "lesion_core").rglob("*.py") if p.stem != "__main__")
    assert "lesion_core.evaluation.report" in modules and "lesion_core.i18n" in modules
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "assert 'streamlit' not in sys.modules, 'streamlit was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_read_image_and_mask_take_uploaded_file_objects(tmp_path):
    """Uploads arrive as file objects; they get the same EXIF, mode and mask handling as paths."""
    import io

    from lesion_core.data import read_image, read_mask

    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = "photo.png"
    image = read_image(buffer, 30)
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8 and image[0, 0, 0] == 200
    mask_buffer = io.BytesIO()
    Image.fromarray(np.full((40, 60), 255, np.uint8)).save(mask_buffer, format="PNG")
    mask_buffer.seek(0)
    assert read_mask(mask_buffer, image.shape).tolist() == np.ones((20, 30), np.uint8).tolist()
    with pytest.raises(DataError, match="notes.txt"):
        junk = io.BytesIO(b"not an image")
        junk.name = "notes.txt"
        read_image(junk)


@pytest.mark.parametrize("content, expected", [
    (b"", "needs a header with columns id, label; found nothing"),
    (b"\xff\xfe\x00i\x00d\x00\x80\x81", "cannot read"),
    (b"id;label\ns000;0\n", "needs a header with columns id, label"),
])
def test_unreadable_or_headerless_csv_is_a_clear_error(tmp_path, content, expected):
    root = make_dataset(tmp_path / "d")
    (root / "labels.csv").write_bytes(content)
    with pytest.raises(DataError, match=expected):
        load_dataset(root)


def test_short_and_long_csv_rows_are_reported_not_crashed_on(tmp_path):
    root = make_dataset(tmp_path / "d")
    lines = (root / "labels.csv").read_text().splitlines()
    lines[1] = lines[1].split(",")[0]  # s000 with no label field at all
    lines[2] = lines[2] + ",extra,fields"  # s001 with surplus columns: its id and label still count
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    loaded = load_dataset(root)
    assert [(p.id, p.kind) for p in loaded.report.problems] == [("s000", "label_not_integer")]
    assert "s001" in {r.id for r in loaded.records}
