"""Training one run on several processes (GPUs, machines) with torchrun and DDP.

    torchrun --nproc_per_node=N -m lesion_core train --data DIR --out runs ...

torchrun starts N copies of the command; each learns its rank from the environment
(RANK, WORLD_SIZE, LOCAL_RANK). Rank 0 runs training.run_training as a single process would: it
creates (or resumes) the run folder and alone writes to it. The other ranks train on their
share of every batch in a private scratch folder, deleted at the end, so that the trainer's
own code, which writes as it goes, needs no rank checks; rank 0 sends them its config and, on
resume, last.pt over the process group (they may be on other machines). They stay identical
to rank 0: DDP averages the gradients, every process draws the same shuffle and the same per-sample
augmentation seeds (loading.SeededSampler), and phase results are gathered, so each
validation and test image is scored exactly once, by whichever process loaded it.

A stop request (the stop file, or SIGTERM/SIGINT, which torchrun forwards to every process)
is shared with one all-reduce every STOP_CHECK_EVERY batches, so all ranks stop at the same
batch. Backends: NCCL with one GPU per process, else gloo (CPU).
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from lesion_core import runs
from lesion_core.ranks import broadcast, gather_all, init, local_batch, rank_and_world
from lesion_core.settings.schema import validate_config
from lesion_core.training.loop import StopRequested, Trainer
from lesion_core.training.runner import install_signal_handlers, run_training

# Batches between two checks for a stop request: one tiny all-reduce, so the check costs
# nothing, and a stop takes effect within a few batches.
STOP_CHECK_EVERY = 4

# What a rank > 0 needs from rank 0's run folder to train (and resume) alongside it: best.pt
# too, since a resumed run whose last epochs never beat it scores that checkpoint at the end.
RUN_FILES = ("config.json", "status.json", "history.jsonl", "last.pt", "best.pt")


class DistributedTrainer(Trainer):
    """Trainer whose model is wrapped in DDP, whose phase results are gathered from
    every rank, and whose stop requests reach every rank."""

    def setup(self, resuming: bool) -> int:
        rank, world = rank_and_world()
        if rank == 0:  # the others get the run's files (they may be on other machines)
            files = {name: (self.run_dir / name).read_bytes() for name in RUN_FILES
                     if (self.run_dir / name).is_file()}
            broadcast((str(self.run_dir), resuming, files))
        first = super().setup(resuming)
        self.config["processes"] = world  # what Resume on the Train page starts again
        self.config["resolved"].update(world_size=world, global_batch=self.config["batch_size"],
                                       local_batch=local_batch(self.config["batch_size"], world),
                                       backend=dist.get_backend())
        runs.atomic_write_json(self.run_dir / "config.json", self.config)
        self._checks = 0
        return first

    def _build_model(self):
        if self.device.type == "cuda":  # "cuda" alone would mean GPU 0 on every rank
            self.device = torch.device("cuda", torch.cuda.current_device())
        info = super()._build_model()
        ids = [self.device.index] if self.device.type == "cuda" else None
        # DDP takes the (compiled or plain) model; checkpoints keep using self.model.
        # freeze_epochs: the backbone gets no gradients in the first epochs, which DDP must expect.
        self.train_model = DistributedDataParallel(self.train_model, device_ids=ids,
                                                   find_unused_parameters=self.config["freeze_epochs"] > 0)
        return info

    def _phase(self, phase, epoch, lr):
        row = super()._phase(phase, epoch, lr)
        if phase == "train":  # BatchNorm statistics as rank 0 has them, so ranks evaluate alike
            for model in (self.model,) if self.eval_model is self.model else (self.model, self.eval_model):
                for buffer in model.buffers():
                    dist.broadcast(buffer.data, 0)
        return row

    def _should_stop(self) -> bool:
        self._checks += 1
        if self._checks % STOP_CHECK_EVERY:
            return False
        flag = torch.tensor([int(super()._should_stop())], dtype=torch.int32)
        if dist.get_backend() == "nccl":
            flag = flag.to(self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _merge(self, loss_total, labels, probs, ids):
        seen, total, keep_labels, keep_probs = set(), 0.0, [], []
        for part_loss, part_labels, part_probs, part_ids in gather_all((loss_total, labels, probs, ids)):
            total += part_loss
            for i, sid in enumerate(part_ids):
                if sid not in seen:  # the padding that evens out the shares repeats a few
                    seen.add(sid)
                    keep_labels.append(part_labels[i])
                    keep_probs.append(part_probs[i])
        return total, torch.stack(keep_labels), torch.stack(keep_probs)

    def _merge_predictions(self, records, ids, labels, probs):
        by_id = {}
        for part_ids, part_labels, part_probs in gather_all((ids, labels, probs)):
            for i, sid in enumerate(part_ids):
                by_id.setdefault(sid, (part_labels[i], part_probs[i]))
        order = [r.id for r in records]  # the single-process order
        return (order, torch.tensor([int(by_id[s][0]) for s in order]).numpy(),
                torch.stack([torch.as_tensor(by_id[s][1]) for s in order]).numpy())


def train(config: dict | None = None, runs_dir=None, resume=None, run_dir=None, on_batch=None,
          on_log=None) -> Path:
    """training.run_training on every rank of a torchrun job; returns the run folder (rank 0's).
    config (+ runs_dir) for a new run, resume for a run to continue, run_dir for launch()'s folder."""
    init(_device_name(config, resume or run_dir))
    rank, world = rank_and_world()
    trainer_cls = DistributedTrainer
    try:
        if rank == 0:
            return run_training(config, runs_dir, resume=resume, run_dir=run_dir, on_batch=on_batch,
                                         on_log=on_log, trainer_cls=trainer_cls)
        return _follow(trainer_cls)
    finally:
        dist.destroy_process_group()


def _device_name(config: dict | None, run_dir) -> str:
    """The device a job trains on, known before the process group exists: the config's, or the
    run folder's when this machine has it (the other machines of a multi-node job may not)."""
    # {} for a missing or damaged config.json: rank 0 names what is wrong with the folder
    device = (config if config is not None else runs.read_config(run_dir)).get("device", "auto")
    return device if isinstance(device, str) else "auto"


def _follow(trainer_cls) -> Path:
    """A rank > 0: train alongside rank 0 with a scratch copy of its run folder."""
    from lesion_core import runs
    run_dir, resuming, files = broadcast(None)
    run_dir = Path(run_dir)
    scratch = Path(tempfile.mkdtemp(prefix=f"lesion-rank{dist.get_rank()}-"))
    try:
        for name, content in files.items():
            (scratch / name).write_bytes(content)
        config = validate_config(runs.read_config(scratch))
        trainer = trainer_cls(scratch, config)
        trainer.status = runs.read_status(scratch)
        handlers = install_signal_handlers(trainer)
        try:
            trainer.run(resuming)
        except StopRequested:
            pass  # rank 0 records the stop
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return run_dir
