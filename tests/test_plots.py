"""Figures and images from plain data, checked without Streamlit."""

from __future__ import annotations

import math


from lesion_core import plots

NAMES = ("nevus", "melanoma", "seborrheic keratosis")


def test_class_distribution_has_one_bar_trace_per_split_in_order():
    counts = {"test": {"nevus": 1}, "train": {"nevus": 5, "melanoma": 2, "seborrheic keratosis": 3},
              "val": {0: 1, 1: 1}}
    fig = plots.class_distribution(counts, NAMES)
    assert [t.name for t in fig.data] == ["train", "val", "test"]
    assert list(fig.data[0].y) == [5, 2, 3]
    assert list(fig.data[1].y) == [1, 1, 0]  # integer class keys map to names
    assert list(fig.data[2].y) == [1, 0, 0]


HISTORY = [
    {"epoch": 1, "phase": "train", "loss": 1.0},
    {"epoch": 1, "phase": "val", "loss": 1.2, "mean_auc": 0.6, "auc": {"melanoma": 0.5, "nevus": 0.9}},
    {"epoch": 2, "phase": "train", "loss": 0.8},
    {"epoch": 2, "phase": "val", "loss": float("nan"), "mean_auc": 0.7, "auc": {"melanoma": None}},
]


def test_loss_curves_draw_train_and_val_and_skip_undefined_values():
    train, val = plots.loss_curves(HISTORY).data
    assert list(train.x) == [1, 2] and list(train.y) == [1.0, 0.8]
    assert list(val.x) == [1] and list(val.y) == [1.2]  # NaN at epoch 2 is left out
    assert (train.name, val.name) == ("train loss", "val loss")


def test_auc_curves_show_the_scored_classes_and_their_mean():
    fig = plots.auc_curves(HISTORY, NAMES)
    assert [t.name for t in fig.data] == ["melanoma AUC", "seborrheic keratosis AUC", "mean AUC"]
    assert list(fig.data[0].y) == [0.5]  # nested auc values; None at epoch 2 skipped
    assert list(fig.data[1].y) == []  # never reported
    assert list(fig.data[2].y) == [0.6, 0.7]


def test_history_value_reads_nested_keys():
    assert plots.history_value(HISTORY[1], "auc/nevus") == 0.9
    assert plots.history_value(HISTORY[0], "auc/nevus") is None


def test_overlay_curves_has_one_line_per_run():
    fig = plots.overlay_curves({"a": HISTORY, "b": HISTORY[:2]}, "val", "mean_auc", "AUC")
    assert [t.name for t in fig.data] == ["a", "b"]
    assert list(fig.data[1].y) == [0.6]


def test_overlay_curves_keep_a_bounded_metric_on_its_scale():
    # a run at AUC 1.0 every epoch (the demo) drew an axis from 0 to 2
    perfect = [{"epoch": e, "phase": "val", "mean_auc": 1.0, "loss": 0.1 / e} for e in (1, 2, 3)]
    assert list(plots.overlay_curves({"a": perfect}, "val", "mean_auc", "AUC").layout.yaxis.range) == [0, 1.02]
    assert plots.overlay_curves({"a": perfect}, "val", "loss", "Loss").layout.yaxis.range is None


def test_confusion_heatmap_labels_counts_and_percentages():
    matrix = [[3, 1, 0], [0, 2, 2], [1, 0, 1]]
    raw = plots.confusion_heatmap(matrix, NAMES)
    assert raw.data[0].text[1][2] == "2"
    pct = plots.confusion_heatmap([[75, 25, 0], [0, 50, 50], [50, 0, 50]], NAMES, percent=True)
    assert pct.data[0].text[0][0] == "75.0%" and pct.data[0].zmax == 100
    assert "row %" in pct.layout.title.text


def test_roc_curves_name_each_class_with_its_auc_and_skip_missing_classes():
    roc = {"melanoma": {"fpr": [0, 0.5, 1], "tpr": [0, 0.9, 1]}, 2: {"fpr": [0, 1], "tpr": [0, 1]}}
    auc = {"melanoma": 0.8512, 2: math.nan}
    fig = plots.roc_curves(roc, auc, NAMES)
    names = [t.name for t in fig.data]
    assert names == ["chance", "melanoma (AUC 0.851)", "seborrheic keratosis (AUC n/a)"]


def test_precision_recall_bars_accept_lists_and_dicts():
    fig = plots.precision_recall_bars([0.5, 1.0, 0.0], {"nevus": 0.2, "melanoma": 0.4}, NAMES)
    assert list(fig.data[0].y) == [0.5, 1.0, 0.0]
    assert list(fig.data[1].y)[:2] == [0.2, 0.4] and fig.data[1].y[2] is None


def test_probability_bars_mark_the_true_class():
    fig = plots.probability_bars([0.1, 0.7, 0.2], NAMES, true_label=1)
    assert list(fig.data[0].y) == ["nevus", "melanoma (true)", "seborrheic keratosis"]
    assert fig.data[0].text[1] == "70.0%"
