"""Locks the operating system releases when their process dies: who trains a run, who trains on a device.

A pid in status.json says which process claimed a run, but a pid proves little: pid 1 exists,
pids are reused, and a file can say anything. A trainer therefore holds an flock on
<run>/trainer.lock for as long as it trains; a run whose status says running while nobody
holds that lock is not being trained (runs.effective_state). And one training per device holds
across runs folders: the trainer holds <cache>/locks/train-<device>.lock, which names its run.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from lesion_core.errors import TrainingError
from lesion_core.i18n import N_
from lesion_core.paths import cache_dir

RUN_LOCK = "trainer.lock"


def device_lock_path(device: str) -> Path:
    safe = "".join(c if c.isalnum() else "-" for c in device)
    return cache_dir() / "locks" / f"train-{safe}.lock"


def held(path) -> bool:
    """True while some process holds the flock on path (False when the file does not exist)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the lock taken just now
    return False


def _written(path) -> tuple[int | None, str]:
    """(pid, note) the holder of a lock file wrote into it; (None, "") when unreadable."""
    try:
        pid, _, note = Path(path).read_text(encoding="utf-8", errors="replace").partition("\n")
        return int(pid), note.strip()[:300]
    except (OSError, ValueError):
        return None, ""


def holder(path) -> str:
    """What the holder of a lock file wrote into it (its run folder), "" when unreadable."""
    return _written(path)[1]


ORPHAN_WAIT_S = 15.0  # DataLoader workers of a killed trainer keep its locks until they notice (~5 s)


def _take(fd, path) -> bool:
    """Take the flock on fd; when its holder (the pid written in the file) is dead, the lock is
    held only by that trainer's orphaned children (forked DataLoader workers inherit it): wait
    for them to exit, up to ORPHAN_WAIT_S. False when a live process holds it."""
    import time


    deadline = time.monotonic() + ORPHAN_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pid = _written(path)[0]
            if (pid is not None and pid_alive(pid)) or time.monotonic() > deadline:
                return False
            time.sleep(0.2)


@contextmanager
def hold(path, note: str, busy):
    """Hold the flock on path (created if needed, note written into it) for the with block;
    TrainingError(busy(what the holder wrote)) when another process holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _take(fd, path):
            raise TrainingError(busy(holder(path) or "?"))
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{note}\n".encode())
        yield
    finally:
        os.close(fd)


def run_busy(run_dir) -> bool:
    """True while a trainer holds the run folder's lock."""
    return held(Path(run_dir) / RUN_LOCK)


def check_device_free(device: str) -> None:
    """TrainingError when a training holds the device (asked before a run folder is made)."""

    path = device_lock_path(device)
    pid = _written(path)[0]
    if held(path) and (pid is None or pid_alive(pid)):  # a dead holder's orphans: the trainer waits for them
        raise TrainingError(DEVICE_BUSY.format(device=device, holder=holder(path) or "?"))


DEVICE_BUSY = N_("another training is using {device} (run {holder}): one training per device; wait for it or stop it")


def device_name(device) -> str:
    """The lock's name of a torch device: "cpu", "cuda:0", "mps"."""
    device = str(device)
    return "cuda:0" if device == "cuda" else device


@contextmanager
def device(name: str, run_dir):
    """Held by the process that trains run_dir on device name, for as long as it trains."""
    with hold(device_lock_path(name), str(run_dir), lambda who: DEVICE_BUSY.format(device=name, holder=who)):
        yield


@contextmanager
def run(run_dir):
    """Held by the process that trains run_dir, for as long as it trains."""
    with hold(Path(run_dir) / RUN_LOCK, "", lambda who: RUN_BUSY.format(run=Path(run_dir).name,
                                                                      holder=_written(Path(run_dir) / RUN_LOCK)[0])):
        yield


RUN_BUSY = N_("run {run} is being trained by another process (pid {holder})")


# ---------------------------------------------------------------- processes


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
