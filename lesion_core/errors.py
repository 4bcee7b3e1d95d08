"""Errors a user can act on. The CLI prints them as one line, the pages as st.error."""


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
