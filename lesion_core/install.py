"""Whether the code running now is the code a child process will run.

The trainer and sweeps run `python -m lesion_core` as their own processes, in other folders
(a run's folder): they find only the copy installed in this Python (`pip install -e .`), not
the checkout an app or a test was started from. Starting one from an uninstalled or a
different copy would fail in the child, or silently run other code; this says so first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lesion_core
from lesion_core.errors import TrainingError
from lesion_core.i18n import N_

_FIND = "import importlib.util as u; s = u.find_spec('lesion_core'); print(s.origin if s else '')"


def child_package(cwd) -> Path | None:
    """The lesion_core folder that `python -m lesion_core` started in cwd imports, or None."""
    found = subprocess.run([sys.executable, "-c", _FIND], cwd=cwd, capture_output=True, text=True,
                           timeout=60, check=False).stdout.strip()
    return Path(found).resolve().parent if found else None


def require_installed(cwd) -> None:
    """TrainingError unless a child started in cwd runs this very copy of lesion_core."""
    here = Path(lesion_core.__file__).resolve().parent
    found = child_package(cwd)
    if found is None:
        raise TrainingError(N_("Lesion Lab is not installed in this Python ({python}), so the trainer cannot "
                               "start in its run folder; install it once with: pip install -e {checkout}").format(
            python=sys.executable, checkout=here.parent))
    if found != here:
        raise TrainingError(N_("the Lesion Lab installed in this Python ({found}) is not the one running "
                               "({here}); install this one with: pip install -e {checkout}").format(
            found=found, here=here, checkout=here.parent))
