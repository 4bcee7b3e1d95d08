"""Batches exactly as a run's loader would deliver them, for the pages to show: one shuffled,
seeded batch with the normalisation undone, and the shapes a real batch takes through a model."""

from __future__ import annotations

import torch

from lesion_core import models, transforms
from lesion_core.errors import DataError
from lesion_core.settings.loaders import make_loader
from lesion_core.settings.schema import default_config, merge_config


def _first_batch(records: list, spec: list, config: dict, shuffle: bool, generator=None) -> tuple:
    """The first (images, labels, ids) batch settings.make_loader gives for records; DataError
    when there are none (a dataset of val or test images only has an empty train split)."""

    if not records:
        raise DataError("the training split is empty: this dataset has no training images to show")
    return next(iter(make_loader(records, spec, config, shuffle=shuffle, generator=generator)))


def loader_batch(records: list, spec: list, config: dict, seed: int = 0) -> tuple:
    """One shuffled batch exactly as training would see it: settings.make_loader (the spec
    finalised for the config's model: fixed size, ToTensor, its Normalize), seeded.

    Returns (images uint8 (N, H, W, 3) with the normalisation undone, labels list[int], ids).
    """
    entry = models.MODELS[config["model"]["name"]]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        images, labels, ids = _first_batch(records, spec, config, True, torch.Generator().manual_seed(seed))
    return transforms.denormalize(images, entry.mean, entry.std), labels.tolist(), list(ids)


def batch_config(model_name: str, image_size: int, batch_size: int = 16) -> dict:
    """A training config for showing batches: the default recipe with this model and size."""

    return merge_config(default_config(), {
        "model": {"name": model_name}, "image_size": image_size, "batch_size": batch_size})


def real_batch_shapes(model, records: list, model_name: str, size: int) -> tuple:
    """(input shape, output shape) of one real 4-image batch of records through the model."""
    config = batch_config(model_name, size, batch_size=4)
    images, _labels, _ids = _first_batch(records, transforms.preset("eval", size), config, False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(images)
    finally:
        model.train(was_training)
    return tuple(images.shape), tuple(output.shape)
