"""DataLoader settings that keep any device busy: worker count, sampling, per-sample seeds.

Every sample's augmentation is drawn from its own seed, (epoch seed, index), not from the
worker that happens to load it. So the same config and seed give the same batches whatever
``num_workers`` is, whether workers persist from one epoch to the next, and however many
processes share the work under torchrun: a 2-process run sees the images of a 1-process run
with the same global batch, augmented alike (tests/test_distributed.py relies on it).
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import Dataset, Sampler

# More workers than this rarely help one GPU and each one holds a copy of the dataset's state.
MAX_AUTO_WORKERS = 8


def cpu_count() -> int:
    """CPU cores this process may run on (the affinity mask, e.g. under taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_num_workers(value, device: torch.device, world_size: int = 1) -> int:
    """num_workers "auto" -> 0 on a CPU-only machine with 1-2 cores (workers there compete with
    the model: MEASUREMENTS.md), else the cores left per process minus one for it, at most
    MAX_AUTO_WORKERS; an int is taken as given."""
    if value != "auto":
        return int(value)
    cores = max(1, cpu_count() // max(1, world_size))
    if device.type == "cpu" and cores <= 2:
        return 0
    return max(0, min(cores - 1, MAX_AUTO_WORKERS))


def sample_seed(epoch_seed: int, index: int) -> int:
    """The seed of one sample's augmentation in one epoch."""
    return (epoch_seed * 1_000_003 + index) % 2**63


class SeededSampler(Sampler):
    """Yields (seed, index) pairs: the epoch's order (a permutation drawn from generator when
    shuffling, else 0..n-1) and a seed per sample, both drawn afresh each time it is iterated.

    With world_size > 1 the process of rank ``rank`` gets every world_size-th item, the order
    first padded by repeating its start so that every rank gets the same number (and so the
    same number of batches: ranks meet in collectives batch by batch)."""

    def __init__(self, n: int, shuffle: bool, generator: torch.Generator | None = None,
                 rank: int = 0, world_size: int = 1):
        self.n, self.shuffle, self.generator = n, shuffle, generator
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return -(-self.n // self.world_size)

    def __iter__(self):
        if self.shuffle:
            epoch_seed = int(torch.randint(2**62, (1,), generator=self.generator))
            order = torch.randperm(self.n, generator=self.generator).tolist()
        else:
            epoch_seed, order = 0, list(range(self.n))
        if self.world_size > 1 and order:
            total = len(self) * self.world_size
            order = (order * (total // len(order) + 1))[:total]
            order = order[self.rank::self.world_size]
        return iter([(sample_seed(epoch_seed, i), i) for i in order])


class SeededSamples(Dataset):
    """dataset[(seed, index)]: dataset[index] with torch's RNG seeded by seed for the call (the
    caller's RNG state is restored after, so a main-process loader leaves dropout alone)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        seed, index = key
        state = torch.get_rng_state()
        torch.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            torch.set_rng_state(state)


def loader_options(num_workers: int, device: torch.device) -> dict:
    """DataLoader keyword arguments for a loader feeding device: workers that persist between
    epochs and prefetch, pinned memory for asynchronous copies to a CUDA device."""
    options = {"num_workers": num_workers, "pin_memory": device.type == "cuda"}
    if num_workers > 0:
        options.update(persistent_workers=True, prefetch_factor=4)
    return options
