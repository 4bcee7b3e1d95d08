"""Run folders: the only place training state lives.

runs/<run-id>/ holds config.json, status.json, history.jsonl, best.pt, last.pt,
predictions_<split>.csv, metrics_<split>.json and train.log. Every file is written to a
temporary file in the same folder and renamed into place, so a reader (the UI, another
process) never sees half a file and a killed trainer never leaves a corrupt one.
"""

from __future__ import annotations

import copy
import json
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from lesion_core import locks, paths, safejson
from lesion_core.locks import pid_alive, process_start
from lesion_core import i18n
from lesion_core.i18n import N_, N_n
from lesion_core.metrics import to_jsonable
from lesion_core.paths import absolute, atomic_write_text

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
    """Append one line to a text file (history, log) with O_APPEND: one write at the end, so a
    reader never sees a half-rewritten file, and the cost does not grow with the file.

    A last line cut short (a killed writer, a full disk) is ended first, so the new line
    stays a line of its own.
    """
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        os.write(fd, data)
    finally:
        os.close(fd)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional(check):
    return lambda value: value is None or check(value)


def _list_of(check, length: int | None = None):
    return lambda value: (isinstance(value, list) and (length is None or len(value) == length)
                          and all(check(v) for v in value))


def _is_best(value) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("metric"), str)
            and _is_number(value.get("value")) and _is_int(value.get("epoch")))


def _is_final(value) -> bool:
    """status["final"]: {split: {"mean_auc": number | None, "accuracy": number | None}}."""
    return isinstance(value, dict) and all(
        isinstance(v, dict) and all(_optional(_is_number)(v.get(k)) for k in ("mean_auc", "accuracy"))
        for v in value.values())


STATES = ("queued", "running", "stopped", "finished", "failed")
DAMAGED = "damaged"
# What a reader may rely on in status.json; a field of another type is dropped and reported.
STATUS_FIELDS = {
    "state": lambda v: v in STATES, "message": lambda v: isinstance(v, str) and len(v) <= 4000,
    "pid": _is_int, "pid_start": _optional(lambda v: isinstance(v, str)),
    "started": _optional(_is_number), "created": _optional(_is_number), "updated": _optional(_is_number),
    "epochs": _optional(_is_int), "epoch": _optional(_is_int), "iteration": _optional(_is_int),
    "n_iters": _optional(_is_int), "phase": _optional(lambda v: isinstance(v, str)),
    "images_per_s": _optional(_is_number), "eta_s": _optional(_is_number),
    "best": _optional(_is_best), "final": _optional(_is_final),
}
_SECTIONS = ("data", "model", "optim", "scheduler")
# Next to status.json's English "message": its msgid and values (i18n.to_json), when it is a message.
MESSAGE_FIELDS = ("message_id", "message_params")


def load_json(path: Path) -> tuple[object, str | None]:
    """(the JSON value in path, None), (None, None) when absent, (None, what is wrong) when unreadable."""
    try:
        return safejson.read(path), None
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, N_("{file}: cannot be read ({error})").format(file=path.name, error=exc.strerror or exc)
    except safejson.Damaged as exc:  # bad JSON, bad UTF-8, nested too deeply, too large
        return None, N_("{file}: not valid JSON ({error})").format(file=path.name, error=exc)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def status_problems(status) -> list[str]:
    """What is wrong with a status.json value ([] when a reader can trust every known field)."""
    if not isinstance(status, dict):
        return [N_("{file}: holds a {type}, not an object").format(file="status.json", type=type(status).__name__)]
    return [N_("{file}: {key} is {value}").format(file="status.json", key=repr(key), value=_short(status[key]))
            for key, check in STATUS_FIELDS.items()
            if key in status and not check(status[key])]


def config_problems(config) -> list[str]:
    """What is wrong with the shape of a config.json value, as far as a reader relies on it.

    settings.validate_config checks every value before a config is used to train or evaluate;
    this is what listing and showing a run needs: sections that are objects, names that are text.
    """
    if not isinstance(config, dict):
        return [N_("{file}: holds a {type}, not an object").format(file="config.json", type=type(config).__name__)]
    problems = [N_("{file}: section {key} is {value}, not an object").format(
                    file="config.json", key=repr(key), value=_short(config[key]))
                for key in _SECTIONS if key in config and not isinstance(config[key], dict)]
    checks = {("model", "name"): lambda v: isinstance(v, str),
              ("model", "weights"): lambda v: isinstance(v, str),
              ("optim", "optimizer"): lambda v: isinstance(v, str),
              ("optim", "lr"): _is_number,
              ("scheduler", "name"): lambda v: isinstance(v, str),
              ("data", "class_names"): _optional(_list_of(lambda v: isinstance(v, str))),
              ("data", "split"): _optional(lambda v: isinstance(v, dict))}
    for (section, key), check in checks.items():
        value = config.get(section)
        if isinstance(value, dict) and key in value and not check(value[key]):
            problems.append(N_("{file}: {key} is {value}").format(file="config.json", key=f"{section}.{key}",
                                                                  value=_short(value[key])))
    for key in ("epochs", "batch_size", "image_size", "seed"):
        if key in config and not _optional(_is_int)(config[key]):
            problems.append(N_("{file}: {key} is {value}, not an integer").format(
                file="config.json", key=key, value=_short(config[key])))
    for key in ("augment", "eval_augment"):
        value = config.get(key)
        # validate_config turns a preset name into its steps: a run folder holds the steps
        if key in config and not _list_of(lambda s: isinstance(s, dict) and isinstance(s.get("name"), str))(value):
            problems.append(N_("{file}: {key} is {value}, not a pipeline").format(
                file="config.json", key=key, value=_short(value)))
    return problems


def metrics_problems(metrics, name: str = "metrics.json") -> list[str]:
    """What is wrong with a metrics_<split>.json value ([] when the Results page can draw it)."""
    if not isinstance(metrics, dict):
        return [N_("{file}: holds a {type}, not an object").format(file=name, type=type(metrics).__name__)]
    names = metrics.get("class_names")
    if not (_list_of(lambda v: isinstance(v, str))(names) and names):
        return [N_("{file}: {key} is {value}").format(file=name, key="class_names", value=_short(names))]
    n = len(names)
    number, maybe = _is_number, _optional(_is_number)
    checks = {"accuracy": number, "mean_auc": maybe, "n": _is_int,
              "confusion": _list_of(_list_of(number, n), n), "confusion_pct": _list_of(_list_of(number, n), n),
              "precision": _list_of(number, n), "recall": _list_of(number, n), "auc": _list_of(maybe, n),
              "roc": _list_of(lambda r: isinstance(r, dict) and all(
                  _list_of(number)(r.get(k)) for k in ("fpr", "tpr")), n)}
    return [N_("{file}: {key} is {value}").format(file=name, key=key, value=_short(metrics.get(key)))
            for key, check in checks.items()
            if not check(metrics.get(key))]


def read_json(path: Path, default: dict | None, problems=None) -> dict | None:
    """The JSON object in path, or default when it is missing, unreadable or not an object."""
    value, problem = load_json(path)
    if problem or not isinstance(value, dict) or (problems and problems(value)):
        return default
    return value


def read_config(run_dir) -> dict:
    """The run's config.json as a dict ({} when missing, unreadable or of the wrong shape)."""
    return read_json(Path(run_dir) / "config.json", {}, config_problems)


def read_metrics(run_dir, split: str) -> dict | None:
    """The run's metrics_<split>.json (written when it finished), or None when absent, unreadable
    or of the wrong shape (run_info().damage says which)."""
    return read_json(Path(run_dir) / f"metrics_{split}.json", None,
                      lambda m: metrics_problems(m, f"metrics_{split}.json"))


def read_status(run_dir) -> dict:
    """The run's status.json as a dict ({} when missing or unreadable); fields of the wrong
    type are left out (status_problems names them). The message comes back as the i18n.Message
    its writer gave (MESSAGE_FIELDS), so that a page translates it by its msgid; those fields
    are only an aid to translation: damaged, they are ignored and the English stays."""
    status = read_json(Path(run_dir) / "status.json", {})
    status = {k: v for k, v in status.items() if k not in STATUS_FIELDS or STATUS_FIELDS[k](v)}
    tree = {"id": status.pop(MESSAGE_FIELDS[0], None), "params": status.pop(MESSAGE_FIELDS[1], None)}
    if isinstance(status.get("message"), str) and tree["id"] is not None:
        message = i18n.from_json({k: v for k, v in tree.items() if v is not None}, status["message"])
        if message is not None:
            status["message"] = message
    return status


_HISTORY_NUMBERS = ("loss", "accuracy", "mean_auc", "lr", "n_images", "time_s", "images_per_s",
                    "iter_time_s", "data_time_s", "time")


def _history_row(line: str) -> dict | None:
    """One history.jsonl line as a dict, or None when it is not a line the trainer wrote."""
    try:
        row = safejson.loads(line)
    except safejson.Damaged:
        return None
    ok = (isinstance(row, dict) and _is_int(row.get("epoch")) and isinstance(row.get("phase"), str)
          and all(_optional(_is_number)(row.get(k)) for k in _HISTORY_NUMBERS)
          and _optional(lambda a: isinstance(a, dict) and all(map(_optional(_is_number), a.values())))(row.get("auc")))
    return row if ok else None


def read_history_checked(run_dir) -> tuple[list[dict], int]:
    """(history.jsonl as a list of dicts, one per (epoch, phase), number of lines skipped as unreadable)."""
    path = Path(run_dir) / "history.jsonl"
    try:
        # errors="replace": a garbled byte spoils its own line only, not the whole history
        lines = _read_capped(path).decode("utf-8", errors="replace").splitlines()
    except OSError:
        return [], 0
    rows = [_history_row(line) for line in lines if line.strip()]
    return [row for row in rows if row is not None], sum(row is None for row in rows)


def read_history(run_dir) -> list[dict]:
    """history.jsonl as a list of dicts, one per (epoch, phase); unreadable lines are skipped."""
    return read_history_checked(run_dir)[0]


def run_problems(run_dir) -> list[str]:
    """Every damaged file of a run folder, as "<file>: <what is wrong>" ([] for a sound run)."""
    run_dir = Path(run_dir)
    problems = []
    for name, check in (("config.json", config_problems), ("status.json", status_problems)):
        value, problem = load_json(run_dir / name)
        if problem:
            problems.append(problem)
        elif value is not None or name == "config.json":
            problems += check(value) if value is not None else [N_("{file}: missing").format(file=name)]
    for split in ("val", "test"):
        name = f"metrics_{split}.json"
        value, problem = load_json(run_dir / name)
        problems += [problem] if problem else metrics_problems(value, name) if value is not None else []
    value, problem = load_json(run_dir / PATIENT_FILE)
    problems += [problem] if problem else patient_model_problems(value) if value is not None else []
    skipped = read_history_checked(run_dir)[1]
    if skipped:
        problems.append(N_n("{file}: {n} unreadable line skipped", "{file}: {n} unreadable lines skipped",
                            skipped).format(file="history.jsonl", n=skipped))
    return problems


def write_status(run_dir, **fields) -> dict:
    """Merge fields into status.json (plus 'updated', epoch seconds) and return the new status.

    A pid comes with its process's start time ('pid_start'), so that a later process given
    the same pid (after a reboot or a container restart) is not taken for the trainer.
    """
    status = read_status(run_dir)
    if "message" in fields:  # the msgid and values of a message, for pages (read_status)
        message = fields["message"]
        tree = i18n.to_json(message) if isinstance(message, i18n.Message) and message.plural is None else {}
        for key, name in zip(("id", "params"), MESSAGE_FIELDS):
            status.pop(name, None)
            if key in tree:
                fields[name] = tree[key]
    if "pid" in fields:
        fields["pid_start"] = process_start(fields["pid"])
    status.update(fields, updated=time.time())
    atomic_write_json(Path(run_dir) / "status.json", status)
    return status


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


def _read_capped(path, tail: int = safejson.MAX_BYTES) -> bytes:
    """The last `tail` bytes of a file (all of a small one): a log or a history of gigabytes
    is never read whole."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - tail))
        return handle.read(tail)


def log_tail(run_dir, lines: int = 20) -> str:
    """The last lines of the run's train.log, else of its console.log ("" when neither exists)."""
    for name in ("train.log", CONSOLE_LOG):
        try:
            text = _read_capped(Path(run_dir) / name, 2**16).decode("utf-8", errors="replace")
        except OSError:
            continue
        if text.strip():
            return "\n".join(text.rstrip().splitlines()[-lines:])
    return ""


def start_failure(run_dir) -> str:
    """Why a trainer process ended before it wrote its first status: the last line of its
    console output (an exception's one-line summary), or a note that it printed nothing."""
    try:
        text = _read_capped(Path(run_dir) / CONSOLE_LOG, 2**16).decode("utf-8", errors="replace")
    except OSError:
        text = ""
    last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
    return (N_("the trainer process ended before it started: {output}").format(output=last) if last
            else N_("the trainer process ended before it started, without any output"))


def is_active(run) -> bool:
    """True while the run's trainer process is alive and working (run: RunInfo or folder)."""
    status, run_dir = (run.status, run.path) if isinstance(run, RunInfo) else (read_status(run), run)
    return effective_state(status, run_dir) in ACTIVE_STATES


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
    if status.get("eta_s") is not None:
        low, high = eta_range(status["eta_s"], fraction)
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


def active_run(runs_dir) -> RunInfo | None:
    """The run whose trainer is alive in runs_dir, if any (one training job at a time)."""
    return next((run for run in list_runs(runs_dir) if run.state in ACTIVE_STATES), None)


# The metadata prior (inference.prior applies it, evaluation.patient fits it): its file and
# the check every reader of it makes.
PATIENT_FILE = "patient_model.json"
# The largest weight of the metadata against the image (evaluation.patient tries 0 to this).
PATIENT_MAX_WEIGHT = 1.5


def patient_model_problems(value, n_classes: int | None = None) -> list[str]:
    """What is wrong with a patient_model.json's content ([] when it can be used)."""
    def numbers(x) -> bool:
        return isinstance(x, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                           and math.isfinite(v) for v in x)

    if not isinstance(value, dict):
        return [N_("{file}: not a JSON object").format(file=PATIENT_FILE)]
    names, coef, intercept, prior, weight = (value.get(k) for k in ("features", "coef", "intercept", "prior", "weight"))
    wrong = []
    if not (isinstance(names, list) and {"age", "age^2", "age_known"} <= set(names)
            and all(isinstance(n, str) for n in names)):
        wrong.append("features")
    if not (numbers(prior) and len(prior) >= 2 and all(p > 0 for p in prior) and abs(sum(prior) - 1) < 1e-6):
        wrong.append("prior")
    n = len(prior) if numbers(prior) else n_classes
    if n_classes is not None and n != n_classes:
        wrong.append("prior")
    if not (numbers(intercept) and len(intercept) == n):
        wrong.append("intercept")
    if not (isinstance(coef, list) and len(coef) == n and all(numbers(row) and isinstance(names, list)
                                                             and len(row) == len(names) for row in coef)):
        wrong.append("coef")
    if not (isinstance(weight, (int, float)) and not isinstance(weight, bool) and 0 <= weight <= PATIENT_MAX_WEIGHT):
        wrong.append("weight")
    fields = ", ".join(sorted(set(wrong)))
    return [N_("{file}: {fields} missing or invalid").format(file=PATIENT_FILE, fields=fields)] if wrong else []
