"""A run's life: its id and folder, its state as readers should show it, its logs, stop requests
and the progress line of an active run."""

from __future__ import annotations

import math
import secrets
import time
from pathlib import Path

from lesion_core import i18n, locks
from lesion_core.i18n import N_
from lesion_core.locks import pid_alive
from lesion_core.paths import absolute, atomic_write_text
from lesion_core.runs.files import (ACTIVE_STATES, INTERRUPTED, STOP_FILE, atomic_write_json, read_capped,
                                     read_status, write_status)

RUN_ID_TIME = len("20261127-053012")  # the sortable date and time an id begins with


def new_run_id(model_name: str) -> str:
    """A sortable, unique id: 20261127-053012-efficientnet_lite0-ab12."""
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(model_name)) or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{secrets.token_hex(2)}"


def create_run(runs_dir, config: dict) -> Path:
    """Make runs_dir/<new id>/ with config.json and a 'queued' status.json; return its absolute path."""
    runs_dir = absolute(runs_dir)
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
    write_status(run_dir, state="queued", message=N_("waiting for the trainer to start"),
                 created=time.time())
    return run_dir


def effective_state(status: dict, run_dir=None) -> str:
    """The state to show: status['state']; for an active run whose process is gone, 'failed'
    when it never started (it wrote nothing: a crash at start) and 'interrupted' otherwise.
    With run_dir, a run said to be running is running only while a trainer holds its lock
    (locks.run): a pid alone (pid 1, a reused pid, a hand-edited file) claims nothing."""
    state = status.get("state", "queued")
    if state in ACTIVE_STATES and not pid_alive(status.get("pid"), status.get("pid_start")):
        return "failed" if state == "queued" else INTERRUPTED
    if state in ("running", "stopping") and run_dir is not None and not locks.run_busy(run_dir):
        # The trainer writes its last status, then lets go of the lock: status read before the
        # lock was found free may be older than the end. Read again, after the lock check.
        fresh = read_status(run_dir).get("state", state)
        return fresh if fresh not in ("running", "stopping") else INTERRUPTED
    return state


CONSOLE_LOG = "console.log"  # the trainer process's own stdout and stderr (launch())


def log_tail(run_dir, lines: int = 20) -> str:
    """The last lines of the run's train.log, else of its console.log ("" when neither exists)."""
    for name in ("train.log", CONSOLE_LOG):
        try:
            text = read_capped(Path(run_dir) / name, 2**16).decode("utf-8", errors="replace")
        except OSError:
            continue
        if text.strip():
            return "\n".join(text.rstrip().splitlines()[-lines:])
    return ""


def start_failure(run_dir) -> str:
    """Why a trainer process ended before it wrote its first status: the last line of its
    console output (an exception's one-line summary), or a note that it printed nothing."""
    try:
        text = read_capped(Path(run_dir) / CONSOLE_LOG, 2**16).decode("utf-8", errors="replace")
    except OSError:
        text = ""
    last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
    return (N_("the trainer process ended before it started: {output}").format(output=last) if last
            else N_("the trainer process ended before it started, without any output"))


def request_stop(run_dir) -> None:
    """Ask the trainer to stop after its current batch (it saves best and last weights)."""
    atomic_write_text(Path(run_dir) / STOP_FILE, f"stop requested at {time.time()}\n")


def stop_requested(run_dir) -> bool:
    """True when a stop request file exists in the run folder."""
    return (Path(run_dir) / STOP_FILE).exists()


def clear_stop(run_dir) -> None:
    """Remove a stop request (a resumed run must not stop at once)."""
    (Path(run_dir) / STOP_FILE).unlink(missing_ok=True)


# The phases status.json names, as words the progress line shows; N_: pages translate them.
PHASES = (N_("train"), N_("val"), N_("calibrate"), N_("evaluate"))


def progress(status: dict) -> tuple[float, str]:
    """(fraction of the run done in [0, 1], one line of text) from an active run's status.json.

    The bar means the whole run: every epoch, then the final scoring of val and test (a share
    of one epoch), so it is never full while the run still works. Within an epoch the training
    phase moves it; the phases after it (BatchNorm calibration, validation) count as the
    epoch's end. The line names each phase as the trainer's message does.
    """
    epochs, epoch, phase = status.get("epochs") or 1, status.get("epoch") or 0, status.get("phase")
    iteration, n_iters = status.get("iteration") or 0, status.get("n_iters") or 0
    units = epochs + 1  # the epochs, then the final scoring
    if phase == "evaluate":
        fraction = (epochs + 0.5) / units
    else:
        within = (iteration / n_iters if n_iters else 0.0) if phase == "train" else (1.0 if phase else 0.0)
        fraction = min(1.0, max(0.0, (epoch - 1 + within) / units)) if epoch else 0.0
    # Before the first epoch (queued, loading data, building the model) the message says what is going on.
    # Each part is a message of its own; pages translate the line part by part (lang.rendered).
    parts = [N_("epoch {epoch}/{epochs}").format(epoch=epoch, epochs=epochs) if epoch
             else status.get("message") or N_("starting")]
    if phase in ("train", "val"):
        parts.append(N_("{phase} batch {iteration}/{n_iters}").format(phase=phase, iteration=iteration, n_iters=n_iters))
    elif phase:
        parts.append(_PHASE_LINES.get(phase, phase))
    if status.get("images_per_s"):
        parts.append(N_("{speed} images/s").format(speed=f"{status['images_per_s']:.1f}"))
    eta = status.get("eta_s")
    if isinstance(eta, (int, float)) and math.isfinite(eta):  # untrusted: Infinity parses as JSON here
        low, high = eta_range(eta, fraction)
        parts.append(N_("ETA {time}").format(time=_clock(low) if low == high else f"{_clock(low)}–{_clock(high)}"))
    return fraction, i18n.join(i18n.PARTS, parts)


def eta_range(eta_s: float, fraction: float) -> tuple[int, int]:
    """(low, high) seconds left around the trainer's eta_s (remaining batches times the time per
    batch measured so far), when fraction of the run is done: wide after the first batches
    (the later phases are still guessed, and the machine's load may change), narrowing as
    the run measures more of itself; a run tends to slow down more than it speeds up."""
    spread = 0.1 + 0.4 * (1.0 - min(max(fraction, 0.0), 1.0))
    return int(eta_s * (1 - spread / 2)), int(round(eta_s * (1 + spread)))


def _clock(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


# A phase as the trainer's own message names that moment (one name on the page, not two).
_PHASE_LINES = {"calibrate": N_("recomputing BatchNorm statistics"),
                "evaluate": N_("evaluating the best model on val and test")}
