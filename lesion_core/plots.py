"""Pure functions from data to plotly figures for the pages.

Nothing here reads files or imports streamlit, so every figure can be tested on its own.
Images (mask overlays, batch grids) come from lesion_core.transforms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from lesion_core.i18n import N_, keep
from lesion_core.metrics import scored_classes

# One colour per class everywhere (nevus, melanoma, seborrheic keratosis, then extras).
# Ten distinct colours: the public sets have up to 9 classes.
CLASS_COLOURS = ("#4c78a8", "#c4453a", "#e0a030", "#54a24b", "#b279a2", "#9d755d", "#72b7b2",
                 "#ff9da6", "#bab0ac", "#eeca3b")
SPLIT_ORDER = ("train", "val", "test")
# Readable in a half-width column of a 900 px window: margins grow to fit tick labels and
# axis titles (automargin), and the legend sits in a row under the plot, where it neither
# covers the data nor squeezes the plot into a strip as a legend at the side does.
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10, autoexpand=True), template="plotly_white", height=380,
               legend=dict(orientation="h", x=0, xanchor="left", y=-0.2, yanchor="top"))


UNIT_AXIS = [0, 1.02]  # y range of a metric bounded by 1 (AUC, accuracy, rates), with room for the line at 1


def _class_colour(index: int) -> str:
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


def _layout(fig: go.Figure, title: str, **extra) -> go.Figure:
    fig.update_layout(title=title, **{**_LAYOUT, **extra})
    fig.update_xaxes(automargin=True, title_standoff=8)
    fig.update_yaxes(automargin=True, title_standoff=8)
    return fig


# ---------------------------------------------------------------- dataset


def class_distribution(counts: Mapping[str, Mapping], class_names: Sequence[str]) -> go.Figure:
    """Grouped bars: images per class (x) for each split (one trace per split).

    counts: split -> class -> n; a class key may be its index or its name.
    """
    fig = go.Figure()
    splits = [s for s in SPLIT_ORDER if s in counts] + [s for s in counts if s not in SPLIT_ORDER]
    for split in splits:
        by_name = {(class_names[k] if isinstance(k, int) else str(k)): n for k, n in counts[split].items()}
        values = [int(by_name.get(name, 0)) for name in class_names]
        fig.add_bar(name=split, x=list(class_names), y=values, text=values, textposition="auto")
    return _layout(fig, "Images per class and split", barmode="group", yaxis_title="images")


def skin_tone_bars(counts: Mapping[str, Mapping[str, int]], groups: Sequence[str],
                   class_names: Sequence[str]) -> go.Figure:
    """Stacked bars: images per skin-tone group (x, in the given order: very light to dark) and
    class (one trace each). counts: class name -> group -> n."""
    fig = go.Figure()
    for index, name in enumerate(class_names):
        fig.add_bar(name=name, x=list(groups), y=[int(counts.get(name, {}).get(g, 0)) for g in groups],
                    marker_color=_class_colour(index))
    fig = _layout(fig, N_("Images per skin tone (ITA group) and class"), barmode="stack", yaxis_title="images",
                  xaxis_title="ITA group")
    fig.update_xaxes(categoryorder="array", categoryarray=list(groups))
    return fig


# ---------------------------------------------------------------- training curves


def history_value(row: Mapping, key: str):
    """row[key]; "auc/melanoma" reads the nested row["auc"]["melanoma"] (None when absent)."""
    value = row
    for part in key.split("/"):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def metric_curves(history: Sequence[Mapping], metrics: Sequence[tuple[str, str, str]],
                  title: str, yaxis: str = "") -> go.Figure:
    """Lines of several metrics per epoch from history rows (one row per epoch and phase).

    metrics: (phase, key, line name) triples; key may be nested ("auc/melanoma"). Rows
    without a finite value for the key are skipped, so undefined AUCs leave gaps, not zeros.
    """
    fig = go.Figure()
    for index, (phase, key, name) in enumerate(metrics):
        points = [(r["epoch"], history_value(r, key)) for r in history if r.get("phase") == phase]
        points = [(x, y) for x, y in points if _is_number(y)]
        fig.add_scatter(x=[x for x, _ in points], y=[y for _, y in points], mode="lines+markers",
                        name=name, line=dict(color=_class_colour(index),
                                             dash="dot" if phase == "train" else "solid"))
    return _epoch_axis(_layout(fig, title, xaxis_title="epoch", yaxis_title=yaxis), history)


def _epoch_axis(fig: go.Figure, history: Sequence[Mapping]) -> go.Figure:
    """Whole-number epoch ticks (about ten at most), not plotly's 0.5 steps for short runs."""
    last = max((r.get("epoch", 0) for r in history), default=1)
    fig.update_xaxes(tick0=1, dtick=max(1, round(last / 10)))
    return fig


def loss_curves(history: Sequence[Mapping]) -> go.Figure:
    """Training and validation loss per epoch."""
    return metric_curves(history, [("train", "loss", "train loss"), ("val", "loss", "val loss")],
                         "Loss", "cross-entropy")


def auc_curves(history: Sequence[Mapping], class_names: Sequence[str]) -> go.Figure:
    """Validation AUC per epoch of each scored class (melanoma, keratosis) and their mean; for
    two classes only the positive class (both AUCs are the same number)."""
    scored = [1] if len(class_names) == 2 else scored_classes(class_names)
    lines = [("val", f"auc/{class_names[i]}", N_("{name} AUC").format(name=class_names[i])) for i in scored]
    fig = metric_curves(history, lines + [("val", "mean_auc", "mean AUC")], "Validation AUC", "AUC")
    for _phase, _key, name in lines:
        keep(fig, name)
    fig.update_yaxes(range=UNIT_AXIS)
    return fig


def overlay_curves(histories: Mapping[str, Sequence[Mapping]], phase: str, key: str,
                   title: str) -> go.Figure:
    """One line per run (run id -> history rows) of `key` in `phase`, for comparing runs."""
    fig = go.Figure()
    for run_id, history in histories.items():
        points = [(r["epoch"], history_value(r, key)) for r in history if r.get("phase") == phase]
        points = [(x, y) for x, y in points if _is_number(y)]
        fig.add_scatter(x=[x for x, _ in points], y=[y for _, y in points],
                        mode="lines+markers", name=run_id)
    rows = [row for history in histories.values() for row in history]
    fig = _epoch_axis(_layout(fig, title, xaxis_title="epoch", yaxis_title=key.replace("_", " ")), rows)
    if "auc" in key or "accuracy" in key:  # bounded: a flat line at 1.0 must not draw an axis up to 2
        fig.update_yaxes(range=UNIT_AXIS)
    return fig


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


# ---------------------------------------------------------------- evaluation


def confusion_heatmap(matrix, class_names: Sequence[str], percent: bool = False) -> go.Figure:
    """Confusion matrix (C, C), rows = true class, columns = predicted, as an annotated heatmap.

    percent=True expects row percentages (each row sums to 100) and labels cells with "%".
    """
    values = np.asarray(matrix, dtype=float)
    text = [[(f"{v:.1f}%" if percent else f"{int(v)}") for v in row] for row in values]
    fig = go.Figure(go.Heatmap(
        z=values, x=list(class_names), y=list(class_names), text=text, texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=100 if percent else None, showscale=False,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="true class")
    fig.update_xaxes(title="predicted class", side="bottom")
    return _layout(fig, "Confusion matrix (row %)" if percent else "Confusion matrix (counts)")


def roc_curves(roc: Mapping, auc: Mapping | Sequence, class_names: Sequence[str]) -> go.Figure:
    """One-vs-rest ROC curve per class plus the chance diagonal; legend shows each AUC.

    roc: class (index or name) -> {"fpr": [...], "tpr": [...]}; auc: per class, same keys
    (or a sequence by class index). Classes missing from roc are skipped. With two classes
    both curves are the same curve mirrored, so only the second (positive) class is drawn.
    """
    binary = len(class_names) == 2
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                    line=dict(color="#999", dash="dash"))
    for index, name in enumerate(class_names):
        curve = _by_class(roc, index, name)
        if not curve or (binary and index == 0):
            continue
        value = _by_class(auc, index, name)
        label = keep(fig, N_("{name} (AUC {value})").format(name=name, value=f"{value:.3f}" if _is_number(value)
                                                             else "n/a"))
        fig.add_scatter(x=list(curve["fpr"]), y=list(curve["tpr"]), mode="lines", name=label,
                        line=dict(color=_class_colour(index)))
    fig.update_xaxes(range=[0, 1], title="false positive rate")
    fig.update_yaxes(range=UNIT_AXIS, title="true positive rate")
    title = (keep(fig, N_("ROC curve ({positive} against {negative})").format(positive=class_names[1],
                                                                              negative=class_names[0]))
             if binary else "ROC curves (one class against the rest)")
    return _layout(fig, title)


def _by_class(values, index: int, name: str):
    """values[index] or values[name]: metric dicts may be keyed either way."""
    if isinstance(values, Mapping):
        for key in (index, name, str(index)):
            if key in values:
                return values[key]
        return None
    return values[index] if index < len(values) else None


def precision_recall_bars(precision, recall, class_names: Sequence[str]) -> go.Figure:
    """Grouped bars of precision and recall per class (values in [0, 1])."""
    names = list(class_names)
    fig = go.Figure()
    for label, values in (("precision", precision), ("recall", recall)):
        ys = [_by_class(values, i, n) for i, n in enumerate(names)]
        fig.add_bar(name=label, x=names, y=ys, text=[f"{y:.2f}" if _is_number(y) else "" for y in ys])
    fig.update_yaxes(range=[0, 1.05])
    return _layout(fig, "Precision and recall per class", barmode="group")


def probability_bars(probs: Sequence[float], class_names: Sequence[str],
                     true_label: int | None = None) -> go.Figure:
    """Horizontal bars of one image's class probabilities; the true class is marked."""
    names = [N_("{name} (true)").format(name=n) if i == true_label else n for i, n in enumerate(class_names)]
    values = [float(p) for p in probs]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", text=[f"{v:.1%}" for v in values],
                           marker_color=[_class_colour(i) for i in range(len(values))]))
    for name in names:
        keep(fig, name)
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Class probabilities", height=80 + 45 * len(values))


def metadata_distribution(values: Sequence[str], labels: Sequence[int], class_names: Sequence[str],
                          title: str, order: Sequence[str] | None = None) -> go.Figure:
    """Grouped bars: images per metadata value (x, in `order` or sorted; "" left out) and class."""
    from collections import Counter

    pairs = Counter(zip(values, labels))
    shown = list(order) if order is not None else sorted({v for v, _ in pairs if v})
    fig = go.Figure()
    for index, name in enumerate(class_names):
        counts = [pairs.get((x, index), 0) for x in shown]
        fig.add_bar(name=name, x=shown, y=counts, marker_color=_class_colour(index))
    return _layout(fig, title, barmode="group")
