"""A dataset as a table: one row per usable sample, for browsing and filtering."""

from __future__ import annotations

import pandas as pd
from PIL import Image

from lesion_core.data.records import META_COLUMNS, LesionData


def sample_frame(dataset: LesionData, sizes: list[tuple[int, int]] | None = None):
    """One row per usable sample: id, label, class, split, width, height, mask (yes/no), and
    group, age, sex, site where the dataset has them. sizes: image_sizes() of the records, when
    the caller keeps them."""
    records = dataset.records
    sizes = image_sizes([r.image_path for r in records]) if sizes is None else sizes
    frame = pd.DataFrame({
        "id": [r.id for r in records],
        "label": [r.label for r in records],
        "class": [dataset.class_names[r.label] for r in records],
        "split": [r.split for r in records],
        "width": [w for w, _ in sizes],
        "height": [h for _, h in sizes],
        "mask": [r.mask_path is not None for r in records],
    })
    for column in ("group",) + META_COLUMNS:
        values = [r.group if column == "group" else r.meta.get(column, "") for r in records]
        if any(values):
            frame[column] = pd.to_numeric(values, errors="coerce") if column == "age" else values
    return frame


def image_sizes(image_paths) -> list[tuple[int, int]]:
    """(width, height) of each image, read from the file headers only."""
    sizes = []
    for path in image_paths:
        with Image.open(path) as image:
            sizes.append(image.size)
    return sizes
