"""The official public layouts: detected, loaded with their classes, groups and metadata, split
without leaks, and named by check-data."""

from __future__ import annotations

import pytest

from lesion_core.data import splits
from lesion_core.cli import main
from lesion_core.data import load_dataset
from lesion_core.errors import DataError

import layout_fixtures as fx

HAM_NAMES = ("melanoma", "nevus", "basal cell carcinoma", "actinic keratosis", "benign keratosis",
             "dermatofibroma", "vascular lesion")


def _no_group_in_two_splits(data) -> None:
    split_of = {}
    for record in data.records:
        group = splits.group_of(record)  # an image without a group is its own
        assert split_of.setdefault(group, record.split) == record.split, group
    assert not splits.crossing_groups(data.records)


def test_ham10000_loads_seven_classes_with_lesion_groups_masks_and_metadata(tmp_path):
    root = fx.make_ham10000(tmp_path / "ham")
    data = load_dataset(root)
    assert data.layout == "ham10000" and data.class_names == HAM_NAMES
    assert data.group_column == "lesion_id"
    assert len(data.records) == len(list(root.glob("HAM10000_images_part_*/*.jpg")))
    by_id = {r.id: r for r in data.records}
    first = by_id["ISIC_0024306"]  # row 0 of the plan: akiec, image 0 with a mask, part 1
    assert HAM_NAMES[first.label] == "actinic keratosis"
    assert first.image_path.parent.name == "HAM10000_images_part_1"
    assert first.mask_path.name == "ISIC_0024306_segmentation.png"
    assert by_id["ISIC_0024307"].image_path.parent.name == "HAM10000_images_part_2"
    assert first.meta == {"age": "30", "sex": "male", "site": "head"}
    assert "sex" not in by_id["ISIC_0024308"].meta  # "unknown" is left out
    _no_group_in_two_splits(data)
    n_lesions = len({r.group for r in data.records})
    assert data.report.split_line == f"split by lesion_id: {n_lesions} lesions, no lesion in two splits"
    assert {r.split for r in data.records} == {"train", "val", "test"}


def test_repeated_lesions_never_cross_splits_for_any_seed(tmp_path):
    root = fx.make_ham10000(tmp_path / "ham", n_lesions_per_class=6, with_masks=False)
    for seed in range(5):
        data = load_dataset(root, split_seed=seed, check_images=False)
        _no_group_in_two_splits(data)
        # Stratified by class as far as groups allow: every class keeps training images.
        assert set(data.report.counts["train"]) == set(HAM_NAMES)


def test_isic2018_task3_one_hot_with_lesion_groupings(tmp_path):
    root = fx.make_isic2018(tmp_path / "isic2018")
    data = load_dataset(root)
    assert data.layout == "isic2018" and data.class_names == HAM_NAMES
    assert data.group_column == "lesion_id"
    assert data.class_names[data.split("train")[0].label] in HAM_NAMES
    _no_group_in_two_splits(data)


def test_isic2018_bad_one_hot_row_is_excluded_with_its_reason(tmp_path):
    root = fx.make_isic2018(tmp_path / "isic2018")
    table = root / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"
    lines = table.read_text().splitlines()
    first_id = lines[1].split(",")[0]
    lines[1] = first_id + ",1.0,1.0,0.0,0.0,0.0,0.0,0.0"
    table.write_text("\n".join(lines) + "\n")
    data = load_dataset(root)
    assert [(p.id, p.kind) for p in data.report.problems] == [(first_id, "label_invalid")]
    assert "not one-hot" in data.report.problems[0].message


def test_isic2019_drops_the_empty_unk_class_and_groups_by_lesion(tmp_path):
    root = fx.make_isic2019(tmp_path / "isic2019")
    data = load_dataset(root)
    assert data.layout == "isic2019" and len(data.class_names) == 8
    assert "squamous cell carcinoma" in data.class_names and "unknown" not in data.class_names
    assert any(n.kind == "empty_class" for n in data.report.notes)
    assert any(r.id.endswith("_downsampled") for r in data.records)
    assert data.group_column == "lesion_id"
    ungrouped = sum(1 for r in data.records if not r.group)
    assert ungrouped and f"{ungrouped} images without lesion_id" in data.report.split_line
    assert data.records[0].meta.keys() >= {"age", "sex", "site"}
    _no_group_in_two_splits(data)


def test_isic2020_is_binary_melanoma_split_by_patient(tmp_path):
    root = fx.make_isic2020(tmp_path / "isic2020")
    data = load_dataset(root)
    assert data.layout == "isic2020" and data.class_names == ("benign", "melanoma")
    assert data.group_column == "patient_id"
    assert data.report.split_line.startswith("split by patient_id: 12 patients, no patient in two splits")
    _no_group_in_two_splits(data)


def test_class_folders_take_their_names_and_masks_beside(tmp_path):
    root = fx.make_folders(tmp_path / "folders", classes=("bcc", "mel", "nv"), n_per_class=6)
    data = load_dataset(root)
    assert data.layout == "folders" and data.class_names == ("bcc", "mel", "nv")
    assert data.group_column == ""
    by_id = {r.id: r for r in data.records}
    assert by_id["mel/img_000"].label == 1 and by_id["mel/img_000"].mask_path.is_file()
    assert by_id["mel/img_001"].mask_path is None
    assert len(data.records) == 18


def test_given_class_names_must_match_the_layout(tmp_path):
    root = fx.make_isic2020(tmp_path / "isic2020", n_patients=3)
    assert load_dataset(root, class_names=["no", "yes"]).class_names == ("no", "yes")
    with pytest.raises(DataError, match="has 2 classes"):
        load_dataset(root, class_names=["a", "b", "c"])


def test_notebook_csv_with_group_and_metadata_columns(tmp_path):
    root = fx.make_csv_with_groups(tmp_path / "csv")
    data = load_dataset(root)
    assert data.layout == "csv" and data.group_column == "group"
    assert data.records[0].meta.keys() == {"age", "sex", "site"}
    assert data.report.split_line == "split by group: 18 groups, no group in two splits"
    _no_group_in_two_splits(data)


def test_split_replays_from_spec_for_a_new_layout(tmp_path):
    from lesion_core.data import from_spec

    data = load_dataset(fx.make_isic2019(tmp_path / "isic2019"))
    again = from_spec(data.to_spec())
    assert [(r.id, r.split, r.label) for r in again.records] == [(r.id, r.split, r.label) for r in data.records]
    assert again.class_names == data.class_names


def test_unknown_folder_names_every_layout(tmp_path):
    (tmp_path / "x.txt").write_text("nothing")
    with pytest.raises(DataError, match="HAM10000_metadata.csv"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("make, layout, group", [
    (fx.make_ham10000, "ham10000", "lesion_id"), (fx.make_isic2019, "isic2019", "lesion_id"),
    (fx.make_isic2020, "isic2020", "patient_id"), (fx.make_folders, "folders", None)])
def test_check_data_names_layout_classes_and_group(tmp_path, capsys, make, layout, group):
    root = make(tmp_path / layout)
    assert main(["check-data", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"(layout {layout})" in out
    assert "classes (" in out
    if group:
        assert f"split groups: {group}" in out and f"split by {group}:" in out
    else:
        assert "split groups: none" in out


def test_isic2020_diagnosis_classes_on_request(tmp_path, capsys):
    root = fx.make_isic2020(tmp_path / "isic2020")
    data = load_dataset(root, labels="diagnosis")
    assert data.class_names == ("melanoma", "nevus")  # the diagnoses present, sorted
    binary = load_dataset(root)
    assert [r.label for r in sorted(data.records, key=lambda r: r.id)] == \
        [1 - r.label for r in sorted(binary.records, key=lambda r: r.id)]  # melanoma is 0 here, 1 there
    from lesion_core.data import from_spec

    assert from_spec(data.to_spec()).class_names == data.class_names
    with pytest.raises(DataError, match="for the ISIC 2020 layout"):
        load_dataset(fx.make_folders(tmp_path / "folders"), labels="diagnosis")
    assert main(["check-data", str(root), "--labels", "diagnosis"]) == 0
    assert "classes (2): melanoma, nevus" in capsys.readouterr().out
