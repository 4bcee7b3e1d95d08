"""What a student reads: the layer table and figure layouts (the overlay is in test_transforms)."""

from __future__ import annotations

import numpy as np
import torch
import pytest

from lesion_core import models, plots


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


NAMES = ["nevus", "melanoma", "seborrheic keratosis"]
HISTORY = [{"epoch": e, "phase": p, "loss": 1 / e, "mean_auc": 0.6, "auc": {"melanoma": 0.6}}
           for e in (1, 2) for p in ("train", "val")]
FIGURES = {
    "class_distribution": lambda: plots.class_distribution({"train": {"nevus": 3}}, NAMES),
    "loss_curves": lambda: plots.loss_curves(HISTORY),
    "auc_curves": lambda: plots.auc_curves(HISTORY, NAMES),
    "overlay_curves": lambda: plots.overlay_curves({"run-a": HISTORY, "run-b": HISTORY}, "val", "loss", "Loss"),
    "confusion_heatmap": lambda: plots.confusion_heatmap(np.eye(3), NAMES),
    "roc_curves": lambda: plots.roc_curves({0: {"fpr": [0, 1], "tpr": [0, 1]}}, [0.5, None, None], NAMES),
    "precision_recall_bars": lambda: plots.precision_recall_bars([0.5] * 3, [0.5] * 3, NAMES),
    "probability_bars": lambda: plots.probability_bars([0.2, 0.3, 0.5], NAMES),
}


@pytest.mark.parametrize("name", FIGURES)
def test_figures_keep_axis_titles_and_legend_clear_of_the_data_at_half_of_900_px(name):
    """Axis titles get the margin they need and the legend is a row under the plot: beside it,
    a legend of long run ids squeezed a 450 px wide plot into a strip (checked in a browser)."""
    fig = FIGURES[name]()
    assert fig.layout.xaxis.automargin is True and fig.layout.yaxis.automargin is True
    assert fig.layout.margin.autoexpand is not False
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.y < 0 and legend.yanchor == "top"


def test_layer_tree_leaves_batchnorm_statistics_and_the_mode_alone():
    model = models.build_model("resnet18", 3, weights="random").train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    before = [n.running_mean.clone() for n in norms]
    models.layer_tree(model, 32)
    assert norms
    assert model.training
    for norm, mean in zip(norms, before):
        assert torch.equal(norm.running_mean, mean)
