"""The review keys of metrics_<split>.json: "calibration" and "operating_points" (and "explain",
"tta" when evaluate is asked for them), added beside the plain metrics, never replacing them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lesion_core import runs
from lesion_core.evaluation import calibration, operating
from lesion_core.metrics import to_jsonable


def split_review(run_dir, split: str, labels, raw_probs, class_names) -> dict:
    """{"calibration", "operating_points"} of one split's raw softmax probabilities.

    On "val" it first fits the temperature and writes calibration.json, so call it for val
    before test. Operating points are taken on the calibrated probabilities: those are what
    predict and the pages report, and what a saved threshold is compared with.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if split == "val":
        calibration.fit_and_save(run_dir, raw_probs, labels)
    temperature = calibration.read_temperature(run_dir)
    scaled = calibration.apply_temperature(raw_probs, temperature)
    return to_jsonable({"calibration": calibration.report(raw_probs, labels, temperature),
                        "operating_points": operating.operating_points(labels, scaled, class_names)})


def update_metrics(run_dir, split: str, extra: dict) -> dict:
    """Merge extra keys into metrics_<split>.json (written atomically); returns the new content."""
    current = runs.read_metrics(run_dir, split) or {}
    merged = current | to_jsonable(extra)
    runs.atomic_write_json(Path(run_dir) / f"metrics_{split}.json", merged)
    return merged
