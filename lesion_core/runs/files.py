"""Run folders: the only place training state lives.

runs/<run-id>/ holds config.json, status.json, history.jsonl, best.pt, last.pt,
predictions_<split>.csv, metrics_<split>.json and train.log. Every file is written to a
temporary file in the same folder and renamed into place, so a reader (the UI, another
process) never sees half a file and a killed trainer never leaves a corrupt one.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from lesion_core import safejson
from lesion_core.locks import process_start
from lesion_core import i18n
from lesion_core.i18n import N_, N_n
from lesion_core.metrics import to_jsonable
from lesion_core.paths import atomic_write_text

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


def read_capped(path, tail: int = safejson.MAX_BYTES) -> bytes:
    """The last `tail` bytes of a file (all of a small one): a log or a history of gigabytes
    is never read whole."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - tail))
        return handle.read(tail)


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
        lines = read_capped(path).decode("utf-8", errors="replace").splitlines()
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
    # The msgid and values of the message, for pages (read_status): written again with every
    # update, since read_status hands them back inside the message, not as fields.
    message = fields.get("message", status.get("message"))
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
