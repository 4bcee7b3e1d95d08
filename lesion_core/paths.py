"""Where Lesion Lab keeps what it generates (caches, runs), and how it writes files: atomically."""

from __future__ import annotations

import os
import re
import secrets
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


def uploads_dir() -> Path:
    """Where uploaded dataset ZIPs are unpacked: one <name>-<content hash> folder each."""
    return cache_dir() / "uploads"


def upload_relative(root) -> str | None:
    """An uploaded dataset's root relative to uploads_dir() ("mydata-1a2b3c4d5e/data"), or None
    when root is not an upload: what a link says instead of the server's cache path."""
    try:
        return Path(root).relative_to(uploads_dir()).as_posix()
    except ValueError:
        return None


def dataset_name(root) -> str:
    """How the user named a dataset: its folder's name, or an uploaded ZIP's own name ("mydata"
    for mydata.zip, not the folder under uploads_dir() that holds its contents)."""
    relative = upload_relative(root) if root else None
    if relative:
        return re.sub(r"-[0-9a-f]{10}$", "", relative.split("/")[0])
    return Path(root).name or str(root)


def runs_dir() -> Path:
    """Default folder of training runs ($LESION_LAB_RUNS, else ./runs), absolute."""
    path = absolute(os.environ.get("LESION_LAB_RUNS") or "runs")
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_temp_file(folder, name: str, suffix: str = ".tmp") -> tuple[int, Path]:
    """(fd, path) of a new, empty file in folder named after `name`, opened for writing.

    Created with mode 0o666 less the process umask, as open() gives any file (mkstemp's
    owner-only 0o600 would hide run files from a dashboard running as another user), without
    reading the umask: os.umask can only be read by setting it, process-wide, which races
    with the other threads of the server.
    """
    folder = Path(folder)
    for _ in range(100):
        path = folder / f".{name}.{secrets.token_hex(6)}{suffix}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name for {name} in {folder}")


def atomic_write_bytes(path, data: bytes) -> None:
    """Write data to path through a temporary file in the same folder and os.replace."""
    path = Path(path)
    fd, tmp = new_temp_file(path.parent, path.name)
    try:
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
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write UTF-8 text atomically (temp file + rename in the same folder)."""
    atomic_write_bytes(path, text.encode("utf-8"))
