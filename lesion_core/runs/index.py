"""Run folders as the UI lists them: one RunInfo a folder, parsed again only when one of its
files changes, newest first."""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from lesion_core import paths
from lesion_core.runs.files import ACTIVE_STATES, DAMAGED, read_config, read_history, read_status, run_problems
from lesion_core.runs.lifecycle import RUN_ID_TIME, effective_state, start_failure, stop_requested

@dataclass
class RunInfo:
    """One run folder as the UI lists it. best: {"metric", "value", "epoch"} or None."""

    id: str
    path: Path
    config: dict
    status: dict
    state: str
    best: dict | None
    started: float | None
    duration: float | None
    damage: list = field(default_factory=list)  # "<file>: <what is wrong>", from run_problems()

    @property
    def model(self) -> str:
        return self.config.get("model", {}).get("name", "?")

    @property
    def dataset(self) -> str:
        return dataset_label(self.config)


def dataset_label(config: dict) -> str:
    """Short name of a run's dataset: "demo", or its folder's name ("?" when not recorded).

    Shown beside every run, so a demo run is never compared with a real-data run unawares.
    """
    root = (config.get("data") or {}).get("root") if isinstance(config.get("data"), dict) else None
    if not isinstance(root, str) or not root:
        return "?"
    return "demo" if root == "demo" else paths.dataset_name(root)


def trained_on_demo(config: dict) -> bool:
    """Whether the run learned from the built-in synthetic demo images (drawn shapes): its
    answers about a real photograph mean nothing, however good its own metrics look."""
    data = config.get("data") if isinstance(config, dict) else None
    return isinstance(data, dict) and data.get("root") == "demo"


def best_from_history(history: list[dict]) -> dict | None:
    """Best validation epoch: highest headline metric (mean AUC in runs that name none), or
    lowest loss when it is undefined."""
    val = [row for row in history if row.get("phase") == "val"]
    headline = next((r["headline"] for r in val if isinstance(r.get("headline"), str)), "mean_auc")
    with_auc = [row for row in val if isinstance(row.get(headline), (int, float))]
    if with_auc:
        row = max(with_auc, key=lambda r: r[headline])
        return {"metric": f"val_{headline}", "value": row[headline], "epoch": row["epoch"]}
    with_loss = [row for row in val if row.get("loss") is not None]
    if with_loss:
        row = min(with_loss, key=lambda r: r["loss"])
        return {"metric": "val_loss", "value": row["loss"], "epoch": row["epoch"]}
    return None


_READ_CACHE: dict = {}  # run folder -> (its files' stamp, status, config, damage, best from history)


_READ_CACHE_MAX = 4096


def forget_read_cache() -> None:
    """Parse every run folder again on its next listing (benchmarks measure the cold listing)."""
    _READ_CACHE.clear()


def _folder_stamp(run_dir: Path) -> tuple | None:
    """Name, size, modification time and inode of every file in a run folder (one scandir):
    any write (atomic writes rename a new inode into place) changes it; None when unreadable."""
    try:
        with os.scandir(run_dir) as entries:
            return tuple(sorted((e.name, st.st_size, st.st_mtime_ns, st.st_ino)
                                for e in entries if e.is_file() for st in (e.stat(),)))
    except OSError:
        return None


def _read_run(run_dir: Path) -> tuple:
    """(status, config, damage, best from history) of a run folder, parsed once per change of
    its files: 20 sessions opening Results read every run folder on each page run."""
    stamp = _folder_stamp(run_dir)
    cached = _READ_CACHE.get(run_dir)
    if stamp is not None and cached is not None and cached[0] == stamp:
        found = cached[1]
    else:
        found = (read_status(run_dir), read_config(run_dir), run_problems(run_dir),
                 best_from_history(read_history(run_dir)))
        if stamp is not None:
            if len(_READ_CACHE) >= _READ_CACHE_MAX:
                _READ_CACHE.clear()
            _READ_CACHE[run_dir] = (stamp, found)
    return copy.deepcopy(found)  # callers may change what they get


def run_info(run_dir) -> RunInfo:
    """Read one run folder into a RunInfo (never raises on missing, partial or damaged files).

    A run whose config.json or status.json is damaged has the state "damaged": it is listed
    with what is wrong, but not resumed or taken for the active run. The files are parsed
    again only when one changed (_read_run); the state (is the trainer alive?) every time.
    """
    run_dir = Path(run_dir)
    status, config, damage, history_best = _read_run(run_dir)
    state = effective_state(status, run_dir)
    if any(p.startswith(("config.json", "status.json")) for p in damage):
        state = DAMAGED
    elif state == "running" and stop_requested(run_dir):
        state = "stopping"  # shown at once; the trainer itself stops after its current batch
    if state == "failed" and status.get("state") == "queued":
        status = dict(status, message=start_failure(run_dir))
    best = status.get("best") or history_best
    started = status.get("started") or status.get("created")
    end = time.time() if state in ACTIVE_STATES else status.get("updated")
    duration = end - started if started and end else None
    return RunInfo(run_dir.name, run_dir, config, status, state, best, started, duration, damage)


def list_runs(runs_dir) -> list[RunInfo]:
    """Every run folder (one holding config.json) under runs_dir, newest first: by the id's
    second, then by the creation time status.json records (two runs started in the same second
    differ only in their random suffix), then by id."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    folders = [p for p in runs_dir.iterdir() if p.is_dir() and (p / "config.json").is_file()]

    def newest_first(run: RunInfo):
        created = run.status.get("created")  # untrusted: a number, or nothing to sort by
        created = created if isinstance(created, (int, float)) and math.isfinite(created) else 0.0
        return run.id[:RUN_ID_TIME], created, run.id

    return sorted((run_info(p) for p in folders), key=newest_first, reverse=True)


def is_active(run) -> bool:
    """True while the run's trainer process is alive and working (run: RunInfo or folder)."""
    status, run_dir = (run.status, run.path) if isinstance(run, RunInfo) else (read_status(run), run)
    return effective_state(status, run_dir) in ACTIVE_STATES


def active_run(runs_dir) -> RunInfo | None:
    """The run whose trainer is alive in runs_dir, if any (one training job at a time)."""
    return next((run for run in list_runs(runs_dir) if run.state in ACTIVE_STATES), None)
