"""A run's trained model, ready to score: its best.pt weights, the precision it was evaluated
with, and the forward pass every scorer shares."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lesion_core import models
from lesion_core.errors import TrainingError
from lesion_core.i18n import N_
from lesion_core.settings import resolve_amp, run_config


def forward(model: nn.Module, images: torch.Tensor, device: torch.device, amp_dtype=None,
            channels_last: bool = False) -> torch.Tensor:
    """Logits float32 (B, C) of images float32 (B, 3, S, S), under autocast when amp_dtype is set."""
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        return model(images).float()


def load_run_model(run_dir, device: str = "cpu") -> tuple[nn.Module, dict]:
    """(model with best.pt weights in eval mode, config) of a run; refuses unsafe checkpoints."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    best = run_dir / "best.pt"
    if not best.is_file():
        raise TrainingError(N_("run {run} has no best.pt yet (no epoch finished)").format(run=run_dir.name))
    checkpoint = models.load_checkpoint(best)
    class_names = config["data"]["class_names"]
    model = models.build_model(config["model"]["name"], len(class_names), weights="random")
    models.load_weights(model, models.extract_state_dict(checkpoint), best)
    return model.to(device).eval(), config


def inference_settings(config: dict) -> tuple[torch.device, torch.dtype | None, bool]:
    """(device, autocast dtype, channels_last) for using a run's model on the CPU with the
    precision it was trained and evaluated with, so evaluate reproduces predictions_*.csv."""
    device = torch.device("cpu")
    return device, resolve_amp(config.get("amp", "off"), device), bool(config.get("channels_last"))
