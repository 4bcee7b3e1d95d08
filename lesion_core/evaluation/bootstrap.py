"""95% bootstrap confidence intervals of a split's metrics, and paired differences of two runs.

Resampling is stratified: each resample draws, with replacement, as many images of each
class as the split has, so every resample keeps the split's class counts and every one-vs-
rest AUC stays defined. Because the label of each resampled position is then fixed, all
resamples are scored at once (AUC from ranks, Mann-Whitney), not in a Python loop.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from lesion_core.metrics import scored_classes
from lesion_core import inference
from lesion_core.i18n import N_

N_RESAMPLES = 1000
SEED = 0
CONFIDENCE = 0.95
# Below this many images of a class a split's AUC for it swings by tenths between resamples.
SMALL_CLASS = 30


def stratified_indices(labels, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(n_resamples, N) int64 indices; column j always holds an image of labels[j]'s class."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, len(labels)), dtype=np.int64)
    for c in np.unique(labels):
        positions = np.flatnonzero(labels == c)
        out[:, positions] = positions[rng.integers(0, len(positions), (n_resamples, len(positions)))]
    return out


def replicates(labels, probs, class_names, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric on every row of indices (B, N), labels fixed per column (stratified):
    {"mean_auc", "accuracy", "balanced_accuracy", "auc/<class name>"} -> (B,) float (NaN where undefined)."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    correct = (probs.argmax(axis=1) == labels)[indices].astype(float)
    present = [c for c in range(len(class_names)) if (labels == c).any()]
    out = {
        "accuracy": correct.mean(axis=1),
        "balanced_accuracy": np.mean([correct[:, labels == c].mean(axis=1) for c in present], axis=0),
    }
    aucs = {}
    for c, name in enumerate(class_names):
        positive = labels == c
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        if n_pos == 0 or n_neg == 0:
            aucs[c] = np.full(len(indices), math.nan)
        else:
            # Average ranks handle ties as roc_auc_score does (a tie counts one half).
            ranks = rankdata(probs[indices, c], axis=1)
            aucs[c] = (ranks[:, positive].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        out[f"auc/{name}"] = aucs[c]
    scored = [aucs[c] for c in scored_classes(class_names) if not np.isnan(aucs[c]).all()]
    mean_auc = np.mean(scored, axis=0) if scored else np.full(len(indices), math.nan)
    return {"mean_auc": mean_auc} | out  # the headline metric first, for tables


def _bounds(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    values = values[~np.isnan(values)]
    if not values.size:
        return None, None
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _number(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def metric_intervals(labels, probs, class_names, n_resamples: int = N_RESAMPLES, seed: int = SEED,
                     confidence: float = CONFIDENCE) -> dict:
    """Percentile intervals for metrics_<split>.json: {"mean_auc", "accuracy",
    "balanced_accuracy": {"value", "ci_low", "ci_high", "n"}, "auc": {class: {... "n_class"}},
    plus how they were made}. labels (N,) int, probs (N, C) softmax."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n == 0:
        return {}
    point = replicates(labels, probs, class_names, np.arange(n)[None])
    boot = replicates(labels, probs, class_names, stratified_indices(labels, n_resamples, seed))

    def interval(key: str) -> dict:
        low, high = _bounds(boot[key], confidence)
        return {"value": _number(point[key][0]), "ci_low": low, "ci_high": high, "n": n}

    return {
        "mean_auc": interval("mean_auc"),
        "accuracy": interval("accuracy"),
        "balanced_accuracy": interval("balanced_accuracy"),
        "auc": {name: interval(f"auc/{name}") | {"n_class": int((labels == c).sum())}
                for c, name in enumerate(class_names)},
        "method": "stratified percentile bootstrap", "n_resamples": n_resamples, "seed": seed,
        "confidence": confidence,
    }


def paired_differences(labels, probs_a, probs_b, class_names, n_resamples: int = N_RESAMPLES,
                       seed: int = SEED, confidence: float = CONFIDENCE) -> dict:
    """B - A on the same images, resampled together: {metric: {"a", "b", "delta", "ci_low", "ci_high"}}.

    Metrics: mean_auc, accuracy, balanced_accuracy and auc_<class>. Pairing (the same resampled
    images for both runs) removes the image-to-image spread the two runs share, so the
    interval of the difference is much narrower than the two intervals side by side."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    identity = np.arange(n)[None]
    indices = stratified_indices(labels, n_resamples, seed)
    point_a, point_b = (replicates(labels, p, class_names, identity) for p in (probs_a, probs_b))
    boot_a, boot_b = (replicates(labels, p, class_names, indices) for p in (probs_a, probs_b))
    out = {}
    for key in point_a:
        low, high = _bounds(boot_b[key] - boot_a[key], confidence)
        a, b = _number(point_a[key][0]), _number(point_b[key][0])
        out[key.replace("auc/", "auc_")] = {"a": a, "b": b, "delta": None if a is None or b is None else b - a,
                                            "ci_low": low, "ci_high": high}
    return out


def format_interval(interval: dict | None, digits: int = 3, signed: bool = False) -> str:
    """"0.859 [0.799, 0.909]" ("+0.031 [-0.012, +0.078]" signed, for a difference); "n/a" when
    undefined; the bare value when it has no interval."""
    if not isinstance(interval, dict) or not _is_number(interval.get("value")):
        return "n/a"
    form = f"{'+' if signed else ''}.{digits}f"
    text = f"{interval['value']:{form}}"
    if _is_number(interval.get("ci_low")) and _is_number(interval.get("ci_high")):
        text += f" [{interval['ci_low']:{form}}, {interval['ci_high']:{form}}]"
    return text


def format_delta(row: dict, digits: int = 3) -> str:
    """"+0.031 [-0.012, +0.078]" for a paired_differences row; "n/a" when undefined."""
    if not _is_number(row.get("delta")):
        return "n/a"
    text = f"{row['delta']:+.{digits}f}"
    if _is_number(row.get("ci_low")) and _is_number(row.get("ci_high")):
        text += f" [{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}]"
    return text


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def small_class_warnings(intervals: dict, split: str, threshold: int = SMALL_CLASS) -> list[str]:
    """One sentence per class with fewer than threshold images in the split, naming how big
    an AUC difference is noise there (the width of that class's AUC interval)."""
    warnings = []
    for name, row in (intervals.get("auc") or {}).items() if isinstance(intervals, dict) else ():
        count = row.get("n_class") if isinstance(row, dict) else None
        if not isinstance(count, int) or count >= threshold:
            continue
        low, high = row.get("ci_low"), row.get("ci_high")
        # A handful of images can make every resample score the same (an interval of width 0
        # at AUC 1.0): 1/sqrt(n) keeps the warning from claiming that any difference is real.
        delta = max(high - low, 1 / math.sqrt(max(count, 1))) if _is_number(low) and _is_number(high) else None
        warnings.append(
            N_("{name}: {n} {split} images; AUC differences below ~{delta} are noise here").format(
                name=name, n=count, split=split, delta=f"{min(1.0, math.ceil(delta * 20) / 20):.2f}")
            if delta is not None else N_("{name}: {n} {split} images; its AUC is not defined or is pure noise").format(
                name=name, n=count, split=split))
    return warnings


def _valid_interval(value) -> bool:
    return isinstance(value, dict) and all(k in value for k in ("value", "ci_low", "ci_high", "n"))


def run_intervals(run_dir, split: str, compute: bool = True) -> dict | None:
    """A run's intervals for a split: those stored in metrics_<split>.json, else (compute=True,
    runs from before intervals) computed from predictions_<split>.csv; None when neither exists,
    DataError when that CSV is damaged."""
    from lesion_core import runs

    stored = (runs.read_metrics(run_dir, split) or {}).get("intervals")
    if isinstance(stored, dict) and _valid_interval(stored.get("mean_auc")) and isinstance(stored.get("auc"), dict):
        return stored
    if not compute:
        return None
    loaded = load_predictions(run_dir, split)
    if loaded is None:
        return None
    _ids, labels, probs, names = loaded
    return metric_intervals(labels, probs, names)


def load_predictions(run_dir, split: str):
    """(ids list, labels (N,) int, probs (N, C), class names) of predictions_<split>.csv, or None
    when the run has no such file; DataError names the file when it is there but damaged (an
    interval is never silently missing)."""
    path = Path(run_dir) / f"predictions_{split}.csv"
    if not path.is_file():
        return None
    frame = inference.read_predictions(path)
    names = frame.attrs["class_names"]
    probs = frame[[f"prob_{n}" for n in names]].to_numpy(dtype=float)
    labels = frame["label"].map({n: i for i, n in enumerate(names)}).to_numpy(dtype=int)
    return list(frame["id"]), labels, probs, names


def stored_interval_text(run_dir, split: str, metric: str, value) -> str:
    """The stored 95% interval of a split's metric ("[0.80, 0.91]"), "" when there is none or it
    is not the interval of this value.

    The headline AUCs are stored as mean_auc's interval when they are the same number (ISIC
    2017 mean AUC for the 2017 classes, macro AUC for more than two classes)."""
    found = run_intervals(run_dir, split, compute=False) or {}
    interval = found.get(metric) or found.get("mean_auc")
    if not isinstance(interval, dict) or not isinstance(value, (int, float)) \
            or abs((interval.get("value") or math.nan) - value) > 1e-9:
        return ""
    return format_interval(interval).partition(" ")[2]
