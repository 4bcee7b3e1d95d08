"""Robustness report of a run: its split re-scored under realistic shifts, with intervals.

Skin (outside the lesion mask) moved to one palette tone per ITA group keeping its texture, as
the RandomChangeSkin augmentation does (transforms.kernels.shift_skin), a rotation,
brighter, darker, lower contrast and blur. Each condition is scored on the same images as
the unshifted baseline, so its drop comes with a paired interval. The same report gives the
model's metrics per ITA group of the original images (how it does on the skin in the data).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from lesion_core import data, inference, models, runs, transforms
from lesion_core.data import skin
from lesion_core.errors import TrainingError
from lesion_core.i18n import N_, keep
from lesion_core.inference import prior
from lesion_core.inference.score import softmax_batch
from lesion_core.transforms.kernels import shift_skin
from lesion_core.evaluation import bootstrap
from lesion_core import settings

# Groups smaller than this get a warning: their AUC interval spans most of [0, 1].
SMALL_GROUP = 30


def default_conditions() -> list[dict]:
    """[{"name", "kind", "ita_group", "value"}]: one skin tone per ITA group, then the other shifts."""
    # Names in English, as stored in the report; the pages translate them (N_ marks them for the catalogue).
    tones = [{"name": N_("skin {group}").format(group=group), "kind": "skin", "ita_group": group,
              "value": list(skin.PALETTE_RGB[group])}
             for group in skin.GROUP_NAMES]
    shifts = [(N_("rotation 30°"), "rotation", 30.0), (N_("brightness x0.7"), "brightness", 0.7),
              (N_("brightness x1.3"), "brightness", 1.3), (N_("contrast x0.6"), "contrast", 0.6),
              (N_("blur sigma 2 px"), "blur", 2.0)]
    return tones + [{"name": name, "kind": kind, "ita_group": None, "value": value} for name, kind, value in shifts]


# How the skin conditions change the skin, stored with every report: reports without it were
# computed with the earlier flat repaint (one colour, no texture), and the page says so.
SKIN_SHIFT = "cielab"


def shift(image: np.ndarray, mask: np.ndarray | None, condition: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """(image uint8 (H, W, 3), mask) under one condition; the mask moves with a rotation."""
    kind, value = condition["kind"], condition["value"]
    if kind == "skin":
        out = np.array(image, np.uint8, order="C")  # a copy: cached images are shared, never written
        shift_skin(out, np.asarray(mask) == 0, value)  # the augmentation's own CIELAB shift, not a flat paint
        return out, mask
    tensor = torch.from_numpy(np.require(image, requirements="CW")).permute(2, 0, 1)  # read-only cached arrays
    if kind == "rotation":
        tensor = F.rotate(tensor, value, InterpolationMode.BILINEAR)
        if mask is not None:
            mask = torch.from_numpy(np.require(mask, requirements="CW"))[None]
            mask = F.rotate(mask, value, InterpolationMode.NEAREST)[0].numpy()
    elif kind == "brightness":
        tensor = F.adjust_brightness(tensor, value)
    elif kind == "contrast":
        tensor = F.adjust_contrast(tensor, value)
    elif kind == "blur":
        tensor = F.gaussian_blur(tensor, [2 * math.ceil(3 * value) + 1] * 2, [value, value])
    else:
        raise TrainingError(N_("unknown robustness condition kind {kind}").format(kind=repr(kind)))
    return tensor.permute(1, 2, 0).numpy().copy(), mask


class _Scorer:
    """The run's best model and eval pipeline; probs(samples, condition) -> (N, C) softmax."""

    def __init__(self, run_dir: Path):
        self.model, self.config = inference.load_run_model(run_dir)
        entry = models.MODELS[self.config["model"]["name"]]
        size = settings.image_size(self.config)
        spec = transforms.finalize_spec(self.config["eval_augment"], size, entry.mean, entry.std)
        self.pipeline = transforms.build_pipeline(spec)
        self.max_side = self.config.get("max_side") or round(size * 8 / 7)
        self.batch_size = int(self.config.get("batch_size") or 32)
        self.settings = inference.inference_settings(self.config)
        self.run_dir = run_dir
        self.metas: dict = {}  # id -> patient metadata, for a run that weighs it (set by the caller)

    def probs(self, samples: list[dict], condition: dict | None) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(samples), self.batch_size):
                batch = []
                for sample in samples[start:start + self.batch_size]:
                    image, mask = (sample["image"], sample["mask"]) if condition is None else \
                        shift(sample["image"], sample["mask"], condition)
                    batch.append(self.pipeline(dict(sample, image=image, mask=mask))["image"])
                # scored as the run scores its images: its TTA setting, then its metadata prior
                out.append(softmax_batch(self.model, torch.stack(batch), self.settings, self.config["tta"]).cpu().numpy())
        n_classes = len(self.config["data"]["class_names"])
        probs = np.concatenate(out) if out else np.zeros((0, n_classes))
        return prior.apply_run(self.run_dir, probs, [self.metas.get(s["id"], {}) for s in samples], n_classes)


def robustness_report(run_dir, split: str = "test", data_root=None, conditions: list[dict] | None = None,
                      records=None, n_resamples: int = bootstrap.N_RESAMPLES, seed: int = bootstrap.SEED,
                      on_progress=None) -> dict:
    """{"run", "split", "n", "skipped_no_mask", "baseline", "baseline_masked", "conditions": [{"name",
    "kind", "ita_group", "mean_auc", "ci_low", "ci_high", "n", "accuracy", "delta", "delta_ci_low",
    "delta_ci_high"}], "groups": [{"ita_group", "n", "mean_auc", "ci_low", "ci_high", "accuracy", "warning"}],
    "seconds", "skin_shift"}. records: score these instead of the run's split (benchmarks); on_progress(text)."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    scorer = _Scorer(run_dir)
    class_names = list(scorer.config["data"]["class_names"])
    if records is None:
        if split not in ("val", "test"):
            raise TrainingError(N_("unknown split {split}; use val or test").format(split=repr(split)))
        records = settings.load_data(scorer.config, root_override=data_root).split(split)
    if not records:
        raise TrainingError(N_("the {split} split of run {run} is empty: nothing to score").format(
            split=split, run=run_dir.name))
    scorer.metas = {r.id: r.meta for r in records}
    progress = on_progress or (lambda text: None)
    progress(f"decoding {len(records)} images")
    decoded = data.LesionDataset(records, max_side=scorer.max_side)
    samples = [decoded[i] for i in range(len(decoded))]
    labels = np.array([s["label"] for s in samples], dtype=np.int64)
    masked = np.array([s["mask"] is not None for s in samples])
    progress("scoring the unshifted images")
    base = scorer.probs(samples, None)
    report = {"run": run_dir.name, "split": split, "n": len(samples), "skipped_no_mask": int((~masked).sum()),
              "class_names": class_names, "n_resamples": n_resamples, "seed": seed,
              "baseline": bootstrap.metric_intervals(labels, base, class_names, n_resamples, seed),
              "baseline_masked": (bootstrap.metric_intervals(labels[masked], base[masked], class_names, n_resamples,
                                                             seed) if masked.any() else None),
              "skin_shift": SKIN_SHIFT, "conditions": [], "groups": []}
    for number, condition in enumerate(default_conditions() if conditions is None else conditions, start=1):
        progress(f"condition {number}: {condition['name']}")
        subset = masked if condition["kind"] == "skin" else np.ones(len(samples), bool)
        if not subset.any():
            continue
        chosen = [s for s, keep in zip(samples, subset) if keep]
        probs = scorer.probs(chosen, condition)
        report["conditions"].append(_condition_row(condition, labels[subset], base[subset], probs, class_names,
                                                   n_resamples, seed))
    report["groups"] = _group_rows(samples, labels, base, class_names, n_resamples, seed)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _condition_row(condition, labels, base, probs, class_names, n_resamples, seed) -> dict:
    own = bootstrap.metric_intervals(labels, probs, class_names, n_resamples, seed)
    paired = bootstrap.paired_differences(labels, base, probs, class_names, n_resamples, seed)["mean_auc"]
    return {"name": condition["name"], "kind": condition["kind"], "ita_group": condition.get("ita_group"),
            "mean_auc": own["mean_auc"]["value"], "ci_low": own["mean_auc"]["ci_low"],
            "ci_high": own["mean_auc"]["ci_high"], "n": len(labels), "accuracy": own["accuracy"]["value"],
            "delta": paired["delta"], "delta_ci_low": paired["ci_low"], "delta_ci_high": paired["ci_high"]}


def _group_rows(samples, labels, base, class_names, n_resamples, seed) -> list[dict]:
    """The unshifted metrics per ITA group of the original images, with sizes and warnings."""
    groups = np.array([skin.ita_group(skin.image_ita(s["image"], s["mask"])) for s in samples])
    rows = []
    for group in (*skin.GROUP_NAMES, skin.NO_MASK):
        chosen = groups == group
        if not chosen.any():
            continue
        found = bootstrap.metric_intervals(labels[chosen], base[chosen], class_names, n_resamples, seed)
        n = int(chosen.sum())
        rows.append({"ita_group": group, "n": n, "mean_auc": found["mean_auc"]["value"],
                     "ci_low": found["mean_auc"]["ci_low"], "ci_high": found["mean_auc"]["ci_high"],
                     "accuracy": found["accuracy"]["value"],
                     "warning": (N_("only {n} images: this group's numbers are mostly noise").format(n=n)
                                 if n < SMALL_GROUP else None)})
    return rows


def report_path(run_dir, split: str) -> Path:
    return Path(run_dir) / f"robustness_{split}.json"


def save_report(run_dir, report: dict) -> Path:
    """Write the report into the run folder as robustness_<split>.json (atomically)."""
    path = report_path(run_dir, report["split"])
    runs.atomic_write_json(path, report)
    return path


def read_report(run_dir, split: str) -> dict | None:
    """A stored report, or None when absent or not shaped like one (run folders are untrusted)."""
    found = runs.read_json(report_path(run_dir, split), None)
    if not found or not isinstance(found.get("conditions"), list) or not isinstance(found.get("baseline"), dict):
        return None
    if not all(isinstance(row, dict) and isinstance(row.get("name"), str) for row in found["conditions"]):
        return None
    # The texts as the messages they were made from, for pages (when the stored English is theirs).
    for row in found["conditions"]:
        group = row.get("ita_group")
        if row.get("kind") == "skin" and isinstance(group, str) and row["name"] == f"skin {group}":
            row["name"] = N_("skin {group}").format(group=group)
    for row in found.get("groups") if isinstance(found.get("groups"), list) else ():
        if isinstance(row, dict) and isinstance(row.get("n"), int) and isinstance(row.get("warning"), str):
            message = N_("only {n} images: this group's numbers are mostly noise").format(n=row["n"])
            row["warning"] = message if row["warning"] == message else row["warning"]
    return found


def figure(report: dict):
    """Mean AUC per condition with its 95% interval; the unshifted baseline as a line and band.
    One condition a row, top to bottom, so that their names never overlap."""
    import plotly.graph_objects as go

    rows = [r for r in report["conditions"] if isinstance(r.get("mean_auc"), (int, float))]
    fig = go.Figure()
    fig.add_scatter(y=[keep(fig, r["name"]) for r in rows], x=[r["mean_auc"] for r in rows], mode="markers",
                    marker={"size": 10}, name=N_("shifted"), orientation="h",
                    error_x={"type": "data", "symmetric": False,
                             "array": [(r["ci_high"] or r["mean_auc"]) - r["mean_auc"] for r in rows],
                             "arrayminus": [r["mean_auc"] - (r["ci_low"] or r["mean_auc"]) for r in rows]})
    base = report["baseline"].get("mean_auc") or {}
    if isinstance(base.get("value"), (int, float)):
        fig.add_vline(x=base["value"], line_dash="dash",
                      annotation_text=keep(fig, N_("unshifted {auc}").format(auc=f"{base['value']:.3f}")))
        if isinstance(base.get("ci_low"), (int, float)) and isinstance(base.get("ci_high"), (int, float)):
            fig.add_vrect(x0=base["ci_low"], x1=base["ci_high"], opacity=0.12, line_width=0, fillcolor="grey")
    fig.update_layout(title=keep(fig, N_("Mean AUC under shifts ({split}, 95% intervals)").format(
                          split=report.get("split"))),
                      xaxis_title=N_("mean AUC"), xaxis_range=[0, 1.02], height=120 + 28 * len(rows),
                      margin={"t": 50}, yaxis={"autorange": "reversed"})
    return fig
