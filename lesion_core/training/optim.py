"""Optimisers and learning-rate schedules from a config, and resuming a schedule mid-run."""

from __future__ import annotations

import math

import torch


def weight_decay(optim: dict) -> float:
    """The weight decay an optim config trains with: its own, else the optimiser's default
    (torch's: AdamW 0.01; SGD and Adam 0, as the notebook)."""
    if optim.get("weight_decay") is not None:
        return float(optim["weight_decay"])
    return 0.01 if optim.get("optimizer") == "adamw" else 0.0


def make_optimizer(config: dict, params) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW over the trainable parameters."""
    cfg = config["optim"]
    params = [p for p in params if p.requires_grad]
    decay = {} if cfg["weight_decay"] is None else {"weight_decay": cfg["weight_decay"]}
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], **decay)
    cls = torch.optim.Adam if cfg["optimizer"] == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg["lr"], **decay)


def lr_factor(config: dict, step: int, steps_per_epoch: int) -> float:
    """The learning rate's multiplier for optimiser step `step` (0-based) of the run.

    A linear warm-up over scheduler.warmup_epochs (from 1/steps of the rate up to all of it),
    then the named schedule: "cosine" anneals to 0 over the remaining epochs step by step,
    "step" multiplies by gamma every step_size epochs, "none" keeps the rate.
    """
    cfg = config["scheduler"]
    warm_steps = cfg["warmup_epochs"] * steps_per_epoch
    factor = min(1.0, (step + 1) / warm_steps) if warm_steps else 1.0
    epochs_done = step / steps_per_epoch
    if cfg["name"] == "step":
        return factor * cfg["gamma"] ** (int(epochs_done) // cfg["step_size"])
    if cfg["name"] == "cosine":
        span = max(config["epochs"] - cfg["warmup_epochs"], 1e-9)
        t = min(max(epochs_done - cfg["warmup_epochs"], 0.0) / span, 1.0)
        return factor * 0.5 * (1.0 + math.cos(math.pi * t))
    return factor


def make_scheduler(config: dict, optimizer, steps_per_epoch: int):
    """The per-step schedule of lr_factor (stepped after every optimiser step)."""
    steps = max(int(steps_per_epoch), 1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, steps))


def resume_schedule(scheduler, optimizer, steps_done: int) -> None:
    """Put the schedule (and the optimiser's rates) where it is after steps_done steps.

    The schedule is a function of the step alone, so it is recomputed rather than loaded:
    checkpoints written before it was stepped per batch (per-epoch StepLR/cosine states)
    resume just as well."""
    scheduler.last_epoch = steps_done
    for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * factor(steps_done)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
