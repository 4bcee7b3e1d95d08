"""Errors a user can act on. The CLI prints them as one line, the pages as st.error."""

from lesion_core.i18n import N_


class LesionLabError(Exception):
    """Base class: the message is meant for the user and says what to do."""


class DataError(LesionLabError):
    """A dataset, image, mask or CSV that cannot be used."""


class UnsafeArchiveError(DataError):
    """A ZIP that would escape its folder or is a zip bomb; nothing was written."""


class TransformError(LesionLabError):
    """A bad pipeline spec or a transform that cannot apply (e.g. it needs a mask)."""


class ModelError(LesionLabError):
    """Unknown model, weights that cannot be loaded, an untrusted checkpoint."""


class TrainingError(LesionLabError):
    """A run that cannot start or had to stop (NaN loss, bad option)."""


def require(ok: bool, message: str) -> None:
    """TrainingError(message) unless ok: a config check in one line."""
    if not ok:
        raise TrainingError(message)


def describe_os_error(exc: OSError) -> str:
    """One line naming the path and the problem of an OSError (read-only folder, full disk,
    a file where a folder is needed), for the CLI and the pages instead of a traceback."""
    path = exc.filename if exc.filename is not None else N_("a file")
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        problem = N_("a file is in the way (a folder is needed there)")
    elif isinstance(exc, PermissionError):
        problem = N_("permission denied (a read-only folder or another user's file?)")
    elif exc.errno == 28:  # ENOSPC
        problem = N_("no space left on the device; free some space and try again")
    elif exc.errno == 30:  # EROFS
        problem = N_("the file system is read-only")
    else:
        problem = exc.strerror or str(exc)
    return N_("cannot write or read {path}: {problem}").format(path=path, problem=problem)
