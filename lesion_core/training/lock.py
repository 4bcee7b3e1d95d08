"""The runs folder's one-training-at-a-time lock, held by every start (launch, resume, the
trainer itself)."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from lesion_core import runs
from lesion_core.errors import TrainingError
from lesion_core.i18n import N_


@contextmanager
def no_claim():
    yield None


@contextmanager
def hold_runs_folder(runs_dir: Path, own: Path | None = None):
    """Refuse if a run in runs_dir is active, else hold an exclusive lock on the folder until
    the caller's new run is marked active (a pid in its status), so that two launches at the
    same moment (two browser tabs, a tab and a terminal) cannot both pass the check.

    own: the run being resumed (launch_resume may already have marked it queued for us)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(runs_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
        own = own.resolve() if own is not None else None
        active = next((run for run in runs.list_runs(runs_dir)
                       if run.state in runs.ACTIVE_STATES and run.path.resolve() != own), None)
        if active is not None:
            raise TrainingError(N_("run {run} is still {state}: one training at a time; stop it first").format(
                run=active.id, state=active.state))
        yield runs_dir
    finally:
        os.close(fd)
