"""A run's settings and what follows from them, below training and scoring alike: the config
schema (settings.fields: every setting's default, type, range and help; schema: recipes, the
checks across settings; versions: older config.json files), the device rules, and the data
loaders a config describes.

Scoring (inference) reads a run with the same rules it was trained with, so these live below
both (ARCHITECTURE.md).

The names below load their module when first used: the command line builds its parser from
settings.fields (pydantic alone) before torch loads for the rest.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "device": ("DEVICE_NAME", "DEVICES", "device_choice", "device_choices", "gpu_count", "resolve_amp",
               "resolve_device", "split_device_choice"),
    "loaders": ("class_weights", "collate", "epoch_seed", "load_data", "make_loader", "recorded_split",
                "seed_everything"),
    "loading": ("MAX_AUTO_WORKERS", "SeededSampler", "SeededSamples", "cpu_count", "loader_options",
                "resolve_num_workers", "sample_seed"),
    "recipes": ("RECIPES", "recipe_for"),
    "schema": ("OPTIMIZERS", "SCHEDULERS", "check_partial", "default_config", "image_size", "merge_config",
               "recipe_config", "run_config", "validate_config"),
    "fields": ("AMP_MODES", "SCHEMA_VERSION", "help_text", "number_limits"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
