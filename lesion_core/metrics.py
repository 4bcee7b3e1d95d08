"""Classification metrics for a set of predictions: accuracy, confusion, per-class PR, ROC/AUC.

compute_metrics returns numpy arrays and floats (handy for plots); to_jsonable turns the
result into plain JSON (lists, floats, None for NaN/inf) for run folders.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from lesion_core.core import CLASS_NAMES

# The smallest probability used in -log p, so a confidently wrong sample has a large, finite loss.
PROB_FLOOR = 1e-12


def scored_classes(class_names) -> list[int]:
    """Classes whose AUCs make up mean_auc: melanoma and keratosis (1, 2) for ISIC, else all.

    The ISIC 2017 challenge (and the notebook's computeAUCs) scores melanoma-vs-all and
    seborrheic-keratosis-vs-all; nevus-vs-all is not part of the score.
    """
    names = tuple(str(name).strip().lower() for name in class_names)
    if names == CLASS_NAMES:
        return [1, 2]
    return list(range(len(names)))


# Metrics a run may pick its best epoch by (all: higher is better), with the names pages show.
HEADLINE_METRICS = {
    "isic2017_mean_auc": "ISIC 2017 mean AUC (melanoma, keratosis)",
    "macro_auc": "Macro AUC",
    "balanced_accuracy": "Balanced accuracy",
    "mean_auc": "Mean AUC",
    "accuracy": "Accuracy",
}
_ISIC2017_SCORED = ("melanoma", "seborrheic keratosis")


def isic2017_classes(class_names) -> list[int] | None:
    """Indices of melanoma and seborrheic keratosis when both are classes, else None."""
    names = [str(name).strip().lower() for name in class_names]
    if all(n in names for n in _ISIC2017_SCORED):
        return [names.index(n) for n in _ISIC2017_SCORED]
    return None


def headline_metric(class_names, chosen: str | None = None) -> str:
    """The run's headline metric: chosen, else the ISIC 2017 mean AUC when its classes are
    present, else macro AUC. ValueError for an unknown or unavailable choice."""
    if chosen is None:
        return "isic2017_mean_auc" if isic2017_classes(class_names) else "macro_auc"
    if chosen not in HEADLINE_METRICS:
        raise ValueError(f"unknown headline metric {chosen!r}; use one of {', '.join(HEADLINE_METRICS)}")
    if chosen == "isic2017_mean_auc" and not isic2017_classes(class_names):
        raise ValueError("isic2017_mean_auc needs the classes melanoma and seborrheic keratosis")
    return chosen


def compute_metrics(labels, probs, class_names, headline: str | None = None) -> dict:
    """Metrics of class probabilities against true labels.

    labels: (N,) int in [0, C); probs: (N, C) float, softmax outputs (rows sum to 1).
    Returns a dict with accuracy (float), counts (C,) true samples per class,
    confusion (C, C) int (rows = true class, columns = predicted), confusion_pct (C, C)
    row percentages (rows of absent classes are 0), precision and recall (C,) (0 when
    undefined), auc (C,) one-vs-rest (NaN when the class is absent or is the only class),
    roc (list of C dicts fpr/tpr/thresholds, empty lists when undefined), mean_auc
    (mean of auc over scored_classes; NaN when any of them is undefined, never a mean of
    what is left), undefined_auc (names of the classes whose AUC is undefined and enters a mean), predicted (N,) argmax,
    confidence (N,) max probability, loss (N,) cross-entropy -log p[true class],
    class_names and scored_classes; macro_auc (the positive class's AUC for 2 classes, else
    the mean over all, NaN when any is undefined), balanced_accuracy (mean recall over the classes present, the ISIC
    2018/2019 ranking metric), isic2017_mean_auc (only when melanoma and seborrheic keratosis
    are classes) and headline (the name of the metric that ranks epochs, see headline_metric).
    """
    labels, probs = _check_inputs(labels, probs, class_names)
    n_classes = probs.shape[1]
    predicted = probs.argmax(axis=1)
    confusion = np.bincount(labels * n_classes + predicted, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )
    true_counts = confusion.sum(axis=1)
    predicted_counts = confusion.sum(axis=0)
    correct = np.diag(confusion)
    aucs, rocs = zip(*(_one_vs_rest(labels == c, probs[:, c]) for c in range(n_classes)))
    auc = np.array(aucs, dtype=float)
    scored = scored_classes(class_names)
    recall = _safe_divide(correct, true_counts)
    isic2017 = isic2017_classes(class_names)
    extra = {"isic2017_mean_auc": _strict_mean(auc[isic2017])} if isic2017 else {}
    return extra | {
        "class_names": list(class_names),
        "accuracy": float(correct.sum() / len(labels)) if len(labels) else math.nan,
        "counts": true_counts,
        "confusion": confusion,
        # keepdims divides each row by its own total (the notebook's cm / cm.sum(axis=1) divided columns)
        "confusion_pct": 100.0 * _safe_divide(confusion, true_counts[:, None]),
        "precision": _safe_divide(correct, predicted_counts),
        "recall": recall,
        "auc": auc,
        "roc": list(rocs),
        "scored_classes": scored,
        # An AUC that cannot be computed (a class absent from the split) makes the means
        # undefined and is named, rather than averaging what is left.
        "mean_auc": _strict_mean(auc[scored]),
        "undefined_auc": [class_names[c] for c in range(n_classes) if np.isnan(auc[c]) and (c in scored or n_classes != 3)],
        # Binary: both one-vs-rest AUCs are the same number; the positive class's is the AUC.
        "macro_auc": float(auc[1]) if n_classes == 2 else _strict_mean(auc),
        "balanced_accuracy": float(recall[true_counts > 0].mean()) if true_counts.any() else math.nan,
        "headline": headline_metric(class_names, headline),
        "predicted": predicted,
        **per_image(labels, probs),
    }


def per_image(labels: np.ndarray, probs: np.ndarray) -> dict:
    """{"confidence": (N,) max probability, "loss": (N,) cross-entropy -log p[true class]} of
    int labels (N,) and probabilities (N, C) (the floor keeps a confident miss finite)."""
    return {"confidence": probs.max(axis=1),
            "loss": -np.log(np.maximum(probs[np.arange(len(labels)), labels], PROB_FLOOR))}


def _check_inputs(labels, probs, class_names) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"labels must be (N,) and probs (N, C); got {labels.shape} and {probs.shape}")
    if probs.shape[1] != len(class_names):
        raise ValueError(f"probs has {probs.shape[1]} columns but there are {len(class_names)} class names")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must lie in [0, {probs.shape[1]}); got {labels.min()}..{labels.max()}")
    return labels.astype(np.int64), probs


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (sklearn's zero_division=0)."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.broadcast_to(np.asarray(denominator, dtype=float), numerator.shape)
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _strict_mean(values: np.ndarray) -> float:
    """Mean of values; NaN (without numpy's warning) when any is undefined or there are none."""
    return float(values.mean()) if values.size and not np.isnan(values).any() else math.nan


def _one_vs_rest(is_class: np.ndarray, scores: np.ndarray) -> tuple[float, dict]:
    """AUC and ROC curve of one class against the rest; NaN and empty curve when undefined."""
    if is_class.all() or not is_class.any():
        return math.nan, {"fpr": [], "tpr": [], "thresholds": []}
    fpr, tpr, thresholds = roc_curve(is_class, scores)
    roc = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}
    return float(roc_auc_score(is_class, scores)), roc


def to_jsonable(value):
    """Plain JSON data: numpy arrays/scalars to lists/numbers, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_summary(result: dict, ids) -> dict:
    """compute_metrics' output for metrics_<split>.json: per-sample arrays dropped, ROC kept."""
    per_sample = ("predicted", "confidence", "loss")
    return to_jsonable({k: v for k, v in result.items() if k not in per_sample} | {"n": len(ids)})
