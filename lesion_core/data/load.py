"""Loading a dataset folder: detect its layout, validate every row, make or restore the
splits, and report what was excluded and why."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lesion_core.core import CLASS_NAMES
from lesion_core.data import layouts
from lesion_core.data.images import NOTE_MODES, BadFile, check_image, check_mask
from lesion_core.data.records import (
    META_COLUMNS,
    SPLITS,
    LesionData,
    Problem,
    Record,
    Report,
    Row,
    meta_table,
    read_csv,
    unsafe_id,
)
from lesion_core.data.splits import carve_groups, leak_line
from lesion_core.errors import DataError
from lesion_core.i18n import N_, join

# ISIC 2017 folder/file stems per split, as the challenge distributed them.
_ISIC_SPLITS = {"train": "Training", "val": "Validation", "test": "Test_v2"}


_DB_FILES = {"train": "DBtrain.csv", "val": "DBval.csv", "test": "DBtest.csv"}


_INTEGER = re.compile(r"[+-]?\d+")


def from_spec(spec: dict, check_images: bool = True) -> LesionData:
    """Reload a dataset recorded by LesionData.to_spec(), with the very same split."""
    return load_dataset(
        spec["root"],
        class_names=spec.get("class_names"),
        max_size=spec.get("max_size", 0),
        val_fraction=spec.get("val_fraction", 0.15),
        test_fraction=spec.get("test_fraction", 0.15),
        split_seed=spec.get("split_seed", 42),
        labels=spec.get("labels"),
        check_images=check_images,
        splits=spec["splits"],
    )


def _detect_layout(root: Path) -> str:
    if (root / "labels.csv").is_file() or (root / _DB_FILES["train"]).is_file():
        return "csv"
    if any(root.glob("ISIC-2017_*_Part3_GroundTruth.csv")):
        return "isic2017"
    found = layouts.detect(root)
    if found:
        return found
    raise DataError(N_(
        "no dataset found in {root}: expected labels.csv (or DBtrain.csv, DBval.csv, "
        "DBtest.csv) with images/ and masks/, the official ISIC 2017 files "
        "(ISIC-2017_Training_Part3_GroundTruth.csv and its folders), or {layouts}"
    ).format(root=root, layouts=layouts.EXPECTED))


def _csv_rows(root: Path) -> list:
    """Rows of the notebook layout: labels.csv (split later) or DBtrain/DBval/DBtest.csv."""
    if (root / "labels.csv").is_file():
        tables = [(None, root / "labels.csv")]
    else:
        tables = [(s, root / f) for s, f in _DB_FILES.items() if (root / f).is_file()]
    side = meta_table(root / "metadata.csv")  # age, sex, site beside the labels (the label table's own win)
    result = []
    for split, path in tables:
        rows = []
        for raw in read_csv(path, ("id", "label")):
            row = Row(raw["id"], raw["label"], split, group=raw.get("group", ""),
                       meta=side.get(raw["id"], {}) | {k: raw[k] for k in META_COLUMNS if raw.get(k)})
            if not unsafe_id(row.id):  # an unsafe id never becomes a path
                row.image_path = root / "images" / f"{row.id}.jpg"
                row.mask_path = root / "masks" / f"{row.id}.png"
            rows.append(row)
        result.append(rows)
    return result


def _isic_label(row: dict) -> object:
    """ISIC 2017 diagnosis columns to a label (1 melanoma, 2 seborrheic keratosis, else 0)."""
    try:
        melanoma = float(row.get("melanoma", ""))
        keratosis = float(row.get("seborrheic_keratosis", ""))
    except ValueError:
        return (f"melanoma={row.get('melanoma')!r}, "
                f"seborrheic_keratosis={row.get('seborrheic_keratosis')!r}")
    if {melanoma, keratosis} - {0.0, 1.0} or melanoma + keratosis > 1:
        return f"melanoma={melanoma:g}, seborrheic_keratosis={keratosis:g}"
    return 1 if melanoma == 1 else 2 if keratosis == 1 else 0


def _isic_rows(root: Path) -> list:
    """Rows of the official ISIC 2017 layout, one table per split that is present."""
    tables = []
    for split, stem in _ISIC_SPLITS.items():
        path = root / f"ISIC-2017_{stem}_Part3_GroundTruth.csv"
        if not path.is_file():
            continue
        name = f"ISIC-2017_{stem}_Data_metadata.csv"  # in the images folder, as the download has it, or beside
        side = meta_table(root / f"ISIC-2017_{stem}_Data" / name) or meta_table(root / name)
        rows = []
        for raw in read_csv(path, ("image_id", "melanoma", "seborrheic_keratosis")):
            label = _isic_label(raw)
            row = Row(raw["image_id"], label, split, meta=side.get(raw["image_id"], {}))
            if isinstance(label, str):
                row.label_problem = N_("ISIC diagnosis columns are not one-hot 0/1: {values}").format(values=label)
            if not unsafe_id(row.id):  # an unsafe id never becomes a path
                row.image_path = root / f"ISIC-2017_{stem}_Data" / f"{row.id}.jpg"
                row.mask_path = (root / f"ISIC-2017_{stem}_Part1_GroundTruth"
                                 / f"{row.id}_segmentation.png")
            rows.append(row)
        tables.append(rows)
    return tables


def _subset(rows: list, max_size: int, seed: int) -> list:
    """At most max_size rows, a seeded random subset (as the notebook's MyDataset(maxSize))."""
    if max_size <= 0 or len(rows) <= max_size:
        return rows
    order = np.random.RandomState(seed).permutation(len(rows))[:max_size]
    return [rows[i] for i in sorted(order)]


def _parse_label(raw: object, n_classes: int) -> tuple:
    """(label, None) for an integer in range(n_classes), else (None, (kind, message))."""
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _INTEGER.fullmatch(raw):
        value = int(raw)
    else:
        return None, ("label_not_integer", N_("label {label} is not an integer").format(label=repr(raw)))
    if not 0 <= value < n_classes:
        return None, ("label_out_of_range", N_("label {label} is outside 0..{last}").format(label=value,
                                                                                          last=n_classes - 1))
    return value, None


def _check_files(row: Row) -> tuple:
    """(size, mode, the mask's BadFile or None, whether the mask marks the whole image) of a
    row's image; raises BadFile for a bad image."""
    size, mode = check_image(row.image_path)
    try:
        full = bool(row.mask_path and row.mask_path.exists() and check_mask(row.mask_path, size))
    except BadFile as bad:
        return size, mode, bad, False
    return size, mode, None, full


def _check_all_files(tables: list) -> dict:
    """id(row) -> _check_files(row) or its BadFile, for every row with an image path, on one
    thread per core: PIL decodes without holding the GIL, so 25,000 images check in parallel."""
    rows = [row for rows in tables for row in rows if row.image_path is not None]

    def check(row):
        try:
            return _check_files(row)
        except BadFile as bad:
            return bad

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return dict(zip(map(id, rows), pool.map(check, rows)))


def _validate(row: Row, n_classes: int, check_images: bool, report: Report,
              checked: dict | None = None) -> Record | None:
    """A Record for a usable row; otherwise append the Problem to the report and return None.
    checked: _check_all_files' results, so the images need not be decoded again."""
    try:
        reason = unsafe_id(row.id)
        if reason:
            raise BadFile("unsafe_id", reason)
        if row.label_problem:
            raise BadFile("label_invalid", row.label_problem)
        label, bad_label = _parse_label(row.label, n_classes)
        if bad_label:
            raise BadFile(*bad_label)
        if not row.image_path.exists():
            raise BadFile("missing_image", N_("image not found: {file}").format(file=row.image_path.name))
        mask_path = row.mask_path if row.mask_path and row.mask_path.exists() else None
        if check_images:
            result = (checked or {}).get(id(row)) or _check_files(row)
            if isinstance(result, BadFile):
                raise result
            size, mode, bad_mask, full_mask = result
            if mode != "RGB":
                what = NOTE_MODES.get(mode, mode)
                report.notes.append(Problem(row.id, "converted_image",
                                            N_("{mode} image converted to 8-bit RGB").format(mode=what)))
            if bad_mask:
                raise bad_mask
            if full_mask:
                report.notes.append(Problem(row.id, "full_mask", N_(
                    "{file} marks the whole image as lesion (no skin pixel): a placeholder rather than a "
                    "segmentation?").format(file=mask_path.name)))
    except BadFile as bad:
        report.problems.append(Problem(row.id, *bad.args))
        return None
    if row.mask_path and mask_path is None and row.mask_path.parent.is_dir():
        report.notes.append(Problem(row.id, "no_mask", N_(
            "no mask ({file} not found); mask-based augmentations will refuse this sample").format(
                file=row.mask_path.name)))
    return Record(row.id, label, row.image_path, mask_path, row.split or "train", row.group, row.meta)


def _carve(records: list, fraction: float, seed: int, report: Report) -> tuple:
    """Split records into (kept, carved) with `fraction` carved, stratified by label if possible."""
    from sklearn.model_selection import train_test_split

    if fraction <= 0 or len(records) < 2:
        return records, []
    if any(r.group for r in records):
        # grouped: a lesion's images stay together
        return carve_groups(records, fraction, seed, report)
    labels = [r.label for r in records]
    try:
        return tuple(train_test_split(records, test_size=fraction, random_state=seed,
                                      stratify=labels))
    except ValueError:
        if not any(n.kind == "unstratified_split" for n in report.notes):
            report.notes.append(Problem("", "unstratified_split",
                                        N_("too few samples per class to stratify; split at random")))
        try:
            return tuple(train_test_split(records, test_size=fraction, random_state=seed))
        except ValueError:
            return records, []


def _assign_splits(records: list, present: set, val_fraction: float, test_fraction: float,
                   seed: int, report: Report) -> None:
    """Carve the splits no table provided (val, test) out of the training pool, in place."""
    pool = [r for r in records if r.split == "train"]
    if "test" not in present:
        pool, test = _carve(pool, test_fraction, seed, report)
        for r in test:
            r.split = "test"
    if "val" not in present:
        # val_fraction is of the whole pool, so rescale it to what remains after test.
        remaining = 1 - (test_fraction if "test" not in present else 0)
        _, val = _carve(pool, min(val_fraction / remaining, 0.9), seed, report)
        for r in val:
            r.split = "val"


def _apply_recorded_splits(records: list, splits: dict, report: Report) -> list:
    """Give each record its recorded split; records not in the recording are left out (noted)."""
    split_of = {sample_id: name for name in SPLITS for sample_id in splits.get(name, [])}
    kept = []
    for record in records:
        if record.id in split_of:
            record.split = split_of.pop(record.id)
            kept.append(record)
    for sample_id in split_of:
        report.problems.append(Problem(sample_id, "not_in_dataset", N_("recorded in the saved "
                                       "split but not usable in the dataset now")))
    return kept


def load_dataset(root, class_names=None, max_size: int = 0, val_fraction: float = 0.15,
                 test_fraction: float = 0.15, split_seed: int = 42, check_images: bool = True,
                 splits: dict | None = None, labels: str | None = None, require_usable: bool = True) -> LesionData:
    """Load and validate a dataset folder (layout detected); DataError when no row is usable
    (unless require_usable is False: check-data --json reports such a folder too).

    max_size > 0 keeps a seeded random subset of at most max_size rows of each table (the
    single labels.csv before it is split, or each split file), like the notebook's maxSize.
    Without val/test tables, they are carved from the training rows by a stratified split
    seeded with split_seed. `splits` (split -> ids, as in to_spec()) replays a recorded split.
    labels picks the labels where a layout offers several (ISIC 2020: "diagnosis" instead of
    the binary melanoma target).
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(N_("val_fraction ({val}) and test_fraction ({test}) must each be in [0, 1) and leave "
                           "some training data (sum below 1)").format(val=val_fraction, test=test_fraction))
    root = Path(root)
    if not root.is_dir():
        raise DataError(N_("dataset folder not found: {root}").format(root=root))
    layout = _detect_layout(root)
    group_column, notes = "", []
    if labels and layout != "isic2020":
        raise DataError(N_("labels={labels} is for the ISIC 2020 layout; this is the {layout} layout").format(
            labels=repr(labels), layout=layout))
    if layout in ("csv", "isic2017"):
        class_names = tuple(class_names) if class_names else CLASS_NAMES
        if layout == "isic2017" and len(class_names) != 3:
            raise DataError(N_("the ISIC 2017 layout has 3 classes; give 3 class names or none"))
        tables = _csv_rows(root) if layout == "csv" else _isic_rows(root)
        group_column = "group" if any(row.group for rows in tables for row in rows) else ""
    else:
        found = layouts.read(layout, root, class_names, labels)
        class_names, tables, group_column, notes = (found.class_names, found.tables,
                                                     found.group_column, found.notes)
    if splits is None:
        tables = [_subset(rows, max_size, split_seed) for rows in tables]
    report = Report(class_names=class_names, n_rows=sum(len(rows) for rows in tables))
    report.notes += notes
    mask_folders = {row.mask_path.parent for rows in tables for row in rows if row.mask_path}
    for folder in sorted(f for f in mask_folders if not f.is_dir()):
        report.notes.append(Problem("", "no_masks",
                                    N_("no {folder}/ folder: samples have no masks").format(folder=folder.name)))

    checked = _check_all_files(tables) if check_images else {}
    records, seen = [], {}
    for rows in tables:
        for row in rows:
            if row.id in seen and not unsafe_id(row.id):
                report.problems.append(Problem(row.id, "duplicate_id", N_(
                    "id appears again (first in {where}); only the first row is used").format(where=seen[row.id])))
                continue
            seen.setdefault(row.id, row.split or N_("the labels file"))
            record = _validate(row, len(class_names), check_images, report, checked)
            if record:
                records.append(record)

    if splits is not None:
        records = _apply_recorded_splits(records, splits, report)
    else:
        present = {rows[0].split for rows in tables if rows and rows[0].split}
        _assign_splits(records, present, val_fraction, test_fraction, split_seed, report)
    records.sort(key=lambda r: (SPLITS.index(r.split), r.id))
    if group_column:
        report.split_line = leak_line(records, group_column, report)
    for record in records:
        per_class = report.counts.setdefault(record.split, {})
        name = class_names[record.label]
        per_class[name] = per_class.get(name, 0) + 1
    for index, name in enumerate(class_names):
        if not any(record.label == index for record in records):
            report.notes.append(Problem("", "empty_class", N_(
                "class {name} has no usable images: its AUC is undefined and a model cannot learn it").format(
                    name=repr(name))))
    if require_usable and not report.n_usable:  # a page translates the message and the report under it line by line
        raise DataError(join("\n", [N_("no usable samples in {root}:").format(root=root), report.format()]))
    return LesionData(root, layout, class_names, records, report, split_seed,
                      max_size, val_fraction, test_fraction, group_column, labels)
