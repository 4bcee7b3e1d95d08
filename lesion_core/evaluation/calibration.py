"""How far to trust a probability: temperature scaling, ECE, Brier score, reliability bins.

Temperature scaling (Guo et al. 2017) divides the logits by one scalar T > 0 fitted on the
validation split by minimising the negative log-likelihood. The run folder keeps softmax
probabilities, not logits; log p differs from the logits by a constant per row, which the
softmax cancels, so softmax(log p / T) equals softmax(logits / T) and T can be fitted and
applied to saved predictions without running the model again.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from lesion_core import runs
from lesion_core.i18n import N_
from lesion_core.inference.temperature import (
    CALIBRATION_FILE, log_probs, apply_temperature)

N_BINS = 15
# What fit_temperature may choose: sharpening a model's probabilities more than 4x, or
# flattening them more than 10x, is a fit to the noise of a small validation split (a model
# trained with label smoothing 0.1 fits T ~ 0.7-0.9; an over-confident one 1.5-3).
FIT_RANGE = (0.25, 10.0)
# Calibration is applied by default only when, fitted on CROSS_FOLDS - 1 folds of the
# validation split and judged on the held-out one, it lowers the NLL, on at least MIN_CROSS_FIT images.
CROSS_FOLDS = 5
MIN_CROSS_FIT = 30


def nll(probs, labels) -> float:
    """Mean negative log-likelihood -log p[true class] (floored like LOG_FLOOR)."""
    labels = torch.as_tensor(np.array(labels, dtype=np.int64))
    return float(torch.nn.functional.nll_loss(log_probs(probs), labels))


def fit_temperature(probs, labels) -> tuple[float, str | None]:
    """(T, why it is not the NLL's own minimum, or None): the T > 0 minimising the NLL of
    softmax(log p / T) on (probs (N, C), labels (N,)), by LBFGS on log T (keeps T positive).

    Two guards, because a validation split is small and the fit would then make every
    probability look certain (a demo run's T came out at 0.05: "100%" on any photograph):
    when every image's top class is already right, the NLL keeps falling as T goes to 0 and
    has no minimum, so T stays 1; and a sharper fit than FIT_RANGE allows is limited to it.
    T is 1.0 when there is nothing to fit (no samples).
    """
    labels = torch.as_tensor(np.array(labels, dtype=np.int64))
    if len(labels) == 0:
        return 1.0, None
    log_p = log_probs(probs)
    if bool((log_p.argmax(dim=1) == labels).all()):
        return 1.0, N_("not fitted: all {n} validation images are already classified correctly, so any "
                       "temperature below 1 would look better and push every probability towards 100%; "
                       "the probabilities are left as the model gives them").format(n=len(labels))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(log_p / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):
        return 1.0, N_("not fitted: the fit did not converge")
    if not FIT_RANGE[0] <= temperature <= FIT_RANGE[1]:
        kept = min(max(temperature, FIT_RANGE[0]), FIT_RANGE[1])
        return kept, N_("the fit gave T = {fitted}, outside {low}-{high}, where one validation split cannot "
                        "be trusted; T = {kept} is used").format(fitted=f"{temperature:.3g}", low=FIT_RANGE[0],
                                                                  high=FIT_RANGE[1], kept=kept)
    return temperature, None


def reliability_bins(probs, labels, n_bins: int = N_BINS) -> dict:
    """Top-class confidence against accuracy in n_bins equal-width bins over [0, 1].

    Returns lists of length n_bins: lower, upper (bin edges), count, confidence (mean
    top-class probability) and accuracy (share correct); None in empty bins.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    confidence = probs.max(axis=1) if probs.size else np.zeros(0)
    correct = (probs.argmax(axis=1) == labels) if probs.size else np.zeros(0, dtype=bool)
    return _bins(confidence, correct, n_bins)


def _bins(confidence: np.ndarray, hits: np.ndarray, n_bins: int) -> dict:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bins are (lower, upper], the first one [0, upper]: the usual ECE convention.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    out = {"lower": edges[:-1].tolist(), "upper": edges[1:].tolist(), "count": [], "confidence": [], "accuracy": []}
    for b in range(n_bins):
        in_bin = index == b
        n = int(in_bin.sum())
        out["count"].append(n)
        out["confidence"].append(float(confidence[in_bin].mean()) if n else None)
        out["accuracy"].append(float(hits[in_bin].mean()) if n else None)
    return out


def _ece_from_bins(bins: dict) -> float:
    total = sum(bins["count"])
    if not total:
        return math.nan
    return float(sum(n * abs(a - c) for n, a, c in zip(bins["count"], bins["accuracy"], bins["confidence"]) if n)
                 / total)


def ece(probs, labels, n_bins: int = N_BINS) -> float:
    """Expected calibration error: sum over bins of (n_b / N) |accuracy_b - confidence_b|,
    on the top-class confidence, n_bins equal-width bins (NaN with no samples)."""
    return _ece_from_bins(reliability_bins(probs, labels, n_bins))


def classwise_ece(probs, labels, n_bins: int = N_BINS) -> float:
    """Mean over classes c of the ECE of p_c against the event "label is c" (all samples)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if not probs.size:
        return math.nan
    values = [_ece_from_bins(_bins(probs[:, c], labels == c, n_bins)) for c in range(probs.shape[1])]
    return float(np.mean(values))


def brier(probs, labels) -> float:
    """Multi-class Brier score: mean over samples of sum_c (p_c - [label == c])^2 (0..2)."""
    probs = np.asarray(probs, dtype=np.float64)
    if not probs.size:
        return math.nan
    onehot = np.eye(probs.shape[1])[np.asarray(labels, dtype=np.int64)]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def report(raw_probs, labels, temperature: float) -> dict:
    """metrics_<split>.json's "calibration": ECE, class-wise ECE, Brier and NLL before and
    after scaling with temperature, plus both reliability diagrams."""
    scaled = apply_temperature(raw_probs, temperature)
    return {
        "temperature": float(temperature),
        "ece": ece(raw_probs, labels), "ece_calibrated": ece(scaled, labels),
        "classwise_ece": classwise_ece(raw_probs, labels), "classwise_ece_calibrated": classwise_ece(scaled, labels),
        "brier": brier(raw_probs, labels), "brier_calibrated": brier(scaled, labels),
        "nll": nll(raw_probs, labels) if len(labels) else math.nan,
        "nll_calibrated": nll(scaled, labels) if len(labels) else math.nan,
        "reliability": reliability_bins(raw_probs, labels),
        "reliability_calibrated": reliability_bins(scaled, labels),
    }


# ---------------------------------------------------------------- the run folder


def cross_fit(raw_probs, labels, folds: int = CROSS_FOLDS, seed: int = 0) -> dict:
    """Whether temperature scaling helps images it was not fitted on: the validation images
    split into `folds` folds (seeded), T fitted on the others and applied to each; returns
    {"folds", "n", "nll", "nll_calibrated"} with the held-out NLL before and after, or
    {"folds", "n"} alone when there are fewer than MIN_CROSS_FIT images to judge with."""
    labels = np.asarray(labels, dtype=np.int64)
    raw = np.asarray(raw_probs, dtype=np.float64)
    out = {"folds": folds, "n": int(len(labels))}
    if len(labels) < MIN_CROSS_FIT:
        return out
    fold = np.random.default_rng(seed).permutation(len(labels)) % folds
    held_out = np.empty_like(raw)
    for k in range(folds):
        fit, judge = fold != k, fold == k
        temperature, _note = fit_temperature(raw[fit], labels[fit])
        held_out[judge] = apply_temperature(raw[judge], temperature)
    return out | {"nll": nll(raw, labels), "nll_calibrated": nll(held_out, labels)}


def fit_and_save(run_dir, raw_probs, labels) -> dict:
    """Fit T on validation predictions and write calibration.json; returns what it wrote.

    A T fitted and judged on the same images always "helps", so whether it is applied by
    default ("apply_by_default") is decided by cross_fit: only when it lowers the held-out NLL
    of at least MIN_CROSS_FIT validation images; otherwise the raw probabilities are the
    default and "note" says why."""
    temperature, note = fit_temperature(raw_probs, labels)
    scaled = apply_temperature(raw_probs, temperature)
    judged = cross_fit(raw_probs, labels)
    helps = "nll" in judged and judged["nll_calibrated"] < judged["nll"] and temperature != 1.0
    record = {"temperature": temperature, "fitted_on": "val", "n": int(len(labels)), "n_bins": N_BINS,
              "nll": nll(raw_probs, labels) if len(labels) else None,
              "nll_calibrated": nll(scaled, labels) if len(labels) else None,
              "ece": ece(raw_probs, labels), "ece_calibrated": ece(scaled, labels),
              "cross_fit": judged, "apply_by_default": bool(helps)}
    if temperature != 1.0 and not helps:
        note = (N_("not applied by default: {n} validation images are too few (at least {minimum}) to show that "
                   "calibration helps images it was not fitted on").format(n=len(labels), minimum=MIN_CROSS_FIT)
                if "nll" not in judged else
                N_("not applied by default: fitted on {folds} folds of the validation split and judged on the "
                   "held-out one, it did not lower the negative log-likelihood ({raw} raw, {calibrated} "
                   "calibrated)").format(folds=judged["folds"] - 1, raw=f"{judged['nll']:.3f}",
                                         calibrated=f"{judged['nll_calibrated']:.3f}"))
    if note:
        record["note"] = note
    runs.atomic_write_json(Path(run_dir) / CALIBRATION_FILE, record)
    return record


def calibrate_run(run_dir) -> dict:
    """Fit (or refit) a finished run's temperature from its predictions_val.csv."""
    from lesion_core.errors import TrainingError
    from lesion_core.inference import read_predictions

    path = Path(run_dir) / "predictions_val.csv"
    if not path.is_file():
        raise TrainingError(N_("{file} is missing: calibration is fitted on the validation predictions, "
                               "written when the run finishes").format(file=path))
    frame = read_predictions(path)
    names = frame.attrs["class_names"]
    labels = frame["label"].map({n: i for i, n in enumerate(names)}).to_numpy(dtype=np.int64)
    probs = frame[[f"prob_{n}" for n in names]].to_numpy(dtype=float)
    return fit_and_save(run_dir, probs, labels)
