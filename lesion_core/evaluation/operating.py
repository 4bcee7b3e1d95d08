"""Operating points the clinical way: sensitivity at a fixed specificity, average precision,
and the 2x2 table at a chosen threshold; a threshold saved with the run drives predict's decision.

A sample is called positive for class c when p_c >= threshold (sklearn's roc_curve convention).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_curve

from lesion_core import runs
from lesion_core.errors import TrainingError
from lesion_core.i18n import N_
from lesion_core.inference.decision import THRESHOLD_FILE, read_threshold

# The specificities at which the ISIC 2017 challenge reported sensitivity.
TARGET_SPECIFICITIES = (0.82, 0.89, 0.95)


def sensitivity_at_specificity(is_class, scores, target: float) -> tuple[float, float]:
    """(sensitivity, threshold): the largest sensitivity among the ROC thresholds whose
    specificity (1 - FPR) is at least target; (NaN, NaN) when the class or the rest is absent."""
    is_class = np.asarray(is_class, dtype=bool)
    if is_class.all() or not is_class.any():
        return math.nan, math.nan
    fpr, tpr, thresholds = roc_curve(is_class, np.asarray(scores, dtype=float))
    ok = (1.0 - fpr) >= target - 1e-12  # the first ROC point (threshold inf, fpr 0) always qualifies
    best = np.flatnonzero(ok)[np.argmax(tpr[ok])]
    return float(tpr[best]), float(thresholds[best])


def best_specificity_with_sensitivity(is_class, scores) -> float:
    """The highest specificity any threshold reaches while flagging at least one image of the
    class (NaN when the class or the rest is absent)."""
    is_class = np.asarray(is_class, dtype=bool)
    if is_class.all() or not is_class.any():
        return math.nan
    fpr, tpr, _ = roc_curve(is_class, np.asarray(scores, dtype=float))
    return float((1.0 - fpr[tpr > 0]).max())


def operating_points(labels, probs, class_names) -> dict:
    """metrics_<split>.json's "operating_points": per class (vs the rest) the sensitivity and
    threshold at each target specificity and the average precision (None when undefined)."""
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=float)
    out = {}
    for c, name in enumerate(class_names):
        is_class = labels == c
        sens, thresholds = {}, {}
        for target in TARGET_SPECIFICITIES:
            sens[f"{target:.2f}"], thresholds[f"{target:.2f}"] = sensitivity_at_specificity(is_class, probs[:, c], target)
        defined = is_class.any() and not is_class.all()
        ap = float(average_precision_score(is_class, probs[:, c])) if defined else math.nan
        out[name] = {"sens_at_spec": sens, "threshold_at_spec": thresholds, "average_precision": ap,
                     "n_positive": int(is_class.sum()), "n_negative": int((~is_class).sum())}
    return out


def table_at(is_class, scores, threshold: float) -> dict:
    """The 2x2 table (tp, fp, tn, fn) and sensitivity, specificity, PPV, NPV (NaN when a
    denominator is 0) when p >= threshold means positive."""
    is_class = np.asarray(is_class, dtype=bool)
    flagged = np.asarray(scores, dtype=float) >= threshold
    tp, fp = int((flagged & is_class).sum()), int((flagged & ~is_class).sum())
    fn, tn = int((~flagged & is_class).sum()), int((~flagged & ~is_class).sum())
    def ratio(a, b):
        return a / b if b else math.nan
    return {"threshold": float(threshold), "tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "sensitivity": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
            "ppv": ratio(tp, tp + fp), "npv": ratio(tn, tn + fn)}


# ---------------------------------------------------------------- the saved decision rule


def save_threshold(run_dir, class_name: str, threshold: float, calibrated: bool = True) -> dict:
    """Keep the chosen decision rule with the run: refer when p(class_name) >= threshold."""
    class_names = runs.read_config(run_dir).get("data", {}).get("class_names", [])
    if class_name not in class_names:
        raise TrainingError(N_("class {name} is not one of the run's classes ({classes})").format(
            name=repr(class_name), classes=", ".join(class_names)))
    if not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0 + 1e-6):
        raise TrainingError(N_("a threshold is a probability between 0 and 1; got {value}").format(
            value=repr(threshold)))
    record = {"class": class_name, "threshold": float(threshold), "calibrated": bool(calibrated)}
    runs.atomic_write_json(Path(run_dir) / THRESHOLD_FILE, record | rule_on_validation(run_dir, record))
    return read_threshold(run_dir)


def rule_on_validation(run_dir, rule: dict) -> dict:
    """What a rule does on the run's validation split, the only split rules are chosen on:
    {"split": "val", "probabilities": "calibrated" | "raw", "sensitivity", "specificity",
    "n_positive", "n_negative"} (None where the run has no predictions_val.csv; DataError names a
    damaged one)."""
    from lesion_core.evaluation.bootstrap import load_predictions
    from lesion_core.inference.temperature import apply_temperature, read_temperature

    out = {"split": "val", "probabilities": "calibrated" if rule["calibrated"] else "raw", "sensitivity": None,
           "specificity": None, "n_positive": None, "n_negative": None}
    loaded = load_predictions(run_dir, "val")
    if loaded is None or rule["class"] not in loaded[3]:
        return out
    _ids, labels, probs, names = loaded
    if rule["calibrated"]:
        probs = apply_temperature(probs, read_temperature(run_dir))
    c = names.index(rule["class"])
    table = table_at(labels == c, probs[:, c], rule["threshold"])
    return out | {"sensitivity": table["sensitivity"], "specificity": table["specificity"],
                  "n_positive": table["tp"] + table["fn"], "n_negative": table["tn"] + table["fp"]}
