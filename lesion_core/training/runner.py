"""Running a training to its end in this process: a new run, a launched one or a resumed one,
with the device and run locks held throughout, and the run folder saying how it ended
(finished, stopped with how to continue, failed with why)."""

from __future__ import annotations

import os
import signal
import threading
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from lesion_core import locks, ranks, runs
from lesion_core.errors import LesionLabError, TrainingError, describe_os_error, require
from lesion_core.i18n import N_
from lesion_core.paths import absolute
from lesion_core.settings.device import resolve_device
from lesion_core.settings.schema import validate_config
from lesion_core.training.lock import hold_runs_folder, no_claim
from lesion_core.training.loop import StopRequested, Trainer
from lesion_core.training.ops import Diverged


def install_signal_handlers(trainer: Trainer) -> dict:
    """SIGINT/SIGTERM set the trainer's stop flag (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, trainer._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


def run_training(config: dict | None = None, runs_dir=None, resume=None, run_dir=None,
                 on_batch: Callable | None = None, on_log: Callable | None = None, trainer_cls=None) -> Path:
    """Train and return the run folder. Exactly one of: config (+ runs_dir) for a new run,
    resume (a stopped, failed or interrupted run folder), run_dir (a folder made by launch()).

    Raises TrainingError (or another LesionLabError) for bad configs, a diverging loss and
    unusable data; the run's status then says "failed" with the same message.
    """
    # The device's lock (one training per device, whatever the runs folder) is taken before
    # anything is written, the run's right after the run is claimed; both are held until the
    # end. Under torchrun, rank 0 holds them for the run.
    # The device's lock is released first, so whoever waits for the run's lock (a sweep) finds the device free.
    held, run_held, lead = ExitStack(), ExitStack(), os.environ.get("RANK", "0") == "0"

    def hold_device(config, run_dir):
        if lead:
            held.enter_context(locks.device(locks.device_name(resolve_device(config["device"])), run_dir))

    try:
        if resume is not None:
            run_dir = absolute(resume)
            hold_device(resumable_config(run_dir), run_dir)  # a refused resume writes nothing
            config, resuming = resumable_config(run_dir, claim=True), True
        elif run_dir is not None:
            run_dir, resuming = absolute(run_dir), False
            try:
                config = validate_config(runs.read_config(run_dir))
                _check_world(config)
                hold_device(config, run_dir)
            except LesionLabError as exc:  # e.g. the data folder vanished since launch()
                runs.write_status(run_dir, state="failed", message=str(exc), pid=os.getpid())
                raise
        else:
            config, resuming = validate_config(config or {}), False
            _check_world(config)
            runs_dir = absolute(runs_dir or "runs")
            hold_device(config, runs_dir)
            with hold_runs_folder(runs_dir) as runs_dir:
                run_dir = runs.create_run(runs_dir, config)
                runs.write_status(run_dir, pid=os.getpid())  # active from now on: a launch beside us is refused
        if lead:
            run_held.enter_context(locks.run(run_dir))
        trainer = (trainer_cls or Trainer)(run_dir, config, on_batch, on_log)  # under torchrun: DistributedTrainer
    except BaseException:
        held.close()
        run_held.close()
        raise
    trainer.status = runs.read_status(run_dir)
    previous = install_signal_handlers(trainer)
    try:
        trainer.run(resuming)
    except (StopRequested, KeyboardInterrupt) as where:  # KeyboardInterrupt: a second Ctrl-C
        runs.clear_stop(run_dir)
        saved = (N_("best and last weights saved (last.pt: epoch {epoch})").format(epoch=trainer.completed)
                 if trainer.completed else N_("no epoch was completed, so no weights were saved"))
        command = resume_command(run_dir, trainer.config["processes"])  # under torchrun: the world size
        message = (N_("stopped during {where}; {saved}; continue with Resume on the Train page or {command}").format(
                       where=where, saved=saved, command=command) if str(where)
                   else N_("stopped by a second interrupt; {saved}; continue with Resume on the Train page or "
                           "{command}").format(saved=saved, command=command))
        trainer.set_status(state="stopped", phase=None, message=message, eta_s=None)
        trainer.log(message)
    except Diverged as exc:
        message = N_("{error}: training diverged. Lower the learning rate (it was {lr}) and start a new run; "
                     "best weights so far are kept").format(error=exc, lr=config["optim"]["lr"])
        trainer.set_status(state="failed", phase=None, message=message, eta_s=None)
        trainer.log(message)
        raise TrainingError(message) from None
    except BaseException as exc:
        message = (str(exc) if isinstance(exc, LesionLabError) else describe_os_error(exc)
                   if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}")
        try:
            trainer.set_status(state="failed", phase=None, message=message, eta_s=None)
            trainer.log(f"failed: {message}")
        except OSError:  # the disk that failed the run is full: the one line still reaches the console
            pass
        if isinstance(exc, (LesionLabError, OSError)) or not isinstance(exc, Exception):
            raise  # already a message for the user (an OSError names its file: cli.main); or SystemExit and the like
        trainer.log(traceback.format_exc())
        # The CLI and the pages show the same one line as status.json; the traceback is in train.log.
        raise TrainingError(N_("training failed: {error} (details in {path})").format(
            error=message, path=run_dir / "train.log")) from exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        held.close()
        run_held.close()
    return run_dir


def resumable_config(run_dir: Path, claim: bool = False) -> dict:
    """The config of a run that may be resumed; TrainingError when it is running, done or
    damaged, and then nothing in the run folder has changed.

    claim: take the runs folder's one-training-at-a-time lock (as every start does) and mark
    the run active with this process's pid before releasing it.
    """
    require((run_dir / "config.json").is_file(), N_("not a run folder (no config.json): {path}").format(path=run_dir))
    with hold_runs_folder(run_dir.parent, own=run_dir) if claim else no_claim():
        info = runs.run_info(run_dir)
        damage = [p for p in info.damage if p.startswith(("config.json", "status.json"))]
        require(not damage, N_("cannot resume run {run}: {damage}; the run folder was left as it is").format(
            run=info.id, damage="; ".join(damage)))
        # launch_resume() started this process, or the torchrun that started it
        queued_for_us = info.status.get("pid") in (os.getpid(), os.getppid() if ranks.launched() else None)
        require(info.state not in runs.ACTIVE_STATES or queued_for_us,
                 N_("run {run} is still {state} (pid {pid})").format(run=info.id, state=info.state,
                                                                     pid=info.status.get("pid")))
        require(info.state != "finished",
                 N_("run {run} has already finished; start a new run instead").format(run=info.id))
        try:
            config = validate_config(info.config)
        except LesionLabError as exc:
            raise TrainingError(N_("cannot resume run {run}: its config.json is not usable: {error}").format(
                run=info.id, error=exc)) from None
        if claim:  # this process trains it
            _check_world(config)
            runs.write_status(run_dir, pid=os.getpid())  # active from now on: a launch beside us is refused
    if not queued_for_us:  # launch_resume() cleared it; a Stop pressed since, while queued, stands
        runs.clear_stop(run_dir)
    return config


def _check_world(config: dict) -> None:
    """A config for several processes trains under torchrun (launch() starts it so), not alone."""
    n = config["processes"]
    require(n == 1 or ranks.launched(), N_(
        "this run is set up for {n} processes: start it with torchrun --nproc_per_node={n} -m lesion_core train "
        "..., or from the Train page").format(n=n))


def resume_command(run_dir: Path, processes: int = 1) -> str:
    """What a user types to continue run_dir: `train --resume RUN`, through torchrun for a run
    that trains in several processes (alone, such a run is refused: _check_world)."""
    command = f"train --resume {run_dir}"
    return command if processes <= 1 else f"torchrun --nproc_per_node={processes} -m lesion_core {command}"
