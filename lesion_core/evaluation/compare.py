"""Two runs side by side: what differs in their configs, and whether one scores better on
the same images (a paired bootstrap of the difference, with a plain verdict)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lesion_core import runs
from lesion_core.errors import TrainingError
from lesion_core.evaluation import bootstrap
from lesion_core.i18n import N_
from lesion_core import training

# The verdict is about this metric (the ISIC 2017 challenge's score).
VERDICT_METRIC = "mean_auc"
# Config entries that say nothing about the recipe (timings, versions of the run itself).
_IGNORED = ("version", "data.split.splits")  # "version": the schema's (and "versions"), no setting


def flatten(config: dict, prefix: str = "") -> dict:
    """{"optim": {"lr": 1e-3}} -> {"optim.lr": 1e-3}; lists stay values."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flatten(value, name + ".")
        else:
            out[name] = value
    return out


def _number_text(value):
    """A resolved number as its config wrote it: 8 for 8.0, 0.0003 (not 3e-04)."""
    return f"{value:g}" if isinstance(value, float) else value


def _short(value, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def resolved(config: dict) -> dict:
    """A run's settings as they trained, flattened: weight_decay null as the optimiser's own
    default (AdamW 0.01), numbers as floats (warm-up 0 and 0.0 are one setting)."""
    flat = flatten(config)
    optim = config.get("optim")
    if isinstance(optim, dict) and optim.get("weight_decay") is None and "optim.weight_decay" in flat:

        flat["optim.weight_decay"] = training.weight_decay(optim)
    return {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in flat.items()}


def config_diff(configs: dict[str, dict]) -> list[dict]:
    """The settings that differ between runs as they trained (resolved): one row
    {"setting", <run id>: value text, ...} each."""
    flat = {run_id: resolved(config) for run_id, config in configs.items()}
    keys = sorted({k for f in flat.values() for k in f if not k.startswith(_IGNORED)})
    rows = []
    for key in keys:
        values = [json.dumps(f.get(key), sort_keys=True) for f in flat.values()]
        if len(set(values)) > 1:
            rows.append({"setting": key} | {run_id: _short(_number_text(f.get(key, "(not set)")))
                                            for run_id, f in flat.items()})
    return rows


def _predictions(run_dir: Path, split: str):
    loaded = bootstrap.load_predictions(run_dir, split)
    if loaded is None:  # (a damaged file raises its reader's DataError, naming it)
        raise TrainingError(N_("run {run} has no readable predictions_{split}.csv (it is written when the run "
                               "finishes; try the other split)").format(run=run_dir.name, split=split))
    return loaded


def compare_runs(run_a, run_b, split: str = "test", n_resamples: int = bootstrap.N_RESAMPLES,
                 seed: int = bootstrap.SEED) -> dict:
    """{"split", "n", "metrics": {name: {"a", "b", "delta", "ci_low", "ci_high"}}, "verdict":
    "a"|"b"|"none", "same_images", "reason", "disagreements", "config_diff", "run_a", "run_b"}.

    Paired intervals only when both runs scored the same images with the same labels; otherwise
    each run's own value is reported, without an interval or verdict, and "reason" says why.
    """
    run_a, run_b = Path(run_a), Path(run_b)
    ids_a, labels_a, probs_a, names_a = _predictions(run_a, split)
    ids_b, labels_b, probs_b, names_b = _predictions(run_b, split)
    if list(names_a) != list(names_b):
        raise TrainingError(N_("the runs have different classes ({a} vs {b}): they cannot be compared").format(
            a=", ".join(names_a), b=", ".join(names_b)))
    truth_a = dict(zip(ids_a, labels_a.tolist()))
    truth_b = dict(zip(ids_b, labels_b.tolist()))
    same = len(ids_a) == len(truth_a) and truth_a == truth_b and len(ids_a) > 0
    result = {"split": split, "run_a": run_a.name, "run_b": run_b.name, "same_images": same,
              "config_diff": config_diff({run_a.name: runs.read_config(run_a), run_b.name: runs.read_config(run_b)})}
    if same:
        order = {sample_id: i for i, sample_id in enumerate(ids_b)}
        probs_b = probs_b[[order[i] for i in ids_a]]  # row j of both arrays is the same image
        metrics = bootstrap.paired_differences(labels_a, probs_a, probs_b, names_a, n_resamples, seed)
        result |= {"n": len(ids_a), "metrics": metrics, "verdict": verdict(metrics[VERDICT_METRIC]),
                   "reason": None, "disagreements": disagreements(ids_a, labels_a, probs_a, probs_b, names_a)}
    else:
        result |= {"n": None, "metrics": _unpaired(labels_a, probs_a, labels_b, probs_b, names_a), "verdict": "none",
                   "reason": _why_not_paired(truth_a, truth_b, split), "disagreements": []}
    return result


def verdict(row: dict) -> str:
    """"b" when the whole interval of B - A lies above 0, "a" when below, else "none"."""
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is None or high is None:
        return "none"
    return "b" if low > 0 else "a" if high < 0 else "none"


def verdict_text(result: dict) -> str:
    """The verdict in words, for the page and the CLI."""
    if not result["same_images"]:
        return N_("No verdict: {reason}").format(reason=result["reason"])
    if result["verdict"] == "a":
        return N_("A ({run}) is better").format(run=result["run_a"])
    if result["verdict"] == "b":
        return N_("B ({run}) is better").format(run=result["run_b"])
    return N_("not distinguishable on these {n} images").format(n=result["n"])


def _unpaired(labels_a, probs_a, labels_b, probs_b, names) -> dict:
    """Each run's point values on its own images; no interval of the difference."""
    def point(labels, probs):
        return bootstrap.replicates(labels, probs, names, np.arange(len(labels))[None])
    a, b = point(labels_a, probs_a), point(labels_b, probs_b)
    out = {}
    for key in a:
        va, vb = (float(x[0]) if np.isfinite(x[0]) else None for x in (a[key], b[key]))
        out[key.replace("auc/", "auc_")] = {"a": va, "b": vb, "delta": None if va is None or vb is None else vb - va,
                                            "ci_low": None, "ci_high": None}
    return out


def _why_not_paired(truth_a: dict, truth_b: dict, split: str) -> str:
    shared = truth_a.keys() & truth_b.keys()
    if not truth_a or not truth_b:
        return N_("a run has no {split} images").format(split=split)
    if shared and any(truth_a[i] != truth_b[i] for i in shared):
        return N_("the same image ids carry different labels in the two runs (different datasets)")
    return N_("the runs were scored on different {split} images ({a} and {b}, {shared} shared): a difference could "
              "come from the images, not the models").format(split=split, a=len(truth_a), b=len(truth_b),
                                                             shared=len(shared))


def disagreements(ids, labels, probs_a, probs_b, class_names) -> list[dict]:
    """Images one run classifies right and the other wrong: {"id", "label", "pred_a", "pred_b", "right"}."""
    pred_a, pred_b = probs_a.argmax(axis=1), probs_b.argmax(axis=1)
    rows = []
    for i in np.flatnonzero((pred_a == labels) != (pred_b == labels)):
        rows.append({"id": ids[i], "label": class_names[labels[i]], "pred_a": class_names[pred_a[i]],
                     "pred_b": class_names[pred_b[i]], "right": "a" if pred_a[i] == labels[i] else "b"})
    return rows


def json_summary(result: dict) -> dict:
    """The CLI's --json object: split, n, metrics, verdict, same_images."""
    return {key: result[key] for key in ("split", "n", "metrics", "verdict", "same_images")}
