"""The later public skin-lesion sets, read unchanged from their official downloads.

Each layout is detected from its file names and turns its tables into data.Row tables
(one per split it provides), with the group (lesion or patient id) splits must respect and
the metadata (age, sex, site) it has:

- "ham10000": HAM10000_metadata.csv (lesion_id,image_id,dx,dx_type,age,sex,localization),
  images in HAM10000_images_part_1/ and HAM10000_images_part_2/ (or HAM10000_images/ or
  images/); masks from ISIC2018_Task1_Training_GroundTruth/ or
  HAM10000_segmentations_lesion_tschandl/ (<id>_segmentation.png) when present.
- "isic2018": ISIC2018_Task3_Training_GroundTruth.csv (image,MEL,NV,BCC,AKIEC,BKL,DF,VASC
  one-hot; at the top or in its ISIC2018_Task3_Training_GroundTruth/ folder) with
  ISIC2018_Task3_Training_Input/; lesion groups from ISIC2018_Task3_Training_LesionGroupings.csv
  (image,lesion_id,...) when present; Validation and Test likewise when present.
- "isic2019": ISIC_2019_Training_GroundTruth.csv (image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK
  one-hot) with ISIC_2019_Training_Input/ and, optional, ISIC_2019_Training_Metadata.csv
  (image,age_approx,anatom_site_general,lesion_id,sex).
- "isic2020": train.csv (image_name,patient_id,sex,age_approx,anatom_site_general_challenge,
  diagnosis,benign_malignant,target) with train/ (or jpeg/train/) JPEGs; benign vs melanoma.
- "folders": torchvision ImageFolder style, root/<class name>/*.jpg (class names sorted),
  optional root/masks/<class name>/<same name>.png.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from lesion_core.data.records import Problem, Row, patient_meta, read_csv, unsafe_id
from lesion_core.errors import DataError
from lesion_core.i18n import N_

EXPECTED = N_("HAM10000_metadata.csv with HAM10000_images_part_1/, ISIC2018_Task3_Training_GroundTruth.csv "
            "with ISIC2018_Task3_Training_Input/, ISIC_2019_Training_GroundTruth.csv with "
            "ISIC_2019_Training_Input/, the ISIC 2020 train.csv with train/, or one folder of images "
            "per class")

# Diagnosis codes of the ISIC 2018/2019 challenges and HAM10000's dx, with the names shown
# (N_: pages show class names through lang.cls, which needs their translation).
FULL_NAMES = {"MEL": N_("melanoma"), "NV": N_("nevus"), "BCC": N_("basal cell carcinoma"),
              "AKIEC": N_("actinic keratosis"), "AK": N_("actinic keratosis"), "BKL": N_("benign keratosis"),
              "DF": N_("dermatofibroma"), "VASC": N_("vascular lesion"), "SCC": N_("squamous cell carcinoma"),
              "UNK": N_("unknown")}
ISIC2018_CODES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
ISIC2019_CODES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
ISIC2020_CLASSES = (N_("benign"), N_("melanoma"))
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_HAM_FILE = "HAM10000_metadata.csv"
_HAM_IMAGE_DIRS = ("HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_images", "images",
                   "ISIC2018_Task3_Training_Input")
_HAM_MASK_DIRS = ("ISIC2018_Task1_Training_GroundTruth", "HAM10000_segmentations_lesion_tschandl")
_ISIC2018_SPLITS = {"train": "Training", "val": "Validation", "test": "Test"}
_ISIC2019_FILE = "ISIC_2019_Training_GroundTruth.csv"
_ISIC2020_COLUMNS = ("image_name", "patient_id", "target")


@dataclass
class Found:
    """What a layout read: class names, row tables (one per split given), group column, notes."""

    class_names: tuple
    tables: list
    group_column: str = ""
    notes: list = field(default_factory=list)


# ---------------------------------------------------------------------------- detection


def detect(root: Path) -> str:
    """The layout name of root, or "" when none of these layouts is there."""
    if (root / _HAM_FILE).is_file():
        return "ham10000"
    if (root / _ISIC2019_FILE).is_file():
        return "isic2019"
    if _isic2018_table(root, "Training"):
        return "isic2018"
    if (root / "train.csv").is_file() and set(_ISIC2020_COLUMNS) <= set(_header(root / "train.csv")):
        return "isic2020"
    if len(_class_folders(root)) >= 2:
        return "folders"
    return ""


def read(layout: str, root: Path, class_names=None, labels: str | None = None) -> Found:
    """Read root's tables in the given layout; class_names (as many as the layout has) rename
    the classes; labels="diagnosis" gives ISIC 2020 its diagnosis classes."""
    found = _isic2020(root, labels) if layout == "isic2020" else _READERS[layout](root)
    if class_names:
        if len(class_names) != len(found.class_names):
            raise DataError(N_("the {layout} layout here has {n} classes ({names}); give as many class names "
                               "or none").format(layout=layout, n=len(found.class_names),
                                                 names=", ".join(found.class_names)))
        found.class_names = tuple(class_names)
    return found


def _header(path: Path) -> list:
    """The column names of a CSV file ([] when unreadable)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [h.strip() for h in next(csv.reader(handle), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _files_by_stem(folders) -> dict:
    """stem -> path of every image in the folders that exist (first folder wins); one listing
    per folder instead of a lookup per row, which matters at 25,000 rows."""
    found = {}
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in IMAGE_EXTENSIONS and entry.is_file():
                found.setdefault(stem, Path(entry.path))
    return found


# ---------------------------------------------------------------------------- HAM10000


def _ham10000(root: Path) -> Found:
    rows = read_csv(root / _HAM_FILE, ("lesion_id", "image_id", "dx"))
    codes = [c for c in ISIC2018_CODES]
    images = _files_by_stem(root / d for d in _HAM_IMAGE_DIRS)
    masks = _mask_dirs(root, _HAM_MASK_DIRS)
    table = []
    for raw in rows:
        code = raw["dx"].upper()
        row = Row(raw["image_id"], codes.index(code) if code in codes else 0, None,
                   group=raw["lesion_id"],
                   meta=patient_meta(raw.get("age", ""), raw.get("sex", ""), raw.get("localization", "")))
        if code not in codes:
            row.label_problem = N_("dx {value} is not one of {codes}").format(
                value=repr(raw["dx"]), codes=", ".join(c.lower() for c in codes))
        _place(row, root / _HAM_IMAGE_DIRS[0], images, masks)
        table.append(row)
    return Found(tuple(FULL_NAMES[c] for c in codes), [table], "lesion_id")


def _mask_dirs(root: Path, names) -> list:
    return [root / name for name in names if (root / name).is_dir()]


def _place(row: Row, default_dir: Path, images: dict, mask_dirs: list) -> None:
    """Set the row's image (from the listing; a missing one points into default_dir so the
    report names it) and its mask (<id>_segmentation.png in the first mask folder holding it)."""
    if unsafe_id(row.id):  # an unsafe id never becomes a path
        return
    row.image_path = images.get(row.id, default_dir / f"{row.id}.jpg")
    for folder in mask_dirs:
        if (folder / f"{row.id}_segmentation.png").is_file():
            row.mask_path = folder / f"{row.id}_segmentation.png"
            break


# ---------------------------------------------------------------------------- ISIC 2018 / 2019


def _isic2018_table(root: Path, stem: str) -> Path | None:
    name = f"ISIC2018_Task3_{stem}_GroundTruth"
    for path in (root / f"{name}.csv", root / name / f"{name}.csv"):
        if path.is_file():
            return path
    return None


def _one_hot_label(raw: dict, codes) -> tuple:
    """(class index, "") from one-hot diagnosis columns, or (None, why not)."""
    try:
        values = [float(raw.get(c, "")) for c in codes]
    except ValueError:
        return None, N_("diagnosis columns are not numbers: {values}").format(
            values=", ".join(f"{c}={raw.get(c)!r}" for c in codes))
    if sorted(values) != [0.0] * (len(codes) - 1) + [1.0]:
        return None, N_("diagnosis columns are not one-hot (exactly one 1): {values}").format(
            values=", ".join(f"{c}={v:g}" for c, v in zip(codes, values)))
    return values.index(1.0), ""


def _one_hot_rows(raws, codes, split, image_dir, images, mask_dirs, groups, meta) -> list:
    table = []
    for raw in raws:
        label, problem = _one_hot_label(raw, codes)
        image = raw["image"]
        row = Row(image, label if label is not None else 0, split, label_problem=problem,
                   group=groups.get(image, ""), meta=meta.get(image, {}))
        _place(row, image_dir, images, mask_dirs)
        table.append(row)
    return table


def _present_codes(raws, codes, notes: list) -> list:
    """The codes with at least one positive row; the rest are dropped (ISIC 2019's UNK has no
    training image) so no class without samples reaches the loss weights."""
    present = [c for c in codes if any(_is_one(raw.get(c, "")) for raw in raws)]
    for code in codes:
        if code not in present:
            notes.append(Problem("", "empty_class", N_("class {code} ({name}) has no image and is left out").format(
                code=code, name=FULL_NAMES.get(code, code))))
    return present


def _is_one(text: str) -> bool:
    try:
        return float(text) == 1.0
    except ValueError:
        return False


def _isic2018(root: Path) -> Found:
    masks = _mask_dirs(root, _HAM_MASK_DIRS)
    groups_path = root / "ISIC2018_Task3_Training_LesionGroupings.csv"
    groups = ({r["image"]: r["lesion_id"] for r in read_csv(groups_path, ("image", "lesion_id"))}
              if groups_path.is_file() else {})
    tables = []
    for split, stem in _ISIC2018_SPLITS.items():
        path = _isic2018_table(root, stem)
        if path is None:
            continue
        folder = root / f"ISIC2018_Task3_{stem}_Input"
        raws = read_csv(path, ("image",) + ISIC2018_CODES)
        tables.append(_one_hot_rows(raws, ISIC2018_CODES, split, folder, _files_by_stem([folder]),
                                    masks, groups, {}))
    return Found(tuple(FULL_NAMES[c] for c in ISIC2018_CODES), tables, "lesion_id" if groups else "")


def _isic2019(root: Path) -> Found:
    raws = read_csv(root / _ISIC2019_FILE, ("image",) + ISIC2019_CODES[:-1])
    notes = []
    codes = _present_codes(raws, [c for c in ISIC2019_CODES if c in raws[0]] if raws else [], notes)
    meta_path = root / "ISIC_2019_Training_Metadata.csv"
    groups, meta = {}, {}
    if meta_path.is_file():
        for raw in read_csv(meta_path, ("image",)):
            groups[raw["image"]] = raw.get("lesion_id", "")
            meta[raw["image"]] = patient_meta(raw.get("age_approx", ""), raw.get("sex", ""),
                                       raw.get("anatom_site_general", ""))
    folder = root / "ISIC_2019_Training_Input"
    table = _one_hot_rows(raws, codes, None, folder, _files_by_stem([folder]), [], groups, meta)
    return Found(tuple(FULL_NAMES[c] for c in codes), [table],
                 "lesion_id" if any(groups.values()) else "", notes)


# ---------------------------------------------------------------------------- ISIC 2020


def _isic2020(root: Path, labels: str | None = None) -> Found:
    """Binary benign/melanoma from target; labels="diagnosis": one class per diagnosis present
    (sorted; "unknown" is a class of its own, as the challenge's file has it)."""
    if labels not in (None, "target", "diagnosis"):
        raise DataError(N_("unknown labels {labels} for ISIC 2020; use target or diagnosis").format(
            labels=repr(labels)))
    raws = read_csv(root / "train.csv", _ISIC2020_COLUMNS + (("diagnosis",) if labels == "diagnosis" else ()))
    images = _files_by_stem([root / "train", root / "jpeg" / "train"])
    classes = (tuple(sorted({r["diagnosis"] for r in raws if r["diagnosis"]})) if labels == "diagnosis"
               else ISIC2020_CLASSES)
    table = []
    for raw in raws:
        label = raw["diagnosis"] if labels == "diagnosis" else raw["target"]
        row = Row(raw["image_name"], classes.index(label) if label in classes else label, None,
                   group=raw["patient_id"], meta=patient_meta(raw.get("age_approx", ""), raw.get("sex", ""),
                                                       raw.get("anatom_site_general_challenge", "")))
        if labels != "diagnosis" and label not in ("0", "1"):
            row.label_problem = N_("target {label} is not 0 or 1").format(label=repr(label))
        elif labels == "diagnosis" and label not in classes:
            row.label_problem = N_("no diagnosis")
        _place(row, root / "train", images, [])
        table.append(row)
    return Found(classes, [table], "patient_id")


# ---------------------------------------------------------------------------- class folders


def _class_folders(root: Path) -> list:
    """Sub-folders of root holding at least one image (masks/ and hidden folders excluded)."""
    try:
        folders = sorted(p for p in root.iterdir()
                         if p.is_dir() and p.name != "masks" and not p.name.startswith("."))
    except OSError:
        return []
    return [f for f in folders if any(_images_in(f))]


def _images_in(folder: Path):
    for path in folder.rglob("*"):
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            yield path


def _folders(root: Path) -> Found:
    classes = _class_folders(root)
    table = []
    for label, folder in enumerate(classes):
        for path in sorted(_images_in(folder)):
            relative = path.relative_to(root).with_suffix("")
            row = Row(relative.as_posix(), label, None, image_path=path)
            mask = root / "masks" / relative.with_suffix(".png")
            row.mask_path = mask if mask.is_file() else None
            table.append(row)
    return Found(tuple(f.name for f in classes), [table])


_READERS = {"ham10000": _ham10000, "isic2018": _isic2018, "isic2019": _isic2019,
            "isic2020": _isic2020, "folders": _folders}
LAYOUTS = tuple(_READERS)
