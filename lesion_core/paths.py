"""Where Lesion Lab keeps what it generates: caches (demo data, decoded images) and runs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of generated, re-creatable files ($LESION_LAB_CACHE, else ~/.cache/lesion_lab)."""
    root = os.environ.get("LESION_LAB_CACHE") or Path.home() / ".cache" / "lesion_lab"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Default folder of training runs ($LESION_LAB_RUNS, else ./runs)."""
    path = Path(os.environ.get("LESION_LAB_RUNS") or "runs")
    path.mkdir(parents=True, exist_ok=True)
    return path
