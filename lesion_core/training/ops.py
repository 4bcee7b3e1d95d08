"""The pieces of a training step: backward with a scaler, train/eval modes with a frozen
backbone, BatchNorm recalibration, the weight average, finite checks, saving weights."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from lesion_core import models, paths
from lesion_core.core import is_int
from lesion_core.errors import require
from lesion_core.i18n import N_, plain
from lesion_core.inference.model import forward


def save_torch(path: Path, obj: dict) -> None:
    """torch.save through an atomic write (readable with torch.load(weights_only=True), which
    refuses a message where a class name should be a plain str)."""
    buffer = io.BytesIO()
    torch.save(plain(obj), buffer)
    paths.atomic_write_bytes(path, buffer.getvalue())


def backward_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor) -> None:
    """One optimiser update from loss (the scaler is a no-op unless fp16 autocast is on)."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _frozen(module: nn.Module) -> bool:
    """A layer whose parameters are all frozen (freeze_backbone): it is not being trained."""
    params = list(module.parameters(recurse=False))
    return bool(params) and not any(p.requires_grad for p in params)


def set_train_mode(model: nn.Module, training: bool) -> None:
    """model.train(training), except that frozen BatchNorm layers stay in eval mode: "train
    the head only" must leave the backbone exactly as loaded, running statistics included."""
    model.train(training)
    if training:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and _frozen(module):
                module.eval()


def recalibrate_batchnorm(model: nn.Module, loader: DataLoader, device: torch.device, amp_dtype=None,
                          channels_last: bool = False) -> int:
    """Reset every trained BatchNorm's running statistics to their exact average over loader's
    batches (frozen ones keep theirs).

    Forward passes only (no gradients), in train mode with momentum None (a cumulative
    average). Returns the number of BatchNorm layers updated (0: nothing to do).
    """
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and not _frozen(m)]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    set_train_mode(model, True)
    with torch.no_grad():
        for images, _labels, _ids in loader:
            forward(model, images, device, amp_dtype, channels_last)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    set_train_mode(model, was_training)
    return len(norms)


class WeightAverage:
    """An exponential moving average of a model's weights, updated after each optimiser step.

    The decay ramps up as min(decay, (1 + t) / (10 + t)) at step t, so the first steps (a
    fresh head, a warm-up) do not linger in the average. Buffers (BatchNorm statistics) are
    copied, not averaged: the trainer recomputes them for the averaged weights each epoch.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model)  # requires_grad as trained: frozen layers stay frozen
        self.decay = float(decay)
        self.steps = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        averaged = [p for p in self.module.parameters() if p.is_floating_point()]
        current = [p.detach() for p in model.parameters() if p.is_floating_point()]
        torch._foreach_lerp_(averaged, current, 1 - decay)
        for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)

    def state_dict(self) -> dict:
        return {"model": self.module.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict, source: object) -> None:
        require(isinstance(state, dict) and isinstance(state.get("model"), dict) and is_int(state.get("steps")),
                 f"{source}: the weight average is not one the trainer wrote; delete it to restart the run from epoch 1")
        models.load_weights(self.module, state["model"], source)
        self.steps = int(state["steps"])


def check_finite(loss_sum: torch.Tensor, epoch: int, iteration: int) -> None:
    """Diverged when the summed loss is no longer finite (one host-device sync)."""
    if not torch.isfinite(loss_sum):
        raise Diverged(N_("the loss became {loss} by epoch {epoch}, batch {iteration}").format(
            loss=float(loss_sum), epoch=epoch, iteration=iteration))


def dtype_name(dtype: torch.dtype | None) -> str:
    """'bfloat16', 'float16' or 'off' (no autocast)."""
    return str(dtype).replace("torch.", "") if dtype is not None else "off"


class Diverged(Exception):
    """The loss became NaN or infinite."""
