"""The review keys of metrics_<split>.json: "calibration" and "operating_points" (and "explain",
"tta" when evaluate is asked for them), added beside the plain metrics, never replacing them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lesion_core import runs
from lesion_core.evaluation import calibration, operating
from lesion_core.metrics import per_image, to_jsonable
from lesion_core.inference import temperature as scaling


def split_review(run_dir, split: str, labels, raw_probs, class_names) -> dict:
    """{"calibration", "operating_points", "probabilities"} of one split's raw softmax probabilities.

    On "val" it first fits the temperature and writes calibration.json, so call it for val
    before test. Operating points are taken on the raw probabilities, as the AUC and the ROC
    curve beside them are (a temperature reorders a class's scores across images, so an
    operating point of the calibrated ones would not lie on the drawn curve); every block says
    so ("probabilities": "raw"), and a saved rule records which probabilities it compares.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if split == "val":
        calibration.fit_and_save(run_dir, raw_probs, labels)
    temperature = scaling.read_temperature(run_dir)
    points = operating.operating_points(labels, raw_probs, class_names)
    return to_jsonable({"calibration": calibration.report(raw_probs, labels, temperature),
                        "operating_points": {name: dict(point, probabilities="raw") for name, point in points.items()},
                        "probabilities": "raw"})


def update_metrics(run_dir, split: str, extra: dict) -> dict:
    """Merge extra keys into metrics_<split>.json (written atomically); returns the new content."""
    current = runs.read_metrics(run_dir, split) or {}
    merged = current | to_jsonable(extra)
    runs.atomic_write_json(Path(run_dir) / f"metrics_{split}.json", merged)
    return merged


def frame_arrays(frame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(labels int64 (N,), raw probabilities (N, C), class names) of a read_predictions() frame."""
    names = list(frame.attrs["class_names"])
    labels = frame["label"].map({n: i for i, n in enumerate(names)}).to_numpy(dtype=np.int64)
    return labels, frame[[f"prob_{n}" for n in names]].to_numpy(dtype=float), names


def scaled_frame(frame, temperature: float):
    """A read_predictions() frame as the temperature shows it: a copy whose prob_<class>,
    confidence and loss columns come from softmax(log p / T) (pred and correct do not change:
    a temperature keeps each image's top class). T = 1 gives the frame back unchanged."""
    if temperature == 1.0 or frame.empty:
        return frame
    labels, raw, names = frame_arrays(frame)
    probs = scaling.apply_temperature(raw, temperature)
    out = frame.copy()
    for c, name in enumerate(names):
        out[f"prob_{name}"] = probs[:, c]
    for column, values in per_image(labels, probs).items():
        out[column] = values
    out.attrs["class_names"] = names
    return out


def focus_values(frame) -> np.ndarray | None:
    """The frame's focus column as floats (NaN where empty), None when evaluate --explain has not run."""
    return numeric_column(frame, "focus")


def numeric_column(frame, column: str) -> np.ndarray | None:
    """A column of a predictions frame as floats (NaN where empty or not a number), None when absent."""
    if column not in frame.columns:
        return None
    import pandas as pd

    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
