"""Run folders: the only place training state lives.

runs/<run-id>/ holds config.json, status.json, history.jsonl, best.pt, last.pt,
predictions_<split>.csv, metrics_<split>.json and train.log. Every file is written to a
temporary file in the same folder and renamed into place, so a reader (the UI, another
process) never sees half a file and a killed trainer never leaves a corrupt one.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from lesion_core.metrics import to_jsonable
from lesion_core.paths import FILE_MODE, atomic_write_bytes, atomic_write_text  # noqa: F401  (re-exported)

# The trainer's life cycle: queued -> running -> stopped | finished | failed. "stopping" (a
# stop was requested) and "interrupted" (status says running but the process is gone: killed,
# machine rebooted; resumable) are never written: run_info() derives them for readers.
ACTIVE_STATES = ("queued", "running", "stopping")
INTERRUPTED = "interrupted"
STOP_FILE = "STOP"

def atomic_write_json(path, obj) -> None:
    """Write obj as indented, strictly valid JSON (NaN becomes null) atomically."""
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")


def append_line(path, line: str) -> None:
    """Append one line to a small text file, rewriting it atomically (history, log)."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + line.rstrip("\n") + "\n")


def _read_json(path: Path, default: dict | None) -> dict | None:
    """The JSON object in path, or default when it is missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError covers bad JSON and bad UTF-8
        return default
    return value if isinstance(value, dict) else default


def read_config(run_dir) -> dict:
    """The run's config.json as a dict ({} when missing or unreadable)."""
    return _read_json(Path(run_dir) / "config.json", {})


def read_metrics(run_dir, split: str) -> dict | None:
    """The run's metrics_<split>.json (written when it finished), or None when absent or unreadable."""
    return _read_json(Path(run_dir) / f"metrics_{split}.json", None)


def read_status(run_dir) -> dict:
    """The run's status.json as a dict ({} when missing or unreadable)."""
    return _read_json(Path(run_dir) / "status.json", {})


def read_history(run_dir) -> list[dict]:
    """history.jsonl as a list of dicts, one per (epoch, phase); unreadable lines are skipped."""
    path = Path(run_dir) / "history.jsonl"
    try:
        # errors="replace": a garbled byte spoils its own line only, not the whole history
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash of an older writer: keep the rest
        if isinstance(row, dict):
            rows.append(row)
    return rows


def write_status(run_dir, **fields) -> dict:
    """Merge fields into status.json (plus 'updated', epoch seconds) and return the new status.

    A pid comes with its process's start time ('pid_start'), so that a later process given
    the same pid (after a reboot or a container restart) is not taken for the trainer.
    """
    status = read_status(run_dir)
    if "pid" in fields:
        fields["pid_start"] = process_start(fields["pid"])
    status.update(fields, updated=time.time())
    atomic_write_json(Path(run_dir) / "status.json", status)
    return status


def new_run_id(model_name: str) -> str:
    """A sortable, unique id: 20261127-053012-efficientnet_lite0-ab12."""
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(model_name)) or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{secrets.token_hex(2)}"


def create_run(runs_dir, config: dict) -> Path:
    """Make runs_dir/<new id>/ with config.json and a 'queued' status.json; return its path."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    model_name = config.get("model", {}).get("name", "run")
    while True:
        run_dir = runs_dir / new_run_id(model_name)
        try:
            run_dir.mkdir()
            break
        except FileExistsError:  # same second, same 16-bit suffix: draw again
            continue
    atomic_write_json(run_dir / "config.json", config)
    write_status(run_dir, state="queued", message="waiting for the trainer to start",
                 created=time.time())
    return run_dir


def _proc_stat(pid) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None (no /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start(pid) -> str | None:
    """When process pid started (clock ticks since boot, from /proc), or None where unknown."""
    fields = _proc_stat(pid) if isinstance(pid, int) and pid > 0 else None
    return fields[19] if fields and len(fields) > 19 else None


def pid_alive(pid, started: str | None = None) -> bool:
    """True when a process with this id exists, is not a zombie (killed, not yet reaped) and,
    when started (a process_start() value) is given, is the process that started then."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc (macOS): os.kill said it exists
    return fields[0] != "Z" and (started is None or process_start(pid) == started)


def effective_state(status: dict) -> str:
    """The state to show: status['state'], or 'interrupted' when an active run's process is gone."""
    state = status.get("state", "queued")
    if state in ACTIVE_STATES and not pid_alive(status.get("pid"), status.get("pid_start")):
        return INTERRUPTED
    return state


def is_active(run) -> bool:
    """True while the run's trainer process is alive and working (run: RunInfo or folder)."""
    status = run.status if isinstance(run, RunInfo) else read_status(run)
    return effective_state(status) in ACTIVE_STATES


def request_stop(run_dir) -> None:
    """Ask the trainer to stop after its current batch (it saves best and last weights)."""
    atomic_write_text(Path(run_dir) / STOP_FILE, f"stop requested at {time.time()}\n")


def stop_requested(run_dir) -> bool:
    """True when a stop request file exists in the run folder."""
    return (Path(run_dir) / STOP_FILE).exists()


def clear_stop(run_dir) -> None:
    """Remove a stop request (a resumed run must not stop at once)."""
    (Path(run_dir) / STOP_FILE).unlink(missing_ok=True)


def progress(status: dict) -> tuple[float, str]:
    """(fraction of the run done in [0, 1], one line of text) from an active run's status.json.

    Within an epoch the training phase moves the bar; the phases after it (BatchNorm
    calibration, validation, the final evaluation) count as the epoch's end.
    """
    epochs, epoch, phase = status.get("epochs") or 1, status.get("epoch") or 0, status.get("phase")
    iteration, n_iters = status.get("iteration") or 0, status.get("n_iters") or 0
    if phase == "train":
        within = iteration / n_iters if n_iters else 0.0
    else:
        within = 1.0 if phase else 0.0
    fraction = min(1.0, max(0.0, (epoch - 1 + within) / epochs)) if epoch else 0.0
    # Before the first epoch (queued, loading data, building the model) the message says what is going on.
    parts = [f"epoch {epoch}/{epochs}" if epoch else status.get("message") or "starting"]
    if phase in ("train", "val"):
        parts.append(f"{phase} batch {iteration}/{n_iters}")
    elif phase:
        parts.append(phase)
    if status.get("images_per_s"):
        parts.append(f"{status['images_per_s']:.1f} images/s")
    if status.get("eta_s") is not None:
        eta = int(status["eta_s"])
        parts.append(f"ETA {eta // 60}:{eta % 60:02d}")
    return fraction, " · ".join(parts)


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

    @property
    def model(self) -> str:
        return self.config.get("model", {}).get("name", "?")


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


def run_info(run_dir) -> RunInfo:
    """Read one run folder into a RunInfo (never raises on missing or partial files)."""
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    state = effective_state(status)
    if state == "running" and stop_requested(run_dir):
        state = "stopping"  # shown at once; the trainer itself stops after its current batch
    best = status.get("best") or best_from_history(read_history(run_dir))
    started = status.get("started") or status.get("created")
    end = time.time() if state in ACTIVE_STATES else status.get("updated")
    duration = end - started if started and end else None
    return RunInfo(run_dir.name, run_dir, read_config(run_dir), status, state, best, started, duration)


def list_runs(runs_dir) -> list[RunInfo]:
    """Every run folder (one holding config.json) under runs_dir, newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    folders = [p for p in runs_dir.iterdir() if p.is_dir() and (p / "config.json").is_file()]
    return [run_info(p) for p in sorted(folders, key=lambda p: p.name, reverse=True)]


def active_run(runs_dir) -> RunInfo | None:
    """The run whose trainer is alive in runs_dir, if any (one training job at a time)."""
    return next((run for run in list_runs(runs_dir) if run.state in ACTIVE_STATES), None)
