"""Patient metadata (age, sex, anatomic site) as a second opinion beside the image.

Age alone separates the ISIC 2017 classes well above chance (AUC 0.72 for melanoma and 0.77
for seborrheic keratosis on the 2,000 training images): keratoses come late in life. A run
whose config says "metadata" fits, when it finishes, a small multinomial logistic regression
p(class | age, sex, site) on its training split, and combines it with the image model's
probabilities as a product of experts:

    p(class | image, patient) ~ p(class | image) * (p(class | patient) / p(class)) ** w

the image's probability times how much the patient's metadata moves the class away from its
base rate. w (0 = the image alone, 1 = independent evidence) is fitted on the validation split
by the negative log-likelihood, as the calibration temperature is; the calibration is then
fitted on the combined probabilities. An image without metadata (age and sex unknown) gets the
adjustment the regression gives for unknown values.

The fitted model lives in the run folder as patient_model.json (coefficients as numbers, no
pickle). The run folder is untrusted input: read() checks every value and a damaged file is
named (TrainingError, runs.run_problems), never silently skipped.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lesion_core import data, runs
from lesion_core.errors import TrainingError
from lesion_core.evaluation import calibration
from lesion_core.i18n import N_

FILE = "patient_model.json"
# A prior is fitted only when at least this share of the training images has an age or a sex.
MIN_KNOWN = 0.5
# A sex or site value becomes a feature when at least this many training images have it.
MIN_COUNT = 10
# The weights tried on the validation split (0: the image alone).
WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, 1.5, 16))
AGE_CENTRE, AGE_SCALE = 50.0, 15.0


def _age(meta: dict) -> float | None:
    """The age in years, None when unknown or impossible (data.patient_meta's rule)."""
    text = data.patient_meta(meta.get("age", "")).get("age")
    return float(text) if text else None


def feature_names(metas: list[dict]) -> list[str]:
    """The features a training split supports: the age terms, and each sex and site value
    that at least MIN_COUNT images have ("sex=male", "site=back", ...)."""
    names = ["age", "age^2", "age_known"]
    for key in ("sex", "site"):
        values = [str(m.get(key, "")).strip().lower() for m in metas]
        names += [f"{key}={v}" for v in sorted(set(values) - {""}) if values.count(v) >= MIN_COUNT]
    return names


def features(metas: list[dict], names: list[str]) -> np.ndarray:
    """(N, len(names)) float64: age centred and scaled (0 when unknown), its square, whether it
    is known, and one indicator per sex or site value."""
    rows = np.zeros((len(metas), len(names)))
    index = {name: i for i, name in enumerate(names)}
    for r, meta in enumerate(metas):
        age = _age(meta)
        if age is not None:
            z = (age - AGE_CENTRE) / AGE_SCALE
            rows[r, index["age"]], rows[r, index["age^2"]], rows[r, index["age_known"]] = z, z * z, 1.0
        for key in ("sex", "site"):
            column = index.get(f"{key}={str(meta.get(key, '')).strip().lower()}")
            if column is not None:
                rows[r, column] = 1.0
    return rows


def metas_of(records, ids) -> list[dict]:
    """The metadata of each id, in the order of ids (predictions come in the loader's order)."""
    by_id = {r.id: r.meta for r in records}
    return [by_id[i] for i in ids]


def known_share(metas: list[dict]) -> float:
    """The share of images with an age or a sex."""
    return float(np.mean([_age(m) is not None or bool(m.get("sex")) for m in metas])) if metas else 0.0


def fit(metas: list[dict], labels, n_classes: int) -> dict | None:
    """The prior fitted on a training split ({"features", "coef", "intercept", "prior", "n",
    "known"}), or None when too few images have metadata (MIN_KNOWN) or a class is absent."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels, dtype=np.int64)
    share = known_share(metas)
    if share < MIN_KNOWN or len(np.unique(labels)) < n_classes or n_classes < 2:
        return None
    names = feature_names(metas)
    x = features(metas, names)
    regression = LogisticRegression(C=1.0, max_iter=2000).fit(x, labels)
    coef, intercept = regression.coef_, regression.intercept_
    if n_classes == 2:  # sklearn keeps one row for two classes: the logit of class 1
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    prior = np.bincount(labels, minlength=n_classes) / len(labels)
    return {"features": names, "coef": coef.tolist(), "intercept": intercept.tolist(), "prior": prior.tolist(),
            "n": int(len(labels)), "known": share, "weight": None}


def patient_probs(model: dict, metas: list[dict]) -> np.ndarray:
    """p(class | metadata) of each image (N, C)."""
    logits = features(metas, model["features"]) @ np.asarray(model["coef"]).T + np.asarray(model["intercept"])
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def combine(probs, model: dict, metas: list[dict], weight: float | None = None) -> np.ndarray:
    """The image probabilities (N, C) combined with the patients' metadata at the model's
    weight (or the one given); float64, rows sum to 1."""
    probs = np.asarray(probs, dtype=np.float64)
    weight = model["weight"] if weight is None else weight
    if probs.size == 0 or not weight:
        return probs.copy()
    shift = np.log(patient_probs(model, metas)) - np.log(np.asarray(model["prior"]))
    logits = np.log(np.clip(probs, calibration.LOG_FLOOR, 1.0)) + weight * shift
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def fit_weight(model: dict, probs, labels, metas: list[dict]) -> float:
    """The WEIGHTS value with the lowest negative log-likelihood on (val) predictions; the
    smallest one on ties, so that no evidence means the image alone."""
    losses = [calibration.nll(combine(probs, model, metas, w), labels) for w in WEIGHTS]
    return float(WEIGHTS[int(np.argmin(losses))])


# ---------------------------------------------------------------- the run folder


def save(run_dir, model: dict) -> None:
    runs.atomic_write_json(Path(run_dir) / FILE, model)


def problems(value, n_classes: int | None = None) -> list[str]:
    """What is wrong with a patient_model.json's content ([] when it can be used)."""
    def numbers(x) -> bool:
        return isinstance(x, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                           and math.isfinite(v) for v in x)

    if not isinstance(value, dict):
        return [N_("{file}: not a JSON object").format(file=FILE)]
    names, coef, intercept, prior, weight = (value.get(k) for k in ("features", "coef", "intercept", "prior", "weight"))
    wrong = []
    if not (isinstance(names, list) and {"age", "age^2", "age_known"} <= set(names)
            and all(isinstance(n, str) for n in names)):
        wrong.append("features")
    if not (numbers(prior) and len(prior) >= 2 and all(p > 0 for p in prior) and abs(sum(prior) - 1) < 1e-6):
        wrong.append("prior")
    n = len(prior) if numbers(prior) else n_classes
    if n_classes is not None and n != n_classes:
        wrong.append("prior")
    if not (numbers(intercept) and len(intercept) == n):
        wrong.append("intercept")
    if not (isinstance(coef, list) and len(coef) == n and all(numbers(row) and isinstance(names, list)
                                                             and len(row) == len(names) for row in coef)):
        wrong.append("coef")
    if not (isinstance(weight, (int, float)) and not isinstance(weight, bool) and 0 <= weight <= max(WEIGHTS)):
        wrong.append("weight")
    return [N_("{file}: {fields} missing or invalid").format(file=FILE, fields=", ".join(sorted(set(wrong))))] if wrong else []


def read(run_dir, n_classes: int | None = None) -> dict | None:
    """The run's fitted model, None when it has none (trained without metadata); TrainingError
    naming the file when it is damaged: its predictions cannot be reproduced without it."""
    path = Path(run_dir) / FILE
    if not path.exists():
        return None
    value, problem = runs._load_json(path)
    found = [problem] if problem else problems(value, n_classes)
    if found:
        raise TrainingError(N_("run {run} cannot be used: {damage}").format(run=Path(run_dir).name,
                                                                          damage="; ".join(found)))
    return value


def apply_run(run_dir, probs, metas: list[dict], n_classes: int | None = None) -> np.ndarray:
    """A run's image probabilities as its own predictions are: combined with the metadata when
    the run has a patient model (read(): TrainingError when it is damaged), else unchanged."""
    model = read(run_dir, n_classes)
    return np.asarray(probs, dtype=np.float64) if model is None else combine(probs, model, metas)
