"""The app's one module of st.cache_* wrappers: engine calls whose results are kept per
server process, keyed on what changes them (a folder's or a file's modification stamp)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_pages.lang import _
from lesion_core import access, data, inference, runs
from lesion_core.data import demo, tables
from lesion_core.errors import DataError, LesionLabError


@st.cache_resource(show_spinner=False)
def _demo_root() -> str:
    return str(demo.demo_dir())


def demo_root() -> Path:
    """The built-in demo dataset, generated on first use (a few seconds, with a spinner)."""
    with st.spinner(_("Preparing the demo dataset (first start only, a few seconds)...")):
        return Path(_demo_root())


def _folder_stamp(root: Path) -> tuple:
    """Changes when the folder's label tables change, so a stale cached load is not reused."""
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in root.glob("*.csv")))


@st.cache_resource(show_spinner=False, max_entries=4)
def _load(root: str, stamp: tuple) -> data.LesionData:
    return data.load_dataset(root)


def load_data(root: str | Path) -> data.LesionData:
    """load_dataset(root), cached per folder while its CSV files are unchanged; only folders
    under the allowed data roots (lesion_core.access) are opened."""
    root = access.check_data_folder(root)
    with st.spinner(_("Checking the dataset in {root} ...", root=root)):
        return _load(str(root.resolve()), _folder_stamp(root))


@st.cache_data(show_spinner=False, max_entries=8)
def image_sizes(image_paths: tuple[str, ...]) -> list[tuple[int, int]]:
    """tables.image_sizes, kept per list of files."""
    return tables.image_sizes(image_paths)


@st.cache_resource(show_spinner=False, max_entries=2)
def _build_model(name: str, weights: str, weights_path: str | None, freeze_backbone: bool, num_classes: int):
    from lesion_core import models

    return models.build_model(name, num_classes, weights=weights, weights_path=weights_path,
                              freeze_backbone=freeze_backbone)


def build_model(name: str, weights: str = "default", weights_path: str | None = None,
                freeze_backbone: bool = False, num_classes: int = 3):
    """models.build_model, cached per choice (big nets take seconds to build)."""
    with st.spinner(_("Building {name} ({weights} weights)...", name=name, weights=_(weights))):
        return _build_model(name, weights, weights_path, freeze_backbone, num_classes)


@st.cache_resource(show_spinner=False, max_entries=4)
def _summarize(_model, choice_key: str, size: int):
    from lesion_core import models

    return models.summarize(_model, size)


def summarize(model, choice: dict, size: int):
    """models.summarize(model, size), cached per model choice and input size."""
    import json

    with st.spinner(_("Summarising the layers...")):
        return _summarize(model, json.dumps(choice, sort_keys=True), size)


@st.cache_data(show_spinner=False, max_entries=8)
def _prediction_frame(path: str, mtime: int):

    return inference.read_predictions(path)


def prediction_frame(run_dir: Path, split: str):
    """predictions_<split>.csv of a run with confidence, loss (-log p(true)) and correct
    columns; frame.attrs["class_names"]; None when the file is not written yet."""
    path = Path(run_dir) / f"predictions_{split}.csv"
    if not path.is_file():
        return None
    return _prediction_frame(str(path), path.stat().st_mtime_ns)


@st.cache_resource(show_spinner=False, max_entries=4)
def _run_records(run_dir: str) -> dict:
    split = runs.read_config(run_dir).get("data", {}).get("split")
    if not split:
        raise DataError(_("run {run} has no recorded data split yet", run=Path(run_dir).name))
    try:
        return {r.id: r for r in data.from_spec(split, check_images=False).records}
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # config.json is untrusted input
        raise DataError(_("run {run}: config.json: the recorded data split is damaged ({kind}: {error})",
                               run=Path(run_dir).name, kind=type(exc).__name__, error=exc)) from None


@st.cache_data(show_spinner=False, max_entries=8)
def _subgroup_table(path: str, mtime: int) -> list:
    from lesion_core.evaluation import subgroups

    frame = inference.read_predictions(path)
    return subgroups.subgroup_table(frame) if subgroups.has_subgroups(frame) else []


def subgroup_table(run_dir: Path, split: str) -> list:
    """Metrics per sex, age band and site of a run's predictions ([] without metadata)."""
    path = Path(run_dir) / f"predictions_{split}.csv"
    try:
        return _subgroup_table(str(path), path.stat().st_mtime_ns) if path.is_file() else []
    except LesionLabError:  # a damaged file: the Review section below, reading the same file, names it
        return []


def run_records(run_dir: Path) -> dict:
    """id -> Record of the images a run was trained and evaluated on (its recorded split)."""
    return _run_records(str(run_dir))


@st.cache_resource(show_spinner=False, max_entries=2)
def _explainer(run_dir: str, stamp: tuple, method: str, calibrated: bool):
    from lesion_core.evaluation import explain

    return explain.Explainer(run_dir, method, calibrated)


def explainer(run_dir: Path, method: str = "gradcam", calibrated: bool = True):
    """A run's cached heatmap maker; rebuilt when best.pt or calibration.json change."""
    stamp = tuple((Path(run_dir) / name).stat().st_mtime_ns if (Path(run_dir) / name).exists() else None
                  for name in ("best.pt", "calibration.json"))
    return _explainer(str(run_dir), stamp, method, calibrated)


@st.cache_data(show_spinner=False, max_entries=2)
def _export_bytes(run_dir: str, fmt: str, stamp: tuple) -> tuple[bytes, dict]:
    from lesion_core import export

    return export.export_bytes(run_dir, fmt)


def export_bytes(run_dir: Path, fmt: str) -> tuple[bytes, dict]:
    """The run's best model exported to fmt (checked) and its sidecar; redone when best.pt,
    calibration.json or threshold.json change."""
    stamp = tuple((run_dir / name).stat().st_mtime_ns if (run_dir / name).exists() else None
                  for name in ("best.pt", "calibration.json", "threshold.json", "config.json"))
    return _export_bytes(str(run_dir), fmt, stamp)


@st.cache_data(show_spinner=False, max_entries=8)
def _reader_study(run_dir: str, split: str, class_name: str, stamp: tuple) -> tuple:
    from lesion_core.evaluation import readers

    ids, labels, probs, names = readers.model_predictions(run_dir, split)
    study, problems = readers.load_study(run_dir, names, ids)
    return (readers.score_study(study, ids, labels, probs, names, class_name, split) if study else None), problems


def reader_study(run_dir: Path, split: str, class_name: str) -> tuple:
    """(readers.score_study() of the run's reads on split, or None without reads; problems of
    the reads files); redone when a reads file, the predictions or calibration.json change."""
    from lesion_core.evaluation import readers

    files = [readers.reads_path(run_dir, r) for r in readers.list_readers(run_dir)]
    files += [Path(run_dir) / f"predictions_{split}.csv", Path(run_dir) / "calibration.json"]
    stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files if p.exists())
    return _reader_study(str(run_dir), split, class_name, stamp)
