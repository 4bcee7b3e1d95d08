"""A run's predictions CSV (predictions_<split>.csv): the one writer and the one reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lesion_core import csvsafe, data, metrics, runs
from lesion_core.errors import DataError, TrainingError, require
from lesion_core.i18n import N_
from lesion_core.inference.temperature import apply_temperature


def write_predictions(path: Path, ids, labels, probs: np.ndarray, class_names, meta: dict | None = None,
                      temperature: float | None = None) -> None:
    """CSV: id, label, prob_<class name> per class (raw: the model's softmax, after the metadata
    prior), cal_prob_<class name> per class when temperature is given (softmax(log p / T), what
    predict shows), pred (label and pred are class names; the most probable class, the same for
    both), then group, age, sex, site where meta (id -> {column: text}) has them for any row.

    Probabilities are written to the last digit (the shortest text that reads back as the same
    number): every reader of the file (compare, the pages, the report, the operating points)
    then ranks and picks exactly as evaluate does. Six decimals tied an overconfident run's
    probabilities at 0.000000, and compare's mean AUC differed from evaluate's (0.694, 0.750)."""
    meta = meta or {}
    extra = [c for c in ("group",) + data.META_COLUMNS if any(c in m for m in meta.values())]
    scaled = apply_temperature(probs, temperature) if temperature is not None else np.zeros((len(ids), 0))
    cal_columns = [f"cal_prob_{name}" for name in class_names] if temperature is not None else []
    rows = [["id", "label"] + [f"prob_{name}" for name in class_names] + cal_columns + ["pred"] + extra]
    for sample_id, label, row, cal in zip(ids, labels, probs, scaled):
        rows.append([sample_id, class_names[int(label)]] + [_exact(p) for p in row] + [_exact(p) for p in cal]
                    + [class_names[int(row.argmax())]] + [meta.get(sample_id, {}).get(c, "") for c in extra])
    runs.atomic_write_text(path, csvsafe.write_rows(rows))  # ids and metadata never run as formulas


def _exact(value) -> str:
    """A probability as the shortest text that reads back as the same number (its own type's:
    float32 scores keep their float32 digits)."""
    return np.format_float_positional(value, unique=True, trim="-") if value >= 1e-4 or value == 0 \
        else np.format_float_scientific(value, unique=True, trim="-")


def read_predictions(path):
    """A predictions CSV as write_predictions wrote it, as a pandas DataFrame with per-sample
    confidence (max probability), loss (-log p(true class)) and correct columns from
    metrics.compute_metrics; frame.attrs["class_names"] lists the classes in column order."""
    import pandas as pd

    try:
        # Ids, class names and metadata are text: ids such as 0001 must not become the number 1.
        text = {"id": str, "label": str, "pred": str, "group": str, "sex": str, "site": str}
        frame = pd.read_csv(path, dtype=text, keep_default_na=False)
        csvsafe.restore_frame(frame, text)
        if "age" in frame:  # empty when unknown
            frame["age"] = pd.to_numeric(frame["age"], errors="coerce")
        prob_columns = [c for c in frame.columns if c.startswith("prob_")]
        names = [c.removeprefix("prob_") for c in prob_columns]
        require(len(names) >= 1 and {"id", "label", "pred"} <= set(frame.columns), "not the columns the trainer writes")
        known = frame["label"].isin(names)
        require(known.all(), N_("label {label} is not one of the classes ({names})").format(
            label=repr(frame["label"][~known].iloc[0] if not known.all() else ""), names=", ".join(names)))
        labels = frame["label"].map({name: index for index, name in enumerate(names)}).to_numpy(dtype=int)
        result = metrics.compute_metrics(labels, frame[prob_columns].to_numpy(dtype=float), names)
    except (ValueError, TypeError, KeyError, TrainingError, pd.errors.ParserError) as exc:
        # UnicodeDecodeError is a ValueError: a binary file where a CSV should be
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:100]
        raise DataError(N_("{file} is damaged: {error}").format(file=Path(path).name, error=first_line)) from None
    frame["confidence"] = result["confidence"]
    frame["loss"] = result["loss"]
    frame["correct"] = frame["label"] == frame["pred"]
    frame.attrs["class_names"] = names
    return frame
