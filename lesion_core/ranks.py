"""This process's place in a torchrun job: rank, world size, the process group, and sending
values between ranks. (0, 1) and plain calls when there is no job."""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from lesion_core.errors import TrainingError
from lesion_core.i18n import N_


def launched() -> bool:
    """True in a process started by torchrun (or any launcher that sets WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless a process group is running."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_batch(global_batch: int, world_size: int) -> int:
    """Each process's batch: batch_size in the config is the global batch, split evenly."""
    if global_batch % world_size:
        raise TrainingError(N_("batch_size {batch} must be a multiple of the number of processes ({n}), so that "
                               "each takes the same share").format(batch=global_batch, n=world_size))
    return global_batch // world_size


def init(device_name: str = "auto") -> torch.device:
    """Join the process group torchrun set up; returns this process's device (on CUDA the
    GPU of its local rank, whatever index device_name gives)."""
    use_cuda = device_name.partition(":")[0] in ("auto", "cuda") and torch.cuda.is_available()
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        # A slow rank (first-epoch decoding) must not time the others out; a dead one makes
        # torchrun end them all anyway.
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=30))
    return device


def broadcast(value, src: int = 0):
    """value of rank src, on every rank (any picklable object)."""
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_all(value) -> list:
    """[value of rank 0, value of rank 1, ...] on every rank."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out
