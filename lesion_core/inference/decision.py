"""Applying a run's saved decision rule (threshold.json: refer when p(class) >= threshold;
evaluation.operating chooses and saves it), and the one reader of threshold.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lesion_core import runs
from lesion_core.inference.temperature import apply_temperature

THRESHOLD_FILE = "threshold.json"


def read_threshold(run_dir) -> dict | None:
    """The run's saved decision rule, or None when absent or not a valid one (untrusted file)."""
    record = runs._read_json(Path(run_dir) / THRESHOLD_FILE, None)
    if not record:
        return None
    class_names = runs.read_config(run_dir).get("data", {}).get("class_names", [])
    threshold = record.get("threshold")
    if (record.get("class") not in class_names or isinstance(threshold, bool)
            or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0 + 1e-6):
        return None
    return {"class": record["class"], "threshold": float(threshold), "calibrated": record.get("calibrated") is not False}


def decision(probabilities: dict, rule: dict, calibrated: bool | None = None, temperature: float = 1.0) -> dict:
    """{"refer": bool, "text": ...} of one image's {class: p} under a saved rule.

    calibrated: whether probabilities are temperature-scaled (with temperature); when that
    differs from the rule's, they are converted first (softmax(log p * T) undoes the scaling),
    so a rule saved on calibrated probabilities is never compared with raw ones.
    """
    if calibrated is not None and calibrated != rule["calibrated"]:
        factor = temperature if rule["calibrated"] else 1.0 / temperature
        converted = apply_temperature(np.array([list(probabilities.values())]), factor)[0]
        probabilities = dict(zip(probabilities, converted))
    p = float(probabilities[rule["class"]])
    refer = p >= rule["threshold"]
    text = (f"refer: {rule['class']} suspected" if refer else "not flagged") + \
        f" (p({rule['class']}) {p:.3f} {'>=' if refer else '<'} threshold {rule['threshold']:.3f})"
    return {"refer": bool(refer), "class": rule["class"], "threshold": rule["threshold"], "text": text}
