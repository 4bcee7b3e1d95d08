"""A run's data as its config describes it: the dataset with its recorded split, seeding,
and the DataLoaders training and scoring read from."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from lesion_core import data, models, ranks, transforms
from lesion_core.errors import require
from lesion_core.i18n import N_
from lesion_core.settings import loading
from lesion_core.settings.device import resolve_device
from lesion_core.settings.schema import image_size


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: distinct per (seed, epoch), identical on resume."""
    return (seed * 1_000_003 + epoch) % 2**63


def _worker_init(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; derive the other RNGs from it.
    seed = torch.initial_seed() % 2**32
    transforms.use_calling_thread()
    random.seed(seed)
    np.random.seed(seed)


def collate(samples: list[dict]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images float32 (B, 3, S, S), labels int64 (B,), ids); masks are not needed to train."""
    images = torch.stack([s["image"] for s in samples])
    labels = torch.tensor([s["label"] for s in samples], dtype=torch.int64)
    return images, labels, [s["id"] for s in samples]


def _data_root(cfg: dict) -> Path:
    if cfg["root"] != "demo":
        return Path(cfg["root"])
    from lesion_core.data.demo import demo_dir

    return demo_dir()


def recorded_split(cfg: dict) -> dict | None:
    """cfg's recorded split (LesionData.to_spec()) if it still describes cfg's data settings.

    A config copied from an earlier run keeps that run's exact split, unless its root or
    split settings were changed since, which calls for a new split.
    """
    spec = cfg.get("split")
    if not spec or any(spec.get(k) != cfg.get(k) for k in ("max_size", "val_fraction", "test_fraction", "split_seed", "labels")):
        return None
    if cfg["root"] == "demo":
        return spec if Path(spec["root"]).is_dir() else dict(spec, root=str(_data_root(cfg)))
    return spec if Path(spec["root"]).resolve() == Path(cfg["root"]).resolve() else None


def load_data(config: dict, root_override=None) -> data.LesionData:
    """The run's dataset: the recorded split when it applies, else a fresh load and split.

    root_override: the same dataset at another place (it moved since training).
    """
    cfg = config["data"]
    spec = recorded_split(cfg)
    if spec:
        return data.from_spec(dict(spec, root=str(root_override or spec["root"])))
    root = root_override or _data_root(cfg)
    return data.load_dataset(root, class_names=cfg["class_names"], max_size=cfg["max_size"],
                             val_fraction=cfg["val_fraction"], test_fraction=cfg["test_fraction"],
                             split_seed=cfg["split_seed"], labels=cfg["labels"])


def make_loader(records, spec, config: dict, shuffle: bool, generator=None, shard: bool = True) -> DataLoader:
    """A DataLoader of (images, labels, ids) batches from records through the finalised spec.

    Under torchrun (shard=True) each process loads its share (loading.SeededSampler)."""
    entry = models.MODELS[config["model"]["name"]]
    size = image_size(config)
    pipeline = transforms.build_pipeline(transforms.finalize_spec(spec, size, entry.mean, entry.std))
    max_side = config["max_side"] or round(size * 8 / 7)
    dataset = data.LesionDataset(records, transform=pipeline, max_side=max_side)
    # A last training batch of one sample breaks BatchNorm; drop it only in that case.
    rank, world = ranks.rank_and_world() if shard else (0, 1)
    batch = ranks.local_batch(config["batch_size"], world)
    share = -(-len(records) // world)
    drop_last = shuffle and share % batch == 1 and share > 1
    device = resolve_device(config["device"])
    sampler = loading.SeededSampler(len(records), shuffle, generator, rank, world)
    return DataLoader(loading.SeededSamples(dataset), batch_size=batch, sampler=sampler, drop_last=drop_last,
                      collate_fn=collate, worker_init_fn=_worker_init,
                      **loading.loader_options(loading.resolve_num_workers(config["num_workers"], device, world), device))


def class_weights(config: dict, labels: list[int], n_classes: int) -> torch.Tensor | None:
    """Cross-entropy weights: inverse class frequency ("auto": N / (C * n_c)), a list, or None."""
    value = config["class_weights"]
    if value in ("none", False, None):
        return None
    if isinstance(value, list):
        require(len(value) == n_classes, N_("class_weights has {n} values for {classes} classes").format(
            n=len(value), classes=n_classes))
        return torch.tensor(value, dtype=torch.float32)
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)
