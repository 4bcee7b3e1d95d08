"""A run's settings and what follows from them, below training and scoring alike: the config
schema (defaults, recipes, checks), the device rules, and the data loaders a config describes.

Scoring (inference) reads a run with the same rules it was trained with, so these live below
both (ARCHITECTURE.md)."""

from __future__ import annotations

from lesion_core.settings.device import (
    AMP_MODES,
    DEVICE_NAME,
    DEVICES,
    device_choice,
    device_choices,
    gpu_count,
    resolve_amp,
    resolve_device,
    split_device_choice,
)
from lesion_core.settings.loaders import (
    class_weights,
    collate,
    epoch_seed,
    load_data,
    make_loader,
    recorded_split,
    seed_everything,
)
from lesion_core.settings.loading import (
    MAX_AUTO_WORKERS,
    SeededSampler,
    SeededSamples,
    cpu_count,
    loader_options,
    resolve_num_workers,
    sample_seed,
)
from lesion_core.settings.recipes import RECIPES, recipe_for
from lesion_core.settings.schema import (
    OPTIMIZERS,
    SCHEDULERS,
    default_config,
    image_size,
    merge_config,
    recipe_config,
    run_config,
    validate_config,
)

__all__ = [
    "AMP_MODES",
    "DEVICES",
    "DEVICE_NAME",
    "MAX_AUTO_WORKERS",
    "OPTIMIZERS",
    "RECIPES",
    "SCHEDULERS",
    "SeededSampler",
    "SeededSamples",
    "class_weights",
    "collate",
    "cpu_count",
    "default_config",
    "device_choice",
    "device_choices",
    "epoch_seed",
    "gpu_count",
    "image_size",
    "load_data",
    "loader_options",
    "make_loader",
    "merge_config",
    "recipe_config",
    "recipe_for",
    "recorded_split",
    "resolve_amp",
    "resolve_device",
    "resolve_num_workers",
    "run_config",
    "sample_seed",
    "seed_everything",
    "split_device_choice",
    "validate_config",
]
