"""Plotly figures of the review views: reliability diagram, ROC and precision-recall curves with
the chosen operating point, lesion focus by class. Pure functions, like lesion_core.plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from sklearn.metrics import precision_recall_curve, roc_curve

from lesion_core.i18n import N_, keep
from lesion_core.plots import CLASS_COLOURS

_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), template="plotly_white", height=360)


def reliability_diagram(before: Mapping, after: Mapping | None = None) -> go.Figure:
    """Confidence (x) against accuracy (y) per bin, before and after scaling, with the
    diagonal of perfect calibration; marker size and hover give each bin's count.

    before/after: calibration.reliability_bins() dicts (empty bins are skipped)."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated", line=dict(color="#999", dash="dash"))
    for label, bins, colour in (("uncalibrated", before, "#c4453a"), ("temperature-scaled", after, "#4c78a8")):
        if not bins:
            continue
        filled = [i for i, n in enumerate(bins["count"]) if n]
        counts = [bins["count"][i] for i in filled]
        biggest = max(counts, default=1)
        fig.add_scatter(x=[bins["confidence"][i] for i in filled], y=[bins["accuracy"][i] for i in filled],
                        mode="lines+markers", name=label, line=dict(color=colour),
                        marker=dict(size=[6 + 14 * (n / biggest) ** 0.5 for n in counts]),
                        customdata=counts, hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.2f}<br>%{customdata} images")
    fig.update_xaxes(range=[0, 1], title="confidence (top-class probability)")
    fig.update_yaxes(range=[0, 1.02], title="accuracy")
    fig.update_layout(title="Reliability diagram (15 bins; marker size = images)", **_LAYOUT)
    return fig


def roc_with_point(is_class, scores, table: Mapping, name: str, colour_index: int = 1) -> go.Figure:
    """The ROC curve of one class against the rest with the chosen threshold's point marked."""
    fpr, tpr, _ = roc_curve(np.asarray(is_class, bool), np.asarray(scores, float))
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(color="#999", dash="dash"))
    fig.add_scatter(x=fpr, y=tpr, mode="lines", name=name, line=dict(color=CLASS_COLOURS[colour_index % 6]))
    fig.add_scatter(x=[1 - table["specificity"]], y=[table["sensitivity"]], mode="markers", name="threshold",
                    marker=dict(size=13, color="black", symbol="x"))
    fig.update_xaxes(range=[0, 1], title="1 - specificity")
    fig.update_yaxes(range=[0, 1.02], title="sensitivity")
    fig.update_layout(title=keep(fig, N_("ROC: {name} vs rest").format(name=name)), **_LAYOUT)
    return fig


def pr_with_point(is_class, scores, table: Mapping, name: str, colour_index: int = 1) -> go.Figure:
    """The precision-recall curve of one class with the chosen threshold's point marked."""
    precision, recall, _ = precision_recall_curve(np.asarray(is_class, bool), np.asarray(scores, float))
    fig = go.Figure()
    fig.add_scatter(x=recall, y=precision, mode="lines", name=name, line=dict(color=CLASS_COLOURS[colour_index % 6]))
    ppv = table["ppv"] if table["ppv"] == table["ppv"] else None  # NaN: nothing flagged
    fig.add_scatter(x=[table["sensitivity"]], y=[ppv], mode="markers", name="threshold",
                    marker=dict(size=13, color="black", symbol="x"))
    fig.update_xaxes(range=[0, 1], title="recall (sensitivity)")
    fig.update_yaxes(range=[0, 1.02], title="precision (PPV)")
    fig.update_layout(title=keep(fig, N_("Precision-recall: {name} vs rest").format(name=name)), **_LAYOUT)
    return fig


def focus_by_class(focus: Sequence, labels: Sequence[str], correct: Sequence[bool],
                   class_names: Sequence[str]) -> go.Figure:
    """Lesion focus (0..1) per true class, right and wrong predictions side by side."""
    focus = np.asarray(focus, dtype=float)
    labels = np.asarray(labels)
    correct = np.asarray(correct, dtype=bool)
    fig = go.Figure()
    for outcome, colour in (("right", "#54a24b"), ("wrong", "#c4453a")):
        keep = (correct == (outcome == "right")) & ~np.isnan(focus)
        fig.add_box(x=labels[keep], y=focus[keep], name=outcome, marker_color=colour, boxpoints="all", jitter=0.4)
    fig.add_hline(y=0.5, line=dict(color="#999", dash="dot"))
    fig.update_xaxes(categoryorder="array", categoryarray=list(class_names))
    fig.update_yaxes(range=[0, 1.02], title="share of heatmap inside the lesion")
    fig.update_layout(title="Lesion focus by true class", boxmode="group", **_LAYOUT)
    return fig


def reader_roc(is_class, scores, study: Mapping, marks: Mapping | None = None) -> go.Figure:
    """The model's ROC for the study's class with each reader's point (1 - specificity,
    sensitivity) and its 95% intervals, first pass to second joined by an arrow, and the
    model's operating points (marks: {specificity: sensitivity}).

    study: readers.score_study() of the same images' predictions (is_class, scores (N,))."""
    name = study["class"]
    fpr, tpr, _ = roc_curve(np.asarray(is_class, bool), np.asarray(scores, float))
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(color="#999", dash="dash"))
    fig.add_scatter(x=fpr, y=tpr, mode="lines", name="model", line=dict(color="#4c78a8"))
    if marks:
        fig.add_scatter(x=[1 - float(s) for s in marks], y=list(marks.values()), mode="markers",
                        name="model operating points", marker=dict(size=9, color="#4c78a8", symbol="square"))
    colours = ("#c4453a", "#e0a030", "#54a24b", "#b279a2", "#9d755d", "#72b7b2", "#ff9da6")
    points = {}
    for row in study["readers"]:
        sens, spec = row["sensitivity"], row["specificity"]
        if sens["value"] is None or spec["value"] is None:
            continue
        x, y = 1 - spec["value"], sens["value"]
        reader_index = sorted({r["reader"] for r in study["readers"]}).index(row["reader"])
        fig.add_scatter(
            x=[x], y=[y], mode="markers", name=keep(fig, N_("{reader}, pass {n}").format(reader=row["reader"], n=row["pass"])),
            marker=dict(size=12, color=colours[reader_index % len(colours)],
                        symbol="circle" if row["pass"] == 1 else "diamond"),
            error_x=dict(type="data", symmetric=False, array=[1 - spec["ci_low"] - x], arrayminus=[x - (1 - spec["ci_high"])],
                         thickness=1),
            error_y=dict(type="data", symmetric=False, array=[sens["ci_high"] - y], arrayminus=[y - sens["ci_low"]],
                         thickness=1))
        points[(row["reader"], row["pass"])] = (x, y)
    for (reader, pass_no), (x, y) in points.items():
        if pass_no == 2 and (reader, 1) in points:
            x0, y0 = points[(reader, 1)]
            fig.add_annotation(x=x, y=y, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", text="",
                               showarrow=True, arrowhead=2, arrowsize=1.2, arrowwidth=1.5, arrowcolor="#555")
    fig.update_xaxes(range=[-0.02, 1], title="1 - specificity", automargin=True)
    fig.update_yaxes(range=[0, 1.02], title="sensitivity", automargin=True)
    # The legend in rows under the plot, as lesion_core.plots does: one entry per reader and
    # pass beside the plot would squeeze it at half of a 900 px page.
    fig.update_layout(title=keep(fig, N_("Readers on the model's ROC: {name} vs rest").format(name=name)),
                      **(_LAYOUT | dict(height=560, legend=dict(orientation="h", x=0, xanchor="left", y=-0.15,
                                                               yanchor="top"))))
    return fig


def zoomable_image(image: np.ndarray, height: int = 620) -> go.Figure:
    """A uint8 (H, W, 3) image as a figure one can zoom into (drag a box, scroll; double-click
    resets), sent as a JPEG inside the figure rather than as a list of pixel values."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="JPEG", quality=92)
    source = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    fig = go.Figure(go.Image(source=source, hoverinfo="skip"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(margin=dict(l=0, r=0, t=0, b=0), height=height, dragmode="zoom", template="plotly_white")
    return fig
