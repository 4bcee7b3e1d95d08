"""Sweeps: runs that differ in a few settings, trained one after another, resumable.

A spec is JSON: {"base": {...config...}, "grid": {"optim.lr": [1e-3, 3e-4], "augment":
["default_train", "notebook_train"]}, "repeats": 1}. Every combination of the grid's values
(x repeats, the seed counting up from the base's) is a normal run folder whose config carries
{"sweep": {"id", "index", "point", "repeat"}}. Each run is a detached trainer started by
training.launch (one training at a time), so stopping it on the Train page stops the sweep, and
a sweep started again with the same spec finds its runs by that tag: finished ones are kept,
an interrupted one is resumed, and the rest follow.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable

from lesion_core import locks, runs, safejson
from lesion_core.errors import TrainingError
from lesion_core.i18n import N_
from lesion_core.install import require_installed
from lesion_core import settings
from lesion_core import training

POLL_S = 2.0  # how often the sweep looks at its current run's status.json
MAX_RUNS = 1000  # a sweep past this is refused with its count (a typo in a grid can mean 10^6 runs)


def load_spec(path) -> dict:
    """A sweep spec file, checked; TrainingError says what is wrong."""
    try:
        spec = safejson.read(path)
    except (OSError, ValueError) as exc:  # safejson.Damaged is a ValueError: bad JSON, too deep, too large
        raise TrainingError(N_("cannot read sweep spec {file}: {error}").format(file=path, error=exc)) from None
    return check_spec(spec)


def check_spec(spec) -> dict:
    """spec with defaults (base {}, repeats 1); TrainingError for a malformed one."""
    if not isinstance(spec, dict) or not isinstance(spec.get("grid"), dict) or not spec["grid"]:
        raise TrainingError(N_('a sweep spec is {example}, with at least one setting in grid').format(
            example='{"base": {...config...}, "grid": {"optim.lr": [0.001, 0.0003]}, "repeats": 1}'))
    for key, values in spec["grid"].items():
        if not isinstance(values, list) or not values:
            raise TrainingError(N_("grid entry {key} must be a non-empty list of values").format(key=repr(key)))
    repeats = spec.get("repeats", 1)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or not 1 <= repeats <= 100:
        raise TrainingError(N_("repeats must be an integer from 1 to 100, got {value}").format(value=repr(repeats)))
    base = spec.get("base", {})
    if not isinstance(base, dict):
        raise TrainingError(N_("the sweep's base must be a config object"))
    n = count_runs(spec["grid"], repeats)
    if n > MAX_RUNS:
        raise TrainingError(N_("this sweep has {n} runs; at most {limit} are started at once: make the grid "
                               "smaller or split it into several sweeps").format(n=f"{n:,}", limit=f"{MAX_RUNS:,}"))
    return {"base": base, "grid": spec["grid"], "repeats": repeats}


def count_runs(grid: dict, repeats: int = 1) -> int:
    """How many runs a grid makes (the product of its lists' lengths, times repeats), counted
    before anything is expanded: a grid of 10^6 points is refused at once, not after minutes."""
    n = repeats
    for values in grid.values():
        n *= len(values)
    return n


def sweep_id(spec: dict) -> str:
    """Stable id from the spec's content: the same spec again resumes the same sweep."""
    digest = hashlib.sha256(json.dumps(check_spec(spec), sort_keys=True).encode()).hexdigest()
    return f"sweep-{digest[:8]}"


def _set(config: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for depth, key in enumerate(parents):
        config = config.setdefault(key, {})
        if not isinstance(config, dict):  # base {"optim": 5} with a grid over optim.lr
            raise TrainingError(N_("grid entry {key}: the base's {section} is {value}, not an object of settings").format(
                key=repr(dotted), section=".".join(parents[:depth + 1]), value=repr(config)[:40]))
    config[last] = copy.deepcopy(value)


def expand(spec: dict) -> list[dict]:
    """Every run of the sweep, validated before any starts: [{"index", "point", "repeat", "config"}]."""
    spec = check_spec(spec)
    sid = sweep_id(spec)
    keys = list(spec["grid"])
    planned = []
    for point_values in itertools.product(*(spec["grid"][k] for k in keys)):
        point = dict(zip(keys, point_values))
        for repeat in range(spec["repeats"]):
            config = copy.deepcopy(spec["base"])
            for key, value in point.items():
                _set(config, key, value)
            config["seed"] = int(config.get("seed", settings.default_config()["seed"])) + repeat
            index = len(planned)
            config["sweep"] = {"id": sid, "index": index, "point": point, "repeat": repeat}
            try:
                settings.validate_config(config)
            except TrainingError as exc:
                raise TrainingError(N_("sweep run {index} ({point}): {error}").format(
                    index=index, point=json.dumps(point), error=exc)) from None
            planned.append({"index": index, "point": point, "repeat": repeat, "config": config})
    return planned


def sweep_runs(runs_dir, sid: str) -> dict[int, runs.RunInfo]:
    """index -> the run folder of sweep sid with that index (the newest, if several)."""
    found = {}
    for run in reversed(runs.list_runs(runs_dir)):  # oldest first, so the newest wins
        tag = run.config.get("sweep")
        if isinstance(tag, dict) and tag.get("id") == sid and isinstance(tag.get("index"), int):
            found[tag["index"]] = run
    return found


def _wait(run_dir: Path) -> str:
    """Block until the run is no longer active and its trainer has let go of it (and so of the
    device: the next run may start); its final state."""
    while True:
        info = runs.run_info(run_dir)
        if info.state not in runs.ACTIVE_STATES and not locks.run_busy(run_dir):
            return info.state
        time.sleep(POLL_S if info.state in runs.ACTIVE_STATES else 0.1)


def run_sweep(spec: dict, runs_dir, on_log: Callable[[str], None] = print) -> list[Path]:
    """Train every run of the sweep not finished yet, one at a time; their folders in order.

    Stops (without error) when a run ends stopped; TrainingError when one fails."""
    planned = expand(spec)
    sid = sweep_id(spec)
    runs_dir = Path(runs_dir)
    done = []
    for item in planned:
        existing = sweep_runs(runs_dir, sid).get(item["index"])
        label = f"{sid} run {item['index'] + 1}/{len(planned)} {json.dumps(item['point'])} repeat {item['repeat']}"
        if existing is not None and existing.state in runs.ACTIVE_STATES:
            on_log(f"{label}: already training ({existing.id}); waiting for it")
            run_dir = existing.path
        elif existing is not None and existing.state == "finished":
            on_log(f"{label}: finished before ({existing.id})")
            done.append(existing.path)
            continue
        elif existing is not None and existing.state in ("interrupted", "stopped", "failed"):
            on_log(f"{label}: resuming {existing.id} ({existing.state})")
            run_dir = training.launch_resume(existing.path)
        else:
            run_dir = training.launch(item["config"], runs_dir)
            on_log(f"{label}: started {run_dir.name}")
        state = _wait(run_dir)
        if state == "stopped":
            on_log(f"{label}: stopped; the sweep stops here (start it again to continue)")
            break
        if state != "finished":
            message = runs.read_status(run_dir).get("message", state)
            raise TrainingError(N_("{run} ended {state}: {message}; fix it and start the sweep again to continue").format(
                run=label, state=state, message=message))
        on_log(f"{label}: {runs.read_status(run_dir).get('message')}")
        done.append(run_dir)
    return done


def write_spec(spec: dict, runs_dir) -> Path:
    """Store a spec as runs_dir/sweeps/<id>.json (for `sweep` started from the Train page)."""
    path = Path(runs_dir) / "sweeps" / f"{sweep_id(spec)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.atomic_write_json(path, check_spec(spec))
    return path


def launch_sweep(spec: dict, runs_dir) -> str:
    """Start `python -m lesion_core sweep` on spec in its own session (the Train page); its id.

    Refused while a run is training: the sweep would only wait behind it."""
    expand(spec)  # every run's config is checked now, not in the background
    active = runs.active_run(runs_dir)
    if active is not None:
        raise TrainingError(N_("run {run} is still {state}: one training at a time; stop it first").format(
            run=active.id, state=active.state))
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    require_installed(runs_dir)
    path = write_spec(spec, runs_dir)
    with open(path.with_suffix(".log"), "ab") as console:
        subprocess.Popen([sys.executable, "-m", "lesion_core", "sweep", str(path), "--out", str(Path(runs_dir).resolve())],
                         stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                         start_new_session=True, cwd=path.parent)
    return sweep_id(spec)
