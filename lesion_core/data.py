"""Datasets of skin-lesion images: layouts, validation report, splits, decoding and caching.

Two layouts are detected automatically:
- "csv" (the notebook's): `labels.csv` with header `id,label` (or `DBtrain.csv`, `DBval.csv`,
  `DBtest.csv` as the splits), images at `images/<id>.jpg`, masks at `masks/<id>.png`, and an
  optional `metadata.csv` (`id` or `image_id`; `age` or `age_approximate`, `sex`, `site`).
- "isic2017" (the official download, unchanged): `ISIC-2017_Training_Data/ISIC_*.jpg`,
  `ISIC-2017_Training_Part1_GroundTruth/ISIC_*_segmentation.png` and
  `ISIC-2017_Training_Part3_GroundTruth.csv` (`image_id,melanoma,seborrheic_keratosis`);
  likewise `Validation` (val) and `Test_v2` (test), with `ISIC-2017_Training_Data_metadata.csv`
  (age, sex) where present.
- The later public sets (HAM10000, ISIC 2018, 2019, 2020) and class folders: see layouts.py.

When rows carry a group (lesion or patient id), the splits are made by group (splits.py).

Every load validates each row and keeps a Report: bad rows are excluded and listed with
their id, never silently dropped. Masks are optional per sample (mask_path None).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import os
import re
import shutil
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from lesion_core.errors import DataError, UnsafeArchiveError
from lesion_core.i18n import N_
from lesion_core.net import reachable
from lesion_core.paths import atomic_write_bytes, atomic_write_text, cache_dir

CLASS_NAMES = ("nevus", "melanoma", "seborrheic keratosis")
SPLITS = ("train", "val", "test")

# ISIC 2017 folder/file stems per split, as the challenge distributed them.
_ISIC_SPLITS = {"train": "Training", "val": "Validation", "test": "Test_v2"}
_DB_FILES = {"train": "DBtrain.csv", "val": "DBval.csv", "test": "DBtest.csv"}
_INTEGER = re.compile(r"[+-]?\d+")
# Optional per-image metadata, under these names whatever the layout calls them.
META_COLUMNS = ("age", "sex", "site")


@dataclass
class Record:
    """One usable row: where its files are and which split it belongs to."""

    id: str
    label: int
    image_path: Path
    mask_path: Path | None
    split: str
    group: str = ""  # lesion or patient id: rows sharing it never land in two splits
    meta: dict = field(default_factory=dict)  # optional age, sex, site (text)


@dataclass
class Problem:
    """Something found while checking a row; id "" means the dataset as a whole."""

    id: str
    kind: str
    message: str


@dataclass
class Report:
    """What a load found: usable counts per split and class, problems (excluded rows), notes."""

    class_names: tuple
    n_rows: int = 0
    counts: dict = field(default_factory=dict)  # split -> class name -> n usable
    problems: list = field(default_factory=list)  # rows excluded, each with the reason
    notes: list = field(default_factory=list)  # kept, but worth knowing (converted, no mask)
    split_line: str = ""  # how the splits were made, e.g. "split by lesion_id: 7,470 lesions, ..."

    @property
    def n_usable(self) -> int:
        return sum(sum(per_class.values()) for per_class in self.counts.values())

    @property
    def usable(self) -> bool:
        """True when there is something to train on (at least one usable training sample)."""
        return sum(self.counts.get("train", {}).values()) > 0

    def format(self, examples: int = 3) -> str:
        """Human-readable text: the count table, then the problems and notes by kind, a few
        examples of each with their ids (all of them: check-data --json)."""
        names = list(self.class_names)
        width = max(len(n) for n in names + ["split"]) + 2
        lines = [
            N_("{usable} usable of {rows} rows; {excluded} excluded, {notes} notes").format(
                usable=self.n_usable, rows=self.n_rows, excluded=len(self.problems), notes=len(self.notes)),
            "split".ljust(8) + "".join(n.rjust(width) for n in names) + "total".rjust(8),
        ]
        for split in SPLITS:
            per_class = self.counts.get(split, {})
            cells = "".join(str(per_class.get(n, 0)).rjust(width) for n in names)
            lines.append(split.ljust(8) + cells + str(sum(per_class.values())).rjust(8))
        if self.split_line:
            lines.append(self.split_line)
        for title, items in ((N_("problems (excluded):"), self.problems), (N_("notes:"), self.notes)):
            if items:
                lines.append(title)
                by_kind = {}
                for p in items:
                    by_kind.setdefault(p.kind, []).append(p)
                for kind, found in by_kind.items():
                    if len(found) > examples:  # 100,000 missing images: one line, not 100,000
                        lines.append("  " + N_("[{kind}] {n} rows, for example:").format(kind=kind, n=len(found)))
                    lines += [f"  {p.id or '-'}: [{p.kind}] {p.message}" for p in found[:examples]]
                    if len(found) > examples:
                        lines.append("  " + N_("... and {n} more [{kind}] (all of them: check-data --json)").format(
                            n=len(found) - examples, kind=kind))
        return "\n".join(lines)


@dataclass
class LesionData:
    """A loaded dataset: the usable records with their split, and the report of the load."""

    root: Path
    layout: str
    class_names: tuple
    records: list
    report: Report
    split_seed: int
    max_size: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    group_column: str = ""  # the column splits were grouped by ("" when none)
    labels: str | None = None  # which labels, where a layout offers several (ISIC 2020 "diagnosis")

    def split(self, name: str) -> list:
        """Records of one split ("train", "val" or "test"), in a stable order."""
        if name not in SPLITS:
            raise DataError(N_("unknown split {name}; use one of {splits}").format(name=repr(name),
                                                                                   splits=", ".join(SPLITS)))
        return [r for r in self.records if r.split == name]

    def to_spec(self) -> dict:
        """JSON-ready description that from_spec() turns back into exactly this dataset."""
        return {
            "root": str(self.root.resolve()),
            "layout": self.layout,
            "class_names": list(self.class_names),
            "max_size": self.max_size,
            "split_seed": self.split_seed,
            "labels": self.labels,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "splits": {s: [r.id for r in self.split(s)] for s in SPLITS},
        }


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


# ---------------------------------------------------------------------------- reading files


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode (L, LA, P, RGBA, CMYK, 16-bit, 32-bit) as 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        # 16/32-bit grey: PIL's convert would clip to 255; scale the range down instead.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max() > 255 else 255.0
        grey = np.clip(values / top * 255 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return image.convert("RGB")


def _fit_size(size: tuple, max_side: int | None) -> tuple:
    """(width, height) scaled so the longer side is at most max_side, keeping the aspect."""
    width, height = size
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _sideways(image: Image.Image) -> bool:
    """Whether the EXIF Orientation tag turns the stored pixels by 90 degrees (5 to 8)."""
    return image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)


def _source(path_or_file):
    """A Path, or a binary file object as is (an upload): PIL opens either."""
    return path_or_file if hasattr(path_or_file, "read") else Path(path_or_file)


def _name(source) -> str:
    return str(getattr(source, "name", source))


def _reason(exc: Exception) -> str:
    """Why PIL could not read a file, without PIL's repr of the file object (an upload's repr
    shows server internals)."""
    if isinstance(exc, UnidentifiedImageError):
        return N_("not an image format this app reads (JPEG, PNG, BMP, TIFF, WebP)")
    return str(exc)


def _open_image(path, max_side: int | None) -> Image.Image:
    """Decoded RGB PIL image, upright as its EXIF Orientation says, longer side <= max_side;
    JPEGs decode at reduced size (draft)."""
    try:
        with Image.open(path) as image:
            target = _fit_size(image.size, max_side)
            if image.format == "JPEG" and target != image.size:
                # DCT scaling decodes at 1/2, 1/4 or 1/8 size directly: several times faster.
                image.draft("RGB", target)
            image.load()
            # Phones store a photo's rotation in EXIF rather than turning its pixels; every
            # viewer applies it, so masks drawn on what the viewer showed must match it too.
            if _sideways(image):
                target = target[::-1]
            ImageOps.exif_transpose(image, in_place=True)
            rgb = _to_rgb(image)
    except FileNotFoundError:
        raise DataError(N_("image not found: {file}").format(file=_name(path))) from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(N_("cannot read image {file}: {error}").format(file=_name(path), error=_reason(exc))) from None
    if rgb.size != target:
        rgb = rgb.resize(target, Image.BILINEAR, reducing_gap=2.0)
    return rgb


def read_image(path, max_side: int | None = None) -> np.ndarray:
    """Image (a path or a binary file object) as uint8 (H, W, 3) RGB, upright (EXIF
    orientation applied); with max_side the longer side is at most max_side."""
    return np.asarray(_open_image(_source(path), max_side))


def _mask_levels(image: Image.Image) -> np.ndarray:
    """Mask pixel values as a 2-D array (any mode; colour masks are reduced to grey)."""
    if image.mode not in ("L", "1", "I", "I;16", "I;16B", "I;16L", "F"):
        image = image.convert("L")
    return np.asarray(image)


def _binarize(levels: np.ndarray) -> np.ndarray:
    """{0,1} uint8 from 0/1 or 0/255 masks: values above half the scale are lesion."""
    threshold = 0 if levels.max() <= 1 else (127 if levels.max() <= 255 else 32767)
    return (levels > threshold).astype(np.uint8)


def read_mask(path, shape: tuple) -> np.ndarray:
    """Mask (a path or a binary file object) as uint8 (H, W) in {0, 1}, resized (nearest)
    to shape=(H, W) if it differs."""
    path = _source(path)
    try:
        with Image.open(path) as image:
            mask = _binarize(_mask_levels(image))
    except FileNotFoundError:
        raise DataError(N_("mask not found: {file}").format(file=_name(path))) from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(N_("cannot read mask {file}: {error}").format(file=_name(path), error=_reason(exc))) from None
    height, width = shape[:2]
    if mask.shape != (height, width):
        mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST))
    return mask


# ---------------------------------------------------------------------------- layouts


@dataclass
class _Row:
    """A raw table row before validation; split None means "to be split"."""

    id: str
    label: object  # int, or the raw text when it is not a valid label
    split: str | None
    image_path: Path | None = None
    mask_path: Path | None = None
    label_problem: str = ""
    group: str = ""
    meta: dict = field(default_factory=dict)


def _read_csv(path: Path, required: tuple) -> list:
    """Rows of a CSV as dicts; DataError if unreadable or the header lacks a required column."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(N_("{file} needs a header with columns {required}; found {found}").format(
                    file=path.name, required=", ".join(required), found=", ".join(header) or N_("nothing")))
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(N_("cannot read {file}: {error}").format(file=path, error=exc)) from None


def patient_meta(age="", sex="", site="") -> dict:
    """Metadata as text under the common names (META_COLUMNS); unknown or impossible values
    (an age that is not a number from 0 to 120) left out."""
    try:
        years = float(age)
    except (TypeError, ValueError):
        years = float("nan")
    values = {"age": f"{years:g}" if 0 <= years <= 120 else "", "sex": str(sex or "").strip().lower(),
              "site": str(site or "").strip().lower()}
    return {k: v for k, v in values.items() if v and v not in ("unknown", "nan")}


# A metadata table beside the labels: its id column and, per common name, the names layouts use.
_META_TABLE_COLUMNS = {"id": ("id", "image_id", "image"), "age": ("age", "age_approximate", "age_approx"),
                       "sex": ("sex",), "site": ("site", "anatom_site_general", "localization")}


def _meta_table(path: Path) -> dict:
    """id -> patient_meta() of a metadata CSV ({} when there is no such file); DataError names a
    file that is unreadable or has no id column, rather than training without it unnoticed."""
    if not path.is_file():
        return {}
    rows = _read_csv(path, ())
    header = list(rows[0]) if rows else []
    column = {name: next((c for c in choices if c in header), None) for name, choices in _META_TABLE_COLUMNS.items()}
    if rows and column["id"] is None:
        raise DataError(N_("{file} needs an id column ({choices}); found {found}").format(
            file=path.name, choices=", ".join(_META_TABLE_COLUMNS["id"]), found=", ".join(header)))
    fields = ("age", "sex", "site")
    return {row[column["id"]]: patient_meta(*(row[column[f]] if column[f] else "" for f in fields))
            for row in rows if row.get(column["id"])}


def _detect_layout(root: Path) -> str:
    from lesion_core import layouts  # it builds this module's rows, so it imports data

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
    side = _meta_table(root / "metadata.csv")  # age, sex, site beside the labels (the label table's own win)
    result = []
    for split, path in tables:
        rows = []
        for raw in _read_csv(path, ("id", "label")):
            row = _Row(raw["id"], raw["label"], split, group=raw.get("group", ""),
                       meta=side.get(raw["id"], {}) | {k: raw[k] for k in META_COLUMNS if raw.get(k)})
            if not _unsafe_id(row.id):  # an unsafe id never becomes a path
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
        side = _meta_table(root / f"ISIC-2017_{stem}_Data" / name) or _meta_table(root / name)
        rows = []
        for raw in _read_csv(path, ("image_id", "melanoma", "seborrheic_keratosis")):
            label = _isic_label(raw)
            row = _Row(raw["image_id"], label, split, meta=side.get(raw["image_id"], {}))
            if isinstance(label, str):
                row.label_problem = N_("ISIC diagnosis columns are not one-hot 0/1: {values}").format(values=label)
            if not _unsafe_id(row.id):  # an unsafe id never becomes a path
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


# ---------------------------------------------------------------------------- validation


def _unsafe_id(name: str, what: str = N_("id")) -> str:
    """Why a name (an id, a ZIP entry) cannot name a file inside its folder, or "" if it can."""
    if not name:
        return N_("empty {what}").format(what=what)
    if "\x00" in name:
        return N_("{what} contains a NUL character").format(what=what)
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.drive or pure.root:
            return N_("{what} is an absolute path and would escape the folder").format(what=what)
        if ".." in pure.parts:
            return N_("{what} contains '..' and would escape the folder").format(what=what)
    return ""


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


_NOTE_MODES = {"L": N_("grayscale"), "LA": N_("grayscale+alpha"), "1": N_("black-and-white"), "P": N_("palette"),
               "RGBA": "RGBA", "CMYK": "CMYK", "I;16": N_("16-bit"), "I;16B": N_("16-bit"),
               "I;16L": N_("16-bit"), "I": N_("32-bit integer"), "F": N_("32-bit float")}


def _check_image(path: Path) -> tuple:
    """Cheaply decode an image: ((width, height) upright, mode) or raise (kind, message)."""
    try:
        if path.stat().st_size == 0:
            raise _Bad("not_an_image", N_("{file} is an empty file (0 bytes)").format(file=path.name))
        with Image.open(path) as image:
            size, mode = image.size, image.mode
            if _sideways(image):  # read_image turns it upright; its mask must match that
                size = size[::-1]
            if image.format == "JPEG":
                # Decoding at 1/8 size still reads every byte: truncation is detected, fast.
                image.draft(image.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
            image.load()
    except _Bad:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses to decode images this large (a small file can claim a huge size).
        raise _Bad("image_too_large", N_("{file}: {error}; downscale it").format(file=path.name, error=exc)) from None
    except UnidentifiedImageError:
        raise _Bad("not_an_image", N_("{file} is not an image file PIL can read").format(file=path.name)) from None
    except (PermissionError, IsADirectoryError) as exc:
        raise _Bad("unreadable_image", N_("{file} cannot be opened: {error}").format(file=path.name,
                                                                                  error=exc.strerror)) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise _Bad("corrupt_image", N_("{file} is corrupt or truncated: {error}").format(file=path.name,
                                                                                       error=exc)) from None
    return size, mode


def _distinct_values(image: Image.Image) -> np.ndarray:
    """Sorted distinct pixel values of a mask; PIL's histogram is ~5x faster than np.unique."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return np.unique(np.asarray(image))
    if image.mode not in ("1", "L"):
        image = image.convert("L")
    return np.flatnonzero(image.histogram()[:256])


def _check_mask(path: Path, image_size: tuple) -> bool:
    """Raise (kind, message) for an unreadable, wrongly sized, empty or non-binary mask;
    return True when the whole image is marked as lesion (usable, but worth a note)."""
    try:
        with Image.open(path) as image:
            size = image.size
            values = _distinct_values(image)
    except UnidentifiedImageError:
        raise _Bad("corrupt_mask", N_("{file} is not an image file PIL can read").format(file=path.name)) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _Bad("corrupt_mask", N_("{file} cannot be decoded: {error}").format(file=path.name, error=exc)) from None
    if size != image_size:
        raise _Bad("mask_size", N_("mask is {size} but the image is {image_size}").format(
            size=f"{size[0]}x{size[1]}", image_size=f"{image_size[0]}x{image_size[1]}"))
    if values.max() == 0:
        raise _Bad("empty_mask", N_("{file} has no lesion pixels (all zero)").format(file=path.name))
    if not any(set(values.tolist()) <= {0, top} for top in (1, 255, 65535)):
        shown = ", ".join(str(v) for v in values[:6]) + (" ..." if len(values) > 6 else "")
        raise _Bad("non_binary_mask", N_("{file} has {n} distinct values ({values}); masks must be 0/255 or 0/1 "
                                         "(saved as PNG, not JPEG)").format(file=path.name, n=len(values), values=shown))
    return len(values) == 1


class _Bad(Exception):
    """A row-level problem found while checking files: args are (kind, message)."""


def _check_files(row: _Row) -> tuple:
    """(size, mode, the mask's _Bad or None, whether the mask marks the whole image) of a
    row's image; raises _Bad for a bad image."""
    size, mode = _check_image(row.image_path)
    try:
        full = bool(row.mask_path and row.mask_path.exists() and _check_mask(row.mask_path, size))
    except _Bad as bad:
        return size, mode, bad, False
    return size, mode, None, full


def _check_all_files(tables: list) -> dict:
    """id(row) -> _check_files(row) or its _Bad, for every row with an image path, on one
    thread per core: PIL decodes without holding the GIL, so 25,000 images check in parallel."""
    rows = [row for rows in tables for row in rows if row.image_path is not None]

    def check(row):
        try:
            return _check_files(row)
        except _Bad as bad:
            return bad

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return dict(zip(map(id, rows), pool.map(check, rows)))


def _validate(row: _Row, n_classes: int, check_images: bool, report: Report,
              checked: dict | None = None) -> Record | None:
    """A Record for a usable row; otherwise append the Problem to the report and return None.
    checked: _check_all_files' results, so the images need not be decoded again."""
    try:
        reason = _unsafe_id(row.id)
        if reason:
            raise _Bad("unsafe_id", reason)
        if row.label_problem:
            raise _Bad("label_invalid", row.label_problem)
        label, bad_label = _parse_label(row.label, n_classes)
        if bad_label:
            raise _Bad(*bad_label)
        if not row.image_path.exists():
            raise _Bad("missing_image", N_("image not found: {file}").format(file=row.image_path.name))
        mask_path = row.mask_path if row.mask_path and row.mask_path.exists() else None
        if check_images:
            result = (checked or {}).get(id(row)) or _check_files(row)
            if isinstance(result, _Bad):
                raise result
            size, mode, bad_mask, full_mask = result
            if mode != "RGB":
                what = _NOTE_MODES.get(mode, mode)
                report.notes.append(Problem(row.id, "converted_image",
                                            N_("{mode} image converted to 8-bit RGB").format(mode=what)))
            if bad_mask:
                raise bad_mask
            if full_mask:
                report.notes.append(Problem(row.id, "full_mask", N_(
                    "{file} marks the whole image as lesion (no skin pixel): a placeholder rather than a "
                    "segmentation?").format(file=mask_path.name)))
    except _Bad as bad:
        report.problems.append(Problem(row.id, *bad.args))
        return None
    if row.mask_path and mask_path is None and row.mask_path.parent.is_dir():
        report.notes.append(Problem(row.id, "no_mask", N_(
            "no mask ({file} not found); mask-based augmentations will refuse this sample").format(
                file=row.mask_path.name)))
    return Record(row.id, label, row.image_path, mask_path, row.split or "train", row.group, row.meta)


# ---------------------------------------------------------------------------- splits


def _carve(records: list, fraction: float, seed: int, report: Report) -> tuple:
    """Split records into (kept, carved) with `fraction` carved, stratified by label if possible."""
    from sklearn.model_selection import train_test_split

    if fraction <= 0 or len(records) < 2:
        return records, []
    if any(r.group for r in records):
        from lesion_core import splits  # grouped: a lesion's images stay together

        return splits.carve_groups(records, fraction, seed, report)
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


# ---------------------------------------------------------------------------- loading


def load_dataset(root, class_names=None, max_size: int = 0, val_fraction: float = 0.15,
                 test_fraction: float = 0.15, split_seed: int = 42, check_images: bool = True,
                 splits: dict | None = None, labels: str | None = None) -> LesionData:
    """Load and validate a dataset folder (layout detected); DataError when no row is usable.

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
        from lesion_core import layouts

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
            if row.id in seen and not _unsafe_id(row.id):
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
        from lesion_core import splits

        report.split_line = splits.leak_line(records, group_column, report)
    for record in records:
        per_class = report.counts.setdefault(record.split, {})
        name = class_names[record.label]
        per_class[name] = per_class.get(name, 0) + 1
    for index, name in enumerate(class_names):
        if not any(record.label == index for record in records):
            report.notes.append(Problem("", "empty_class", N_(
                "class {name} has no usable images: its AUC is undefined and a model cannot learn it").format(
                    name=repr(name))))
    if not report.n_usable:  # a page translates the message and the report under it line by line
        raise DataError(N_("no usable samples in {root}:").format(root=root) + "\n" + report.format())
    return LesionData(root, layout, class_names, records, report, split_seed,
                      max_size, val_fraction, test_fraction, group_column, labels)


# ---------------------------------------------------------------------------- torch dataset


class LesionDataset(Dataset):
    """Torch dataset of records: samples {"image", "mask", "label", "id"} (image uint8
    (H, W, 3), mask uint8 (H, W) in {0, 1} or None, before the pipeline).

    With max_side, images are decoded at reduced size (longer side <= max_side, aspect kept;
    masks resized nearest) and, with cache=True, the resized uint8 arrays are kept under
    cache_dir()/decoded so later epochs skip decoding. The cache key includes each file's
    absolute path, size, modification and inode change times, so replacing a file invalidates
    its entry even when its modification time is restored.
    Without max_side nothing is cached: full-size originals would fill the disk.
    """

    def __init__(self, records, transform=None, max_side: int | None = None, cache: bool = True):
        self.records = list(records)
        self.transform = transform
        self.max_side = max_side
        self.cache = cache and bool(max_side)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        image, mask = self._decoded(record)
        sample = {"image": image, "mask": mask, "label": record.label, "id": record.id}
        return self.transform(sample) if self.transform else sample

    def _decoded(self, record: Record) -> tuple:
        """(image uint8 (H, W, 3), mask uint8 (H, W) {0,1} or None), from the cache if there."""
        if not self.cache:
            return _decode(record, self.max_side)
        try:
            key = _cache_key(record, self.max_side)
        except OSError:  # a file gone since the load: _decode says which, as a DataError
            return _decode(record, self.max_side)
        path = decoded_cache_dir() / f"{key}.npy"
        try:
            # One raw .npy per sample, the mask as a 4th channel: loads in a fraction of a
            # millisecond, faster than decoding even a small JPEG (an .npz is not).
            stored = np.load(path)
            image = np.ascontiguousarray(stored[..., :3])
            return image, (np.ascontiguousarray(stored[..., 3]) if stored.shape[-1] == 4 else None)
        except (OSError, ValueError, IndexError):
            pass  # not cached yet, or a damaged entry: decode again and rewrite it
        image, mask = _decode(record, self.max_side)
        _write_atomic_npy(path, image if mask is None else np.dstack([image, mask]))
        return image, mask


def _decode(record: Record, max_side: int | None) -> tuple:
    image = read_image(record.image_path, max_side)
    mask = read_mask(record.mask_path, image.shape[:2]) if record.mask_path else None
    return image, mask


# Bump when decoding changes, so cached samples decoded the old way are not reused
# (2: EXIF orientation applied).
_DECODE_VERSION = 2


def decoded_cache_dir() -> Path:
    """Where LesionDataset keeps decoded, resized samples (one .npy each)."""
    return cache_dir() / "decoded"


def decoded_cache_usage() -> tuple[int, int]:
    """(number of cached samples, bytes) of the decoded-sample cache."""
    files = list(decoded_cache_dir().glob("*.npy"))
    return len(files), sum(f.stat().st_size for f in files if f.is_file())


def clear_decoded_cache() -> tuple[int, int]:
    """Delete every cached decoded sample; returns (files, bytes) freed. Safe while a run
    reads the cache: a sample that vanished is decoded again from its image."""
    freed = [0, 0]
    for path in decoded_cache_dir().glob("*.npy"):
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        freed[0] += 1
        freed[1] += size
    return freed[0], freed[1]


def _cache_key(record: Record, max_side: int | None) -> str:
    """Hex digest of each file's absolute path, size, mtime_ns, inode and ctime_ns, max_side and
    the decoder. The inode change time is set by the system on every write and rename and no
    user can set it back (`cp -p` and `rsync -t` restore the modification time only)."""
    parts = [str(_DECODE_VERSION), str(max_side)]
    for path in (record.image_path, record.mask_path):
        if path is not None:
            stat = Path(path).stat()
            parts += [str(Path(path).resolve()), str(stat.st_size), str(stat.st_mtime_ns), str(stat.st_ino),
                      str(stat.st_ctime_ns)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _write_atomic_npy(path: Path, array: np.ndarray) -> None:
    """Save array to path via a temporary file and a rename, so readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())


# ---------------------------------------------------------------------------- ZIP import

_DATASET_MARKERS = re.compile(r"(labels\.csv|DBtrain\.csv|ISIC-2017_\w+_Part3_GroundTruth\.csv"
                              r"|HAM10000_metadata\.csv|ISIC_2019_Training_GroundTruth\.csv|train\.csv"
                              r"|ISIC2018_Task3_Training_LesionGroupings\.csv)")
_CHUNK = 1 << 20


def import_zip(zip_path, dest, *, max_total_bytes: int = 20 * 10**9, max_files: int = 100_000,
               max_ratio: float = 200.0) -> Path:
    """Extract a dataset ZIP safely into dest (new or empty); return the dataset root in it.

    Every entry is checked before anything is written: names that would land outside dest
    (`../`, absolute, drive letters), symlinks and other special files, encrypted entries,
    more than max_files entries, more than max_total_bytes uncompressed (as declared by the
    central directory) or more than the free disk space, and entries or the whole archive
    compressed more than max_ratio:1 (zip bombs, including many small entries). Extraction
    goes to a temporary folder beside dest, streams each entry with a byte counter against
    its declared size, and is renamed into place at the end: a refused or failed import
    leaves nothing behind. Raises UnsafeArchiveError for unsafe archives, DataError otherwise.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(N_("{folder} already exists and is not empty; choose a new folder").format(folder=dest))
    try:
        archive = zipfile.ZipFile(zip_path)
    except FileNotFoundError:
        raise DataError(N_("ZIP file not found: {file}").format(file=zip_path)) from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(N_("{file} is not a readable ZIP file: {error}").format(file=zip_path.name, error=exc)) from None
    with archive:
        members = _checked_members(archive, max_total_bytes, max_files, max_ratio)
        check_room(sum(info.file_size for _, info in members), dest.parent)
        inner_root = _zip_dataset_root([name for name, _ in members], zip_path.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-import-", dir=dest.parent))
        try:
            for name, info in members:
                _extract_member(archive, info, staging / name)
            if dest.exists():
                dest.rmdir()  # empty, checked above
            os.rename(staging, dest)
        except zipfile.BadZipFile as exc:
            raise DataError(N_("{file} is damaged: {error}; nothing was imported").format(
                file=zip_path.name, error=exc)) from None
        except (OSError, NotImplementedError) as exc:  # disk full, unsupported compression...
            raise DataError(N_("cannot extract {file} into {folder}: {error}; nothing was imported").format(
                file=zip_path.name, folder=dest.parent, error=exc)) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest / inner_root


def import_upload(name: str, content: bytes, folder, check=None) -> Path:
    """Unpack an uploaded dataset ZIP (its file name and bytes) under folder and return the
    dataset root: import_zip into folder/<name>-<content hash>. Errors name the user's file,
    not a temporary one; check (root -> None, raising) is run on the result, and whatever fails
    leaves nothing behind.

    The same content uploaded again, by this session or several at once, shares one import:
    imports into a folder take turns (an flock on the folder), extract into a temporary folder
    renamed into place, and mark themselves finished (IMPORT_DONE in dest, naming the root). A
    finished import is reused, never removed or extracted again: a run may be training on it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = Path(str(name)).name
    base = base if base not in ("", ".", "..") else "upload.zip"
    stem = f"{Path(base).stem[:40]}-{hashlib.sha256(content).hexdigest()[:10]}"
    dest = folder / stem
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
        if (dest / IMPORT_DONE).is_file():  # imported before: the same bytes, so the same dataset
            root = dest / (dest / IMPORT_DONE).read_text(encoding="utf-8").strip()
            if check is not None:
                check(root)
            return root
        shutil.rmtree(dest, ignore_errors=True)  # an import cut short (killed): never finished, never used
        parked = Path(tempfile.mkdtemp(prefix=f".{stem}-upload-", dir=folder))  # the archive, beside dest
        try:
            archive = parked / base
            archive.write_bytes(content)
            root = import_zip(archive, dest)
            if check is not None:
                check(root)  # a ZIP that holds no usable dataset fails here, with its report
            atomic_write_text(dest / IMPORT_DONE, f"{root.relative_to(dest).as_posix()}\n")
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(parked, ignore_errors=True)
        return root
    finally:
        os.close(fd)


IMPORT_DONE = ".lesion-lab-import"  # in an upload's folder: the import finished; its dataset root


def _checked_members(archive, max_total_bytes, max_files, max_ratio) -> list:
    """[(safe relative name, ZipInfo)] of the files to extract; UnsafeArchiveError says why not."""
    infos = archive.infolist()
    if len(infos) > max_files:
        raise UnsafeArchiveError(N_("the ZIP has {n} entries, more than the limit of {limit}").format(
            n=len(infos), limit=max_files))
    total = sum(info.file_size for info in infos)
    if total > max_total_bytes:
        raise UnsafeArchiveError(N_("the ZIP would unpack to {total} bytes, more than the limit of {limit}").format(
            total=f"{total:,}", limit=f"{max_total_bytes:,}"))
    # Entries of 1 MiB or less pass the per-entry check below; thousands of them still make
    # a bomb (1,500 zero-filled MiB entries: 1.96 MB of ZIP, 1.5 GB unpacked).
    packed = sum(info.compress_size for info in infos)
    if total > _CHUNK and total > max_ratio * max(packed, 1):
        raise UnsafeArchiveError(N_("the ZIP would unpack to {total} bytes from {packed}: compressed {ratio}:1 "
                                    "overall, more than the limit of {limit}:1 (a zip bomb?)").format(
            total=f"{total:,}", packed=f"{packed:,}", ratio=total // max(packed, 1), limit=f"{max_ratio:g}"))
    members = []
    for info in infos:
        reason = _unsafe_id(info.filename.replace("\\", "/"), N_("name"))
        if reason:
            raise UnsafeArchiveError(N_("refused entry {entry}: {reason}").format(entry=repr(info.filename),
                                                                                reason=reason))
        name = PurePosixPath(info.filename.replace("\\", "/")).as_posix()  # "a/./b" -> "a/b"
        file_type = (info.external_attr >> 16) & 0o170000
        if file_type == 0o120000:
            raise UnsafeArchiveError(N_("refused entry {entry}: it is a symbolic link").format(
                entry=repr(info.filename)))
        if file_type not in (0, 0o100000, 0o040000):
            raise UnsafeArchiveError(N_("refused entry {entry}: it is not a regular file or folder").format(
                entry=repr(info.filename)))
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(N_("refused entry {entry}: it is encrypted").format(entry=repr(info.filename)))
        # Small entries cannot be bombs; large ones compressed beyond max_ratio are.
        if info.file_size > _CHUNK and info.file_size > max_ratio * max(info.compress_size, 1):
            ratio = info.file_size // max(info.compress_size, 1)
            raise UnsafeArchiveError(N_("refused entry {entry}: compressed {ratio}:1, more than the limit of "
                                        "{limit}:1 (a zip bomb?)").format(entry=repr(info.filename), ratio=ratio,
                                                                          limit=f"{max_ratio:g}"))
        if info.is_dir() or name.split("/")[0] == "__MACOSX":
            continue  # folders are made as files land; macOS resource forks are not data
        if name == ".":
            raise UnsafeArchiveError(N_("refused entry {entry}: a file named as the folder itself").format(
                entry=repr(info.filename)))
        members.append((name, info))
    _refuse_name_clashes(members)
    return members


# Room to leave on the disk after an import, so the import alone never fills it.
DISK_RESERVE = 256 * 2**20


def check_room(n_bytes: int, folder) -> None:
    """UnsafeArchiveError when writing n_bytes into folder (or its nearest existing parent)
    would leave less than DISK_RESERVE free."""
    folder = Path(folder).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if n_bytes > free - DISK_RESERVE:
        raise UnsafeArchiveError(N_("the ZIP would unpack to {total} bytes but only {free} are free on that disk; "
                                    "nothing was imported").format(total=f"{n_bytes:,}", free=f"{free:,}"))


def _refuse_name_clashes(members: list) -> None:
    """UnsafeArchiveError when two entries would land on one path: a repeated name (one would
    silently overwrite the other), names differing only in case (the same file on Windows
    and macOS), or a file whose name is also another entry's folder."""
    seen = {}
    for name, info in members:
        first = seen.setdefault(name.casefold(), info)
        if first is not info:
            raise UnsafeArchiveError(N_("refused entries {first} and {second}: they would be the same file "
                                        "(a repeated name, or names differing only in case)").format(
                first=repr(first.filename), second=repr(info.filename)))
    for name, info in members:
        for parent in PurePosixPath(name).parents:
            if parent.as_posix().casefold() in seen:
                raise UnsafeArchiveError(N_("refused entry {entry}: {name} is both a file and a folder in the "
                                            "ZIP").format(entry=repr(info.filename), name=repr(parent.as_posix())))


def _zip_dataset_root(names: list, zip_name: str) -> str:
    """The folder inside the ZIP ("" for its top) holding the dataset's label file(s)."""
    parents = {PurePosixPath(n).parent.as_posix() for n in names
               if _DATASET_MARKERS.fullmatch(PurePosixPath(n).name)}
    roots = {"" if p == "." else p for p in parents}
    if not roots:
        raise DataError(N_("no dataset found in {file}: expected labels.csv (or DBtrain.csv) or the ISIC 2017 "
                           "ground-truth CSVs, at the top or in one folder").format(file=zip_name))
    def depth(folder: str) -> int:
        return folder.count("/") + 1 if folder else 0

    shallowest = min(map(depth, roots))
    candidates = sorted(r for r in roots if depth(r) == shallowest)
    if len(candidates) > 1:
        raise DataError(N_("{file} holds several datasets ({folders}); put one dataset per ZIP").format(
            file=zip_name, folders=", ".join(candidates)))
    return candidates[0]


def _extract_member(archive, info, target: Path) -> None:
    """Stream one entry to target. zipfile never yields more than the entry's declared size
    (checked against the caps before anything was written), and a forged smaller size fails
    its CRC check (BadZipFile), which the caller turns into a refused import."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as source, open(target, "wb") as out:
        shutil.copyfileobj(source, out, _CHUNK)


# ---------------------------------------------------------------------------- CIFAR-10

_CIFAR_HOST = ("www.cs.toronto.edu", 443)


def load_cifar10(root, train: bool = True, download: bool = False, transform=None):
    """torchvision's CIFAR-10 (PIL image, label) from root/cifar-10-batches-py.

    Downloads only when download=True and the host answers within a few seconds; otherwise
    a DataError says where to put the files. torchvision checks each file's MD5 before
    unpickling it, so only the genuine batches are ever loaded.
    """
    from torchvision.datasets import CIFAR10

    root = Path(root)
    folder = root / CIFAR10.base_folder
    where = (f"put the extracted cifar-10-batches-py folder (from {CIFAR10.url}) at {folder}")
    if not folder.is_dir():
        if not download:
            raise DataError(f"CIFAR-10 not found; {where}, or allow the download")
        if not reachable(*_CIFAR_HOST):
            raise DataError(f"CIFAR-10 not found and the download site cannot be reached "
                            f"(offline?); {where}")
    try:
        return CIFAR10(str(root), train=train, download=download and not folder.is_dir(),
                       transform=transform)
    except RuntimeError:
        raise DataError(f"CIFAR-10 files in {folder} are incomplete or corrupted (checksums "
                        f"differ); {where}") from None
    except OSError as exc:
        raise DataError(f"CIFAR-10 download failed ({exc}); {where}") from None


