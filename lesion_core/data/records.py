"""What a dataset is made of: records, problems, the load report, and the CSV rows
and patient metadata every layout reads."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from lesion_core.errors import DataError
from lesion_core.i18n import N_, concat, join

SPLITS = ("train", "val", "test")


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
                        lines.append(concat("  ", N_("[{kind}] {n} rows, for example:").format(kind=kind, n=len(found))))
                    lines += [concat(f"  {p.id or '-'}: [{p.kind}] ", p.message) for p in found[:examples]]
                    if len(found) > examples:
                        lines.append(concat("  ", N_("... and {n} more [{kind}] (all of them: check-data --json)").format(
                            n=len(found) - examples, kind=kind)))
        return join("\n", lines)  # lines of messages: a page translates them one by one


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


@dataclass
class Row:
    """A raw table row before validation; split None means "to be split"."""

    id: str
    label: object  # int, or the raw text when it is not a valid label
    split: str | None
    image_path: Path | None = None
    mask_path: Path | None = None
    label_problem: str = ""
    group: str = ""
    meta: dict = field(default_factory=dict)


def read_csv(path: Path, required: tuple) -> list:
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
META_TABLE_COLUMNS = {"id": ("id", "image_id", "image"), "age": ("age", "age_approximate", "age_approx"),
                       "sex": ("sex",), "site": ("site", "anatom_site_general", "localization")}


def meta_table(path: Path) -> dict:
    """id -> patient_meta() of a metadata CSV ({} when there is no such file); DataError names a
    file that is unreadable or has no id column, rather than training without it unnoticed."""
    if not path.is_file():
        return {}
    rows = read_csv(path, ())
    header = list(rows[0]) if rows else []
    column = {name: next((c for c in choices if c in header), None) for name, choices in META_TABLE_COLUMNS.items()}
    if rows and column["id"] is None:
        raise DataError(N_("{file} needs an id column ({choices}); found {found}").format(
            file=path.name, choices=", ".join(META_TABLE_COLUMNS["id"]), found=", ".join(header)))
    fields = ("age", "sex", "site")
    return {row[column["id"]]: patient_meta(*(row[column[f]] if column[f] else "" for f in fields))
            for row in rows if row.get(column["id"])}


def unsafe_id(name: str, what: str = N_("id")) -> str:
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
