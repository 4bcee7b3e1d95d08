"""A run report: one self-contained HTML file a clinician can open (plotly inlined, images as
data URIs, nothing fetched). Everything read from the run folder is escaped: its files are
untrusted input."""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime, UTC
from pathlib import Path

import numpy as np

from lesion_core import plots, runs
from lesion_core.evaluation import bootstrap, calibration, figures, operating, review
from lesion_core.inference.decision import withheld_reason
from lesion_core.metrics import scored_classes
from lesion_core.inference import decision as rules
from lesion_core.inference import temperature as scaling

N_WORST = 4
LIMITATIONS = (
    "Lesion Lab is a research and teaching tool. This model was trained on dermoscopy images "
    "(ISIC-style data) and is not validated for clinical use: do not use it to diagnose, to "
    "rule out melanoma, or to decide on treatment. Its figures come from small held-out splits "
    "of the same source as its training data; performance on other cameras, clinics, skin "
    "types or non-dermoscopic photographs is unknown. PPV and NPV depend on how common each "
    "class is in the evaluated split, which is usually far above a clinic's."
)


DEMO_WARNING = ("This run was trained and scored on Lesion Lab's synthetic demo images (drawn shapes, not "
                "dermoscopy): its figures show that the software works, nothing about lesions.")


def _e(value) -> str:
    return html.escape(str(value))


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _table(header: list, rows: list[list]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class _Figures:
    """Plotly figures as HTML divs; plotly.js is inlined once, with the first one."""

    def __init__(self):
        self.first = True

    def __call__(self, fig) -> str:
        out = fig.to_html(full_html=False, include_plotlyjs=self.first)
        self.first = False
        return f'<div class="fig">{out}</div>'


HEATMAP_SIDE = 448  # px: the report shows each heatmap 224 px wide, sharp on a 2x screen


def _png_uri(image: np.ndarray, max_side: int | None = None) -> str:
    """A PNG data URI; max_side shrinks a larger picture first (heatmaps on original images of
    thousands of pixels would make the report tens of megabytes)."""
    from PIL import Image

    picture = Image.fromarray(image)
    if max_side is not None:
        picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _split_section(run_dir: Path, split: str, fig: _Figures, temperature: float) -> str:
    from lesion_core.inference import read_predictions

    path = run_dir / f"predictions_{split}.csv"
    if not path.is_file():
        return f"<h2>{split}</h2><p>No predictions for this split.</p>"
    frame = read_predictions(path)
    labels, raw, names = review.frame_arrays(frame)
    probs = scaling.apply_temperature(raw, temperature)
    # The figures the Results page shows (metrics_<split>.json's intervals, the same stratified
    # bootstrap, from the uncalibrated probabilities: a temperature does not reorder images
    # much, and the report must not contradict the app).
    intervals = bootstrap.run_intervals(run_dir, split) or {}
    per_class = intervals.get("auc") if isinstance(intervals.get("auc"), dict) else {}
    scored = " + ".join(names[c] for c in scored_classes(names))
    rows = [[f"mean AUC ({scored})", len(labels), bootstrap.format_interval(intervals.get("mean_auc"))]]
    rows += [[name, int((labels == c).sum()), bootstrap.format_interval(per_class.get(name))]
             for c, name in enumerate(names)]
    accuracy = float((probs.argmax(1) == labels).mean()) if len(labels) else math.nan
    points = operating.operating_points(labels, raw, names)  # on the AUCs' probabilities, as metrics_<split>.json
    op_rows = [[n, *(_num(v) for v in p["sens_at_spec"].values()), _num(p["average_precision"])]
               for n, p in points.items()]
    cal = calibration.report(raw, labels, temperature)
    confusion = np.zeros((len(names), len(names)), int)
    np.add.at(confusion, (labels, probs.argmax(1)), 1)
    parts = [f"<h2>Held-out {_e(split)} split: {len(labels)} images, accuracy {_num(accuracy)}</h2>",
             "<h3>Discrimination: one class against the rest</h3>",
             _table(["class", "images", "AUC [95% bootstrap CI]"], rows),
             "<h3>Operating points (sensitivity at fixed specificity; raw probabilities, as the AUCs)</h3>",
             _table(["class", "sens @ spec 0.82", "sens @ spec 0.89", "sens @ spec 0.95", "average precision"], op_rows),
             f"<h3>Calibration</h3><p>Temperature {temperature:.2f}. ECE {_num(cal['ece'])} uncalibrated, "
             f"{_num(cal['ece_calibrated'])} calibrated; Brier {_num(cal['brier'])} and {_num(cal['brier_calibrated'])}."
             " Points below the diagonal mean over-confidence.</p>",
             fig(figures.reliability_diagram(cal["reliability"], cal["reliability_calibrated"])),
             "<h3>Confusion matrices (predicted class: the most probable one)</h3>",
             fig(plots.confusion_heatmap(confusion, names)),
             fig(plots.confusion_heatmap(100.0 * confusion / np.maximum(confusion.sum(1, keepdims=True), 1), names,
                                         percent=True))]
    focus = review.focus_values(frame)
    if focus is not None and (~np.isnan(focus)).any():
        defined = focus[~np.isnan(focus)]
        parts.append(f"<h3>Lesion focus</h3><p>Mean share of the heatmap inside the lesion {defined.mean():.2f}; "
                     f"{(defined < 0.5).mean():.0%} of {defined.size} images below 0.5.</p>")
        parts.append(fig(figures.focus_by_class(focus, frame["label"], frame["correct"], names)))
    else:
        parts.append("<p>Lesion focus not computed for this split (<code>evaluate RUN --explain</code>).</p>")
    return "\n".join(parts)


def _readers_section(run_dir: Path, split: str, fig: _Figures) -> str:
    """The reader study of this split (readers/*.csv), as the Reader study page shows it for
    its first class (melanoma when the run has it); "" when nobody has read this split."""
    from lesion_core.evaluation import readers

    model = readers.model_predictions(run_dir, split)
    if model is None:
        return ""
    ids, labels, probs, names = model
    study, problems = readers.load_study(run_dir, names, ids)
    if not study:
        return ""
    class_name = readers.study_classes(names)[0]
    result = readers.score_study(study, ids, labels, probs, names, class_name, split)
    c = names.index(class_name)
    interval, signed = bootstrap.format_interval, lambda x: bootstrap.format_interval(x, signed=True)
    rows = [[r["reader"], r["pass"], r["n"], interval(r["sensitivity"]), interval(r["specificity"]),
             interval(r["model_sensitivity_at_reader_specificity"]), signed(r["delta"]),
             r["verdict"] or "n/a", signed(r["change"]["sensitivity"]) if "change" in r else ""]
            for r in result["readers"]]
    return "\n".join([
        f"<h2>Reader study: {_e(class_name)} against the rest, {len(study)} reader(s)</h2>",
        "<p>Each reader's sensitivity and specificity (Wilson 95% intervals) on the images they read, the model's "
        "sensitivity at the reader's specificity on the same images, and their difference (model - reader, "
        "stratified bootstrap 95% interval; the verdict names who is better when the interval excludes 0). "
        "Pass 1: the reader alone; pass 2: with the model's probabilities and heatmap.</p>",
        *(f'<div class="warn">{_e(p)}</div>' for p in problems),
        fig(figures.reader_roc(labels == c, probs[:, c], result, readers.operating_marks(labels, probs, names, class_name))),
        _table(["reader", "pass", "images", "sensitivity [95% CI]", "specificity [95% CI]",
                "model sensitivity at that specificity", "model - reader", "better", "change from pass 1"], rows)])


def _worst_errors(run_dir: Path, split: str) -> str:
    """The N_WORST most confident wrong predictions with their Grad-CAM heatmaps."""
    from lesion_core import data
    from lesion_core.evaluation import explain
    from lesion_core.inference import read_predictions

    path = run_dir / f"predictions_{split}.csv"
    if not path.is_file():
        return ""
    # The probabilities the Predictions page shows by default, and the report's header names.
    frame = review.scaled_frame(read_predictions(path), scaling.read_calibration(run_dir).default_temperature)
    wrong = frame[~frame["correct"]].sort_values("loss", ascending=False).head(N_WORST)
    if wrong.empty:
        return "<h2>Worst errors</h2><p>No wrong prediction in this split.</p>"
    try:
        from lesion_core.settings import load_data

        records = {r.id: r for r in load_data(runs.read_config(run_dir)).split(split)}
        explainer = explain.Explainer(run_dir)
    except Exception as exc:  # the data moved or the weights are gone: the rest of the report stands
        return f"<h2>Worst errors</h2><p>Heatmaps unavailable: {_e(exc)}</p>"
    cells = []
    for _, row in wrong.iterrows():
        record = records.get(row["id"])
        if record is None:
            continue
        try:
            image, mask = data.read_image(record.image_path), None
            if record.mask_path:
                mask = data.read_mask(record.mask_path, image.shape[:2])
        except Exception as exc:
            cells.append(f"<figure><figcaption>{_e(row['id'])}: {_e(exc)}</figcaption></figure>")
            continue
        result = explainer.explain(image, mask)
        focus = "" if result.focus is None else f", focus {result.focus:.2f}"
        cells.append(f'<figure><img src="{_png_uri(result.overlay(), HEATMAP_SIDE)}"'
                     f' width="224"><figcaption>{_e(row["id"])}: true {_e(row["label"])}, predicted '
                     f"{_e(row['pred'])} ({row['confidence']:.0%}){_e(focus)}</figcaption></figure>")
    return ("<h2>Worst errors (most confident wrong predictions, Grad-CAM of the predicted class)</h2>"
            "<p>Each heatmap is drawn on the original image; the yellow box marks the part the model saw.</p>"
            f'<div class="row">{"".join(cells)}</div>')


def build_report(run_dir, split: str = "test", with_heatmaps: bool = True) -> str:
    """The HTML text of a run's report (see the module doc)."""
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    status = runs.read_status(run_dir)
    cfg_data = config.get("data", {})
    splits = (cfg_data.get("split") or {}).get("splits") or {}
    model = config.get("model", {})
    optim = config.get("optim", {})
    augment = config.get("augment")
    steps = ", ".join(str(s.get("name")) for s in augment if isinstance(s, dict)) if isinstance(augment, list) else augment
    # the probabilities the pages and predict show by default (raw where calibration did not help)
    temperature = scaling.read_calibration(run_dir).default_temperature
    rule = rules.read_threshold(run_dir)
    fig = _Figures()
    recipe = [["model", f"{model.get('name')} (initial weights: {model.get('weights')})"],
              ["optimiser", f"{optim.get('optimizer')}, learning rate {optim.get('lr')}"],
              ["epochs, batch size, image size", f"{config.get('epochs')}, {config.get('batch_size')}, "
                                                 f"{config.get('image_size')} px"],
              ["training augmentation", steps or "none"],
              ["probabilities", f"temperature-scaled (T = {temperature:.2f}, fitted on the validation split)"
                                if temperature != 1.0
                                else f"raw softmax ({problem})" if (problem := scaling.read_calibration(run_dir).problem)
                                else "raw softmax (see the calibration note)" if scaling.read_note(run_dir)
                                else "raw softmax (T = 1)" if (run_dir / scaling.CALIBRATION_FILE).is_file()
                                else "raw softmax (no calibration.json)"],
              *([["calibration note", note]] if (note := scaling.read_note(run_dir)) else []),
              ["decision rule", (withheld_reason(run_dir, rule["class"]) or f"refer when p({rule['class']}) >= "
                                 f"{rule['threshold']:.3f}") if rule else "none saved"]]
    sizes = [[name, len(ids) if isinstance(ids, list) else "?"] for name, ids in splits.items()]
    body = [f"<h1>Run report: {_e(run_dir.name)}</h1>",
            f"<p>{_e(status.get('state', 'unknown'))}: "
            f"{_e(str(status.get('message', '')).removeprefix(str(status.get('state')) + ': '))}<br>"
            f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by Lesion Lab.</p>",
            f'<div class="warn"><b>Intended use and limitations.</b> {_e(LIMITATIONS)}</div>',
            *([f'<div class="warn"><b>Synthetic data.</b> {_e(DEMO_WARNING)}</div>']
              if runs.trained_on_demo(config) else []),
            "<h2>Data and recipe</h2>",
            f"<p>Dataset: {_e(cfg_data.get('root'))}; classes: {_e(', '.join(cfg_data.get('class_names') or []))}</p>",
            _table(["split", "images"], sizes), _table(["setting", "value"], recipe),
            _split_section(run_dir, split, fig, scaling.read_temperature(run_dir)),  # the fitted T, judged
            _readers_section(run_dir, split, fig)]
    if with_heatmaps:
        body.append(_worst_errors(run_dir, split))
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
             ".warn{background:#fff4e5;border-left:4px solid #e0a030;padding:.6em 1em}"
             ".row{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0;max-width:240px}figcaption{font-size:.85em}")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Lesion Lab report "
            f"{_e(run_dir.name)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(run_dir, out_path, split: str = "test", with_heatmaps: bool = True) -> Path:
    """Write build_report() to out_path atomically."""
    runs.atomic_write_text(out_path, build_report(run_dir, split, with_heatmaps))
    return Path(out_path)
