"""What a student reads: the layer table, mask overlays, figure layouts."""

from __future__ import annotations

import numpy as np
import pytest

from lesion_core import models, plots, transforms


@pytest.mark.parametrize("name", ["lenet", "efficientnet_lite0"])
def test_layer_tree_shows_the_whole_hierarchy_and_its_counts_add_up(name):
    model = models.build_model(name, 3, weights="random")
    rows = models.layer_tree(model, models.MODELS[name].min_input_size)
    total = sum(p.numel() for p in model.parameters())
    assert sum(row["own"] for row in rows) == total
    assert rows[0]["name"] == "(whole model)" and rows[0]["parameters"] == total
    if name == "efficientnet_lite0":  # blocks inside blocks, each with its own row
        assert max(row["depth"] for row in rows) >= 3
        block = next(row for row in rows if row["name"] == "_blocks.0")
        inside = [row for row in rows if row["name"].startswith("_blocks.0.")]
        assert block["parameters"] == sum(row["own"] for row in inside) > 0


def test_shapes_in_plain_words():
    assert models.shape_in_words([1, 6, 28, 28]) == "6 feature maps of 28 x 28"
    assert models.shape_in_words([2, 3]) == "3 values"
    assert models.shape_in_words([1, 1, 5, 5]) == "1 feature map of 5 x 5"
