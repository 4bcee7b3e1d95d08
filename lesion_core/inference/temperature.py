"""Applying a run's calibration temperature (evaluation.calibration fits it): softmax(log p / T),
and the one reader of the run's calibration.json."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lesion_core import runs
from lesion_core.i18n import N_

CALIBRATION_FILE = "calibration.json"
# predictions_*.csv written before their probabilities kept every digit have 6 decimals: a
# probability below this was rounded to 0 there, so its log is taken at the rounding step
# instead of -inf.
LOG_FLOOR = 5e-7
# The one validity range of a temperature read from a run folder (an untrusted file): outside
# it the file is ignored, and said to be, by predict, the pages, the report and the export alike.
T_RANGE = (0.05, 20.0)


def log_probs(probs) -> torch.Tensor:
    return torch.log(torch.as_tensor(np.asarray(probs, dtype=np.float64)).clamp_min(LOG_FLOOR))


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """softmax(log p / T) of probabilities (N, C); float64 (N, C), rows sum to 1."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.size == 0 or temperature == 1.0:
        return probs.copy()
    return torch.softmax(log_probs(probs) / float(temperature), dim=1).numpy()


@dataclass(frozen=True)
class Calibration:
    """What a run's calibration.json says, as every consumer (predict, the pages, the report,
    the export) must read it: temperature is 1.0 (no scaling) unless the file holds a finite
    number in T_RANGE; problem says why a file that is there was ignored (None when it is
    absent or usable), so that nothing is silently replaced."""

    temperature: float = 1.0
    note: str | None = None
    problem: str | None = None
    by_default: bool = True  # applied unless asked not to; False where cross-fitting showed no gain

    @property
    def scaled(self) -> bool:
        """Whether probabilities change under this temperature."""
        return self.temperature != 1.0

    @property
    def default_temperature(self) -> float:
        """The temperature predict, the pages, the report and the export apply when not told."""
        return self.temperature if self.by_default else 1.0


def read_calibration(run_dir) -> Calibration:
    """The one reader of a run's calibration.json (see Calibration)."""
    value, problem = runs.load_json(Path(run_dir) / CALIBRATION_FILE)
    if problem:
        return Calibration(problem=N_("{problem}: ignored, probabilities are not calibrated").format(problem=problem))
    if value is None:
        return Calibration()
    if not isinstance(value, dict):
        return Calibration(problem=N_("{file}: not a JSON object: ignored, probabilities are not calibrated").format(
            file=CALIBRATION_FILE))
    note = value.get("note")
    note = note[:500] if isinstance(note, str) and note.strip() else None
    t = value.get("temperature")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not T_RANGE[0] <= t <= T_RANGE[1]:
        shown = repr(t) if len(repr(t)) <= 40 else repr(t)[:37] + "..."
        return Calibration(note=note, problem=N_(
            "{file}: temperature {value} is not a number from {low} to {high}: ignored, probabilities are not "
            "calibrated").format(file=CALIBRATION_FILE, value=shown, low=T_RANGE[0], high=T_RANGE[1]))
    # Files written before cross-fitting have no "apply_by_default": they were applied, and still are.
    return Calibration(temperature=float(t), note=note, by_default=value.get("apply_by_default") is not False)


def read_note(run_dir) -> str | None:
    """Why the run's temperature is not the fit's own minimum (fit_temperature's guards), or None."""
    return read_calibration(run_dir).note


def read_temperature(run_dir) -> float:
    """The run's fitted temperature; 1.0 (no scaling) when calibration.json is absent or unusable
    (read_calibration().problem says why)."""
    return read_calibration(run_dir).temperature
