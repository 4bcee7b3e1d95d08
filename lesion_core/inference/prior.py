"""Applying a run's patient-metadata prior (evaluation.patient fits it): the image's
probabilities times how much the patient's age, sex and site move each class away from its
base rate, as patient_model.json in the run folder says (see evaluation.patient)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lesion_core import data, runs
from lesion_core.errors import TrainingError
from lesion_core.i18n import N_
from lesion_core.inference.temperature import LOG_FLOOR
from lesion_core.runs import PATIENT_FILE as FILE
from lesion_core.runs import patient_model_problems as problems

AGE_CENTRE, AGE_SCALE = 50.0, 15.0


def _age(meta: dict) -> float | None:
    """The age in years, None when unknown or impossible (data.patient_meta's rule)."""
    text = data.patient_meta(meta.get("age", "")).get("age")
    return float(text) if text else None


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
    logits = np.log(np.clip(probs, LOG_FLOOR, 1.0)) + weight * shift
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def read(run_dir, n_classes: int | None = None) -> dict | None:
    """The run's fitted model, None when it has none (trained without metadata); TrainingError
    naming the file when it is damaged: its predictions cannot be reproduced without it."""
    path = Path(run_dir) / FILE
    if not path.exists():
        return None
    value, problem = runs.load_json(path)
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
