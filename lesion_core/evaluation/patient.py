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

from pathlib import Path

import numpy as np

from lesion_core import runs
from lesion_core.runs import PATIENT_MAX_WEIGHT as MAX_WEIGHT
from lesion_core.evaluation import calibration
from lesion_core.inference.prior import (
    FILE, combine, features, known_share)

# A prior is fitted only when at least this share of the training images has an age or a sex.
MIN_KNOWN = 0.5
# A sex or site value becomes a feature when at least this many training images have it.
MIN_COUNT = 10
# The weights tried on the validation split (0: the image alone).
WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, MAX_WEIGHT, 16))


def feature_names(metas: list[dict]) -> list[str]:
    """The features a training split supports: the age terms, and each sex and site value
    that at least MIN_COUNT images have ("sex=male", "site=back", ...)."""
    names = ["age", "age^2", "age_known"]
    for key in ("sex", "site"):
        values = [str(m.get(key, "")).strip().lower() for m in metas]
        names += [f"{key}={v}" for v in sorted(set(values) - {""}) if values.count(v) >= MIN_COUNT]
    return names


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


def fit_weight(model: dict, probs, labels, metas: list[dict]) -> float:
    """The WEIGHTS value with the lowest negative log-likelihood on (val) predictions; the
    smallest one on ties, so that no evidence means the image alone."""
    losses = [calibration.nll(combine(probs, model, metas, w), labels) for w in WEIGHTS]
    return float(WEIGHTS[int(np.argmin(losses))])


# ---------------------------------------------------------------- the run folder


def save(run_dir, model: dict) -> None:
    runs.atomic_write_json(Path(run_dir) / FILE, model)


