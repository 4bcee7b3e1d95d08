"""Training: the loop (Trainer), running it to its end (run_training), its optimisers and step
operations, the one-training-at-a-time lock, launching a detached trainer, the time estimate.
DDP lives in training.ddp (imported by the torchrun entry only)."""

from __future__ import annotations

from lesion_core.training.duration import (
    ESTIMATE_RANGE,
    MODEL_COST,
    REFERENCE_IMAGES_PER_S,
    REFERENCE_SIZE,
    STARTUP_S,
    TTA_VIEWS,
    estimate,
)
from lesion_core.training.launch import launch, launch_resume, trainer_command
from lesion_core.training.lock import hold_runs_folder, no_claim
from lesion_core.training.loop import STATUS_EVERY_S, TIMING_KEYS, StopRequested, Trainer, versions
from lesion_core.training.ops import (
    Diverged,
    WeightAverage,
    backward_step,
    check_finite,
    dtype_name,
    recalibrate_batchnorm,
    save_torch,
    set_train_mode,
)
from lesion_core.training.optim import lr_factor, make_optimizer, make_scheduler, resume_schedule, weight_decay
from lesion_core.training.runner import install_signal_handlers, resumable_config, resume_command, run_training

__all__ = [
    "Diverged",
    "ESTIMATE_RANGE",
    "MODEL_COST",
    "REFERENCE_IMAGES_PER_S",
    "REFERENCE_SIZE",
    "STARTUP_S",
    "STATUS_EVERY_S",
    "StopRequested",
    "TIMING_KEYS",
    "TTA_VIEWS",
    "Trainer",
    "WeightAverage",
    "backward_step",
    "check_finite",
    "dtype_name",
    "estimate",
    "hold_runs_folder",
    "install_signal_handlers",
    "launch",
    "launch_resume",
    "lr_factor",
    "make_optimizer",
    "make_scheduler",
    "no_claim",
    "recalibrate_batchnorm",
    "resumable_config",
    "resume_command",
    "resume_schedule",
    "run_training",
    "save_torch",
    "set_train_mode",
    "trainer_command",
    "versions",
    "weight_decay",
]
