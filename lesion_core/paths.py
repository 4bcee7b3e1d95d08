"""Where Lesion Lab keeps what it generates (caches, runs), and how it writes files: atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def absolute(path) -> Path:
    """path made absolute against the current directory (~ expanded), without following links.

    Every path a user gives (flags, environment variables, page boxes) goes through this once,
    where it enters: a relative path means relative to where the user started, and must not
    change meaning in a process started elsewhere (the trainer runs in its run folder).
    """
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def cache_dir() -> Path:
    """Root of generated, re-creatable files ($LESION_LAB_CACHE, else ~/.cache/lesion_lab)."""
    path = absolute(os.environ.get("LESION_LAB_CACHE") or Path.home() / ".cache" / "lesion_lab")
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Default folder of training runs ($LESION_LAB_RUNS, else ./runs), absolute."""
    path = absolute(os.environ.get("LESION_LAB_RUNS") or "runs")
    path.mkdir(parents=True, exist_ok=True)
    return path


# mkstemp creates files readable by their owner only; give our files the usual umask mode
# so that a dashboard running as another user can read them.
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def atomic_write_bytes(path, data: bytes) -> None:
    """Write data to path through a temporary file in the same folder and os.replace."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is not None:
            raise
        # a write into a full disk names no file: name the one being written
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write UTF-8 text atomically (temp file + rename in the same folder)."""
    atomic_write_bytes(path, text.encode("utf-8"))
