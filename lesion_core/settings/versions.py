"""Older config.json files read as the current schema: each version's migration to the next.

Version 1 is every config.json written before configs carried a "version" (up to this schema);
it is recognised by the trainer's "resolved" record. A config without a version and without
"resolved" was written by a person, a page or a command for this code (a partial config, a
--config file): it is read as the current version.

Version 1 -> 2: "version" is added; settings that a run folder lacks because it was written
before they existed get the value that reproduces how it trained, where today's default
differs: bn_recalibration_images 0 (no recomputed BatchNorm statistics) and headline_metric
"mean_auc" (the best epoch was the one of highest validation mean AUC). Every other later
setting's default is the behaviour before it (no EMA, no TTA, no warm-up, no label smoothing,
no metadata, one process). No key was ever renamed (git log -p of train.py and settings/).
"""

from __future__ import annotations

import copy

from lesion_core.core import is_int
from lesion_core.settings.fields import SCHEMA_VERSION

UNVERSIONED = 1
# what a version-1 run folder trained with where it lacks a setting added later
BEFORE_VERSION_2 = {"bn_recalibration_images": 0, "headline_metric": "mean_auc"}


def version_of(config: dict) -> int | object:
    """The config's schema version (what "version" holds when present, even if not a number)."""
    if "version" in config:
        return config["version"]
    return UNVERSIONED if "resolved" in config else SCHEMA_VERSION


def migrate(config: dict) -> dict:
    """config as the current schema reads it (a copy when anything changes). A version that is
    not a known one is left for the schema's check to refuse, naming it."""
    version = version_of(config)
    if not is_int(version) or version == SCHEMA_VERSION:
        return config
    config = copy.deepcopy(config)
    if version == 1:
        for key, value in BEFORE_VERSION_2.items():
            config.setdefault(key, value)
        config["version"] = 2
    return config
