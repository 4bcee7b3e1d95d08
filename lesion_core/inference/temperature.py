"""Applying a run's calibration temperature (evaluation.calibration fits it): softmax(log p / T),
and the one reader of the run's calibration.json."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from lesion_core import runs

CALIBRATION_FILE = "calibration.json"
# predictions_*.csv keep 6 decimals: a probability below this was rounded to 0, so its log is
# taken at the rounding step instead of -inf.
LOG_FLOOR = 5e-7
# A temperature read from a run folder outside this range is treated as absent (untrusted file).
T_RANGE = (0.05, 20.0)


def log_probs(probs) -> torch.Tensor:
    return torch.log(torch.as_tensor(np.asarray(probs, dtype=np.float64)).clamp_min(LOG_FLOOR))


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """softmax(log p / T) of probabilities (N, C); float64 (N, C), rows sum to 1."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.size == 0 or temperature == 1.0:
        return probs.copy()
    return torch.softmax(log_probs(probs) / float(temperature), dim=1).numpy()


def _record(run_dir) -> dict:
    return runs._read_json(Path(run_dir) / CALIBRATION_FILE, {})


def read_note(run_dir) -> str | None:
    """Why the run's temperature is not the fit's own minimum (fit_temperature's guards), or
    None: calibration.json's "note" when it is text (the file is untrusted: anything else is
    no note)."""
    note = _record(run_dir).get("note")
    return note[:500] if isinstance(note, str) and note.strip() else None


def read_temperature(run_dir) -> float:
    """The run's fitted temperature; 1.0 (no scaling) when calibration.json is absent or holds
    anything but a finite number in T_RANGE."""
    value = _record(run_dir).get("temperature")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 1.0
    return float(value) if T_RANGE[0] <= value <= T_RANGE[1] else 1.0
