"""Metrics per patient subgroup (sex, age band, anatomic site) from a predictions file.

A model that is good on average can be poor for one group (older patients, acral sites);
the table shows each group's size next to its AUC and a bootstrap interval, because a small
group's AUC alone says little.
"""

from __future__ import annotations

import math

import numpy as np

from lesion_core import metrics

# Age bands of 15 years: enough images per band in the public sets, coarse enough to compare.
AGE_BANDS = ((0, 30, "under 30"), (30, 45, "30-44"), (45, 60, "45-59"), (60, 75, "60-74"),
             (75, 200, "75 and over"))
ATTRIBUTES = ("sex", "age", "site")


def age_band(age) -> str:
    """The band of an age in years ("" when unknown)."""
    try:
        age = float(age)
    except (TypeError, ValueError):
        return ""
    if math.isnan(age):
        return ""
    return next((name for low, high, name in AGE_BANDS if low <= age < high), "")


def has_subgroups(frame) -> bool:
    """Whether a predictions frame (inference.read_predictions) carries any metadata column."""
    return any(c in frame.columns for c in ATTRIBUTES)


def subgroup_table(frame, n_boot: int = 200, seed: int = 0) -> list[dict]:
    """One row per (attribute, group): images, images per true class, accuracy, macro AUC
    (one-vs-rest; the positive class's AUC for two classes) and its 95% bootstrap interval.

    frame: inference.read_predictions' DataFrame (attrs["class_names"], prob_<class> columns).
    Groups with an unknown value are left out; AUC is None where a group lacks a class.
    """
    names = list(frame.attrs["class_names"])
    index = {name: i for i, name in enumerate(names)}
    labels = frame["label"].map(index).to_numpy(dtype=int)
    probs = frame[[f"prob_{n}" for n in names]].to_numpy(dtype=float)
    rows = []
    for attribute in ATTRIBUTES:
        if attribute not in frame.columns:
            continue
        values = frame[attribute].map(age_band) if attribute == "age" else frame[attribute].astype(str)
        order = ([b for _, _, b in AGE_BANDS] if attribute == "age"
                 else sorted(v for v in set(values) if v))
        for group in order:
            chosen = (values == group).to_numpy()
            if not chosen.any():
                continue
            rows.append(_row(attribute, group, labels[chosen], probs[chosen], names, n_boot, seed))
    return rows


def _row(attribute, group, labels, probs, names, n_boot, seed) -> dict:
    result = metrics.compute_metrics(labels, probs, names)
    low, high = _interval(labels, probs, names, n_boot, seed)
    counts = {f"n {name}": int(n) for name, n in zip(names, result["counts"])}
    return {"attribute": attribute, "group": group, "images": len(labels),
            "AUC": _number(result["macro_auc"]), "AUC 95% low": low, "AUC 95% high": high,
            "accuracy": result["accuracy"], **counts}


def _interval(labels, probs, names, n_boot, seed) -> tuple:
    """Percentile bootstrap interval of macro AUC (None, None when it is undefined)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(labels), len(labels))
        value = macro_auc(labels[pick], probs[pick])
        if not math.isnan(value):
            values.append(value)
    if len(values) < n_boot // 2:  # most resamples lack a class: no honest interval
        return None, None
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def macro_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """metrics' macro_auc from ranks (Mann-Whitney U), fast enough for hundreds of resamples;
    NaN when no class is both present and absent."""
    from scipy.stats import rankdata

    n_classes = probs.shape[1]
    aucs = []
    for c in ([1] if n_classes == 2 else range(n_classes)):
        positive = labels == c
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        if n_pos and n_neg:
            ranks = rankdata(probs[:, c])
            aucs.append((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs)) if aucs else math.nan


def _number(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
