"""Applying a run's saved decision rule (threshold.json: refer when p(class) >= threshold;
evaluation.operating chooses and saves it), and the one reader of threshold.json."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lesion_core import runs
from lesion_core.i18n import N_
from lesion_core.inference.temperature import apply_temperature

THRESHOLD_FILE = "threshold.json"


def read_threshold(run_dir) -> dict | None:
    """The run's saved decision rule, or None when absent or not a valid one (untrusted file)."""
    record = runs.read_json(Path(run_dir) / THRESHOLD_FILE, None)
    if not record:
        return None
    class_names = runs.read_config(run_dir).get("data", {}).get("class_names", [])
    threshold = record.get("threshold")
    if (record.get("class") not in class_names or isinstance(threshold, bool)
            or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0 + 1e-6):
        return None
    rule = {"class": record["class"], "threshold": float(threshold), "calibrated": record.get("calibrated") is not False}
    # what the rule did where it was chosen (rules saved before these were recorded have none)
    for key in ("sensitivity", "specificity"):
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
            rule[key] = float(value)
    if record.get("split") in ("val", "test"):
        rule["split"] = record["split"]
    return rule


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
    name, shown, threshold = rule["class"], f"{p:.3f}", f"{rule['threshold']:.3f}"
    text = (N_("refer: {name} suspected (p({name2}) {p} >= threshold {threshold})").format(
                name=name, name2=name, p=shown, threshold=threshold) if refer
            else N_("not flagged (p({name}) {p} < threshold {threshold})").format(name=name, p=shown, threshold=threshold))
    return {"refer": bool(refer), "class": rule["class"], "threshold": rule["threshold"], "text": text}


# ---------------------------------------------------------------- the fitness gate

# A run refers nobody unless its validation mean AUC is known to be at least this, at the low
# end of its 95% interval, and its validation split has at least MIN_VAL_IMAGES of the class.
MIN_AUC_LOW = 0.70
MIN_VAL_IMAGES = 10


def withheld_reason(run_dir, class_name: str) -> str | None:
    """Why a run must not issue a decision on class_name (None: it may): its validation mean
    AUC's 95% interval reaches below MIN_AUC_LOW, or is unknown, or its validation split has
    fewer than MIN_VAL_IMAGES images of the class."""
    val = runs.read_metrics(run_dir, "val")
    interval = ((val or {}).get("intervals") or {}).get("mean_auc")
    low = interval.get("ci_low") if isinstance(interval, dict) else None
    if not isinstance(low, (int, float)) or isinstance(low, bool) or not math.isfinite(low):
        return N_("decision withheld: this run has no validation mean AUC with a 95% interval, so nothing shows "
                  "it can be trusted to refer anyone")
    if low < MIN_AUC_LOW:
        return N_("decision withheld: this model's validation mean AUC is {auc} and its 95% interval reaches down "
                  "to {low}, below {minimum}; it is not good enough to refer anyone").format(
            auc=f"{interval.get('value', math.nan):.3f}", low=f"{low:.3f}", minimum=f"{MIN_AUC_LOW:.2f}")
    names = list(val.get("class_names") or [])
    counts = val.get("counts") or []
    n = int(counts[names.index(class_name)]) if class_name in names and names.index(class_name) < len(counts) else 0
    if n < MIN_VAL_IMAGES:
        return N_("decision withheld: the validation split has {n} {name} images, fewer than {minimum}: too few "
                  "to know how this model does on them").format(n=n, name=class_name, minimum=MIN_VAL_IMAGES)
    return None


def decide(run_dir, probabilities: dict, calibrated: bool | None = None, temperature: float = 1.0) -> dict:
    """{"decision": decision() | None, "decision_withheld": reason | None} of one image's
    {class: p} under the run's saved rule; both None when it has no rule. A run that fails the
    fitness gate (withheld_reason) never says "refer" or "suspected"."""
    rule = read_threshold(run_dir)
    if rule is None:
        return {"decision": None, "decision_withheld": None}
    reason = withheld_reason(run_dir, rule["class"])
    if reason:
        return {"decision": None, "decision_withheld": reason}
    return {"decision": decision(probabilities, rule, calibrated, temperature), "decision_withheld": None}
