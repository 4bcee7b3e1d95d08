"""Starting a training as its own process: one training per runs folder at a time (a lock),
the detached trainer command, resuming a stopped run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lesion_core import locks, runs
from lesion_core.i18n import N_
from lesion_core.install import require_installed
from lesion_core.paths import absolute
from lesion_core.settings.device import resolve_device
from lesion_core.settings.schema import validate_config
from lesion_core.training.lock import hold_runs_folder
from lesion_core.training.runner import resumable_config


def launch(config: dict, runs_dir) -> Path:
    """Validate, create the run folder, start a detached trainer process and return at once.

    The trainer is `python -m lesion_core train --run-dir <run>` in its own session (a page
    reload or a closed terminal does not kill it), started through torchrun when the config
    asks for several processes; its console output goes to console.log, its progress to the
    run folder.
    """
    config = validate_config(config)
    locks.check_device_free(locks.device_name(resolve_device(config["device"])))  # the trainer holds it
    with hold_runs_folder(absolute(runs_dir)) as runs_dir:
        require_installed(runs_dir)  # before the run folder exists: a refused launch leaves nothing
        run_dir = runs.create_run(runs_dir, config)
        _start_detached(run_dir, "--run-dir", config["processes"])
    return run_dir


def launch_resume(run_dir) -> Path:
    """Continue a stopped, failed or interrupted run in a detached `train --resume` process."""
    run_dir = absolute(run_dir)
    config = resumable_config(run_dir)  # refuses running and finished runs now, not in the child
    locks.check_device_free(locks.device_name(resolve_device(config["device"])))
    require_installed(run_dir)
    with hold_runs_folder(run_dir.parent):
        _start_detached(run_dir, "--resume", config["processes"])
    return run_dir




def trainer_command(run_dir: Path, flag: str, processes: int = 1) -> list[str]:
    """The command that trains run_dir: `python -m lesion_core train <flag> <run_dir>`, under
    torchrun (one machine, `processes` workers) when processes > 1."""
    command = [sys.executable, "-m", "lesion_core", "train", flag, str(run_dir)]
    if processes > 1:
        command[1:2] = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m"]
    return command


def _start_detached(run_dir: Path, flag: str, processes: int = 1) -> None:
    """Start the trainer_command in its own session; mark the run queued with its pid (under
    torchrun, torchrun's: rank 0, its child, takes over the status).

    The child runs in the run folder, so run_dir must be absolute (a relative one would
    name runs/<id>/runs/<id> there).
    """
    run_dir = absolute(run_dir)
    with open(run_dir / "console.log", "ab") as console:
        process = subprocess.Popen(
            trainer_command(run_dir, flag, processes),
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=run_dir)
    # The pid makes the run active at once, before the child has even imported torch.
    runs.write_status(run_dir, state="queued", pid=process.pid, message=N_("waiting for the trainer to start"))
