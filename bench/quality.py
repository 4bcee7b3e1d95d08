"""Cross-validated quality of a training recipe: pooled out-of-fold AUCs with bootstrap intervals.

    python bench/quality.py [--data ../shared/data/isic2017_train] [--folds 5] [--only 0 [--only 1]]
                            [--recipe standard|quick|none] [--set epochs=8 --set optim.label_smoothing=0.1]
                            [--out bench-runs/quality] [--name NAME] [--no-tta-check]

The recipe is what `python -m lesion_core train --data DIR` starts from (standard for a dataset
folder; "none": settings.default_config() alone, the recipe before recipes existed), with the --set
settings on top. Splits the dataset into --folds stratified folds (seeded); fold k is the test set of one run,
15% of the rest (stratified) its validation set (which picks the best epoch and fits the
calibration), the remaining images its training set. Each fold trains the recipe exactly as
`python -m lesion_core train` would (the trainer in this process), into
OUT/NAME/fold<k>/; a fold whose run already finished there is reused, so a long bench that
was interrupted continues where it stopped.

Prints, per fold and pooled over every fold's test images (each image scored once, by the
model that never saw it): the melanoma-vs-all AUC, the keratosis-vs-all AUC and their mean
(the ISIC 2017 score), with stratified bootstrap 95% intervals, and the training time. When
the recipe predicts with test-time augmentation, the same best weights are scored again
without it, and the paired difference (with its interval) says what TTA added. Likewise, when
the runs combine the image with the patients' metadata (the standard recipe, on data that has
it), the same weights are scored from the image alone and the paired difference says what the
metadata added.

--report trains nothing and reports the finished folds. --only K trains just those folds (a quick
screening of a lever on one split); the pooled
figure then covers the folds that exist. Writes OUT/NAME/summary.json. Run outputs are
generated data: keep them out of git (bench-runs/ is ignored).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from lesion_core import data, inference, runs
from lesion_core.evaluation import bootstrap
from lesion_core import settings
from lesion_core import training
from lesion_core.inference import prior as patient_prior

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "isic2017_train"
VAL_FRACTION = 0.15


def fold_specs(root: Path, folds: int, seed: int) -> list[dict]:
    """One recorded split (LesionData.to_spec() form) per fold: test = the fold, val = 15% of the rest."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    whole = data.load_dataset(root, val_fraction=0.0, test_fraction=0.0, split_seed=seed)
    records = whole.split("train")
    ids = np.array([r.id for r in records])
    labels = np.array([r.label for r in records])
    specs = []
    for k, (rest, test) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(ids, labels)):
        fit, val = train_test_split(rest, test_size=VAL_FRACTION, random_state=seed + k, stratify=labels[rest])
        spec = whole.to_spec()
        spec["splits"] = {"train": ids[np.sort(fit)].tolist(), "val": ids[np.sort(val)].tolist(),
                          "test": ids[np.sort(test)].tolist()}
        specs.append(spec)
    return specs


def parse_sets(items: list[str]) -> dict:
    """["optim.lr=3e-4", "epochs=8"] -> {"optim": {"lr": 0.0003}, "epochs": 8} (values as JSON, else text)."""
    config: dict = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *sections, last = key.split(".")
        target = config
        for section in sections:
            target = target.setdefault(section, {})
        target[last] = value
    return config


def finished_run(folder: Path) -> Path | None:
    """The finished run in folder, if one is there."""
    for run_dir in sorted(folder.glob("*")) if folder.is_dir() else []:
        if run_dir.is_dir() and runs.read_status(run_dir).get("state") == "finished":
            return run_dir
    return None


def train_fold(folder: Path, spec: dict, base: dict) -> Path:
    """The fold's finished run: the one in folder, else its interrupted run resumed (a bench
    stopped mid-fold by Ctrl-C or SIGTERM), else a new one trained now."""
    run_dir = finished_run(folder)
    if run_dir is not None:
        return run_dir
    def log(line):
        print("   ", line, flush=True)
    unfinished = [d for d in sorted(folder.glob("*")) if d.is_dir() and (d / "last.pt").is_file()]
    started = time.perf_counter()
    if unfinished:
        run_dir = training.run_training(resume=unfinished[-1], on_log=log)
    else:
        data_cfg = {"root": spec["root"], "split": spec, "val_fraction": spec["val_fraction"],
                    "test_fraction": spec["test_fraction"], "split_seed": spec["split_seed"]}
        run_dir = training.run_training(settings.merge_config(base, {"data": data_cfg}), folder, on_log=log)
    print(f"  trained in {time.perf_counter() - started:.0f} s", flush=True)
    status = runs.read_status(run_dir)
    if status.get("state") != "finished":  # stopped (Ctrl-C, SIGTERM) or failed: so is the bench
        sys.exit(f"fold run {run_dir} {status.get('state')}: {status.get('message')}; run the bench again to continue")
    return run_dir


def run_seconds(run_dir: Path) -> float:
    """Wall time from the run's start to its last status (a resumed run counts its pause too)."""
    status = runs.read_status(run_dir)
    return float(status.get("updated", 0) - status.get("started", 0))


def scores(labels, probs, names) -> dict:
    return bootstrap.metric_intervals(labels, probs, names)


def line(label: str, intervals: dict, seconds: float | None = None) -> str:
    parts = [f"{label:<10}", f"mean AUC {bootstrap.format_interval(intervals['mean_auc'])}"]
    parts += [f"{name} {bootstrap.format_interval(value)}" for name, value in intervals["auc"].items()]
    if seconds is not None:
        parts.append(f"{seconds / 60:.1f} min")
    return "  ".join(parts)


def compare_with(other: Path, labels, probs, ids, names) -> dict | None:
    """This experiment minus another (its finished folds' test predictions), paired on the images both scored."""
    theirs = {}
    for folder in sorted(other.glob("fold*")):
        run_dir = finished_run(folder)
        if run_dir is not None:
            their_ids, _, their_probs, _ = bootstrap.load_predictions(run_dir, "test")
            theirs.update(zip(their_ids, their_probs))
    keep = np.array([i in theirs for i in ids])
    if not keep.any():
        print(f"no images in common with {other.name}")
        return None
    diff = bootstrap.paired_differences(labels[keep], np.stack([theirs[i] for i in ids[keep]]), probs[keep], names)
    print(f"minus {other.name} on {int(keep.sum())} images: mean AUC {bootstrap.format_delta(diff['mean_auc'])}")
    return diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", type=int, action="append", help="train only these folds (repeatable)")
    parser.add_argument("--report", action="store_true", help="train nothing: report the folds that finished")
    parser.add_argument("--seed", type=int, default=2017, help="seed of the fold assignment")
    parser.add_argument("--recipe", default="standard", help="quick, standard (the default) or none")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override key=value")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-runs" / "quality")
    parser.add_argument("--name", default=None, help="experiment folder name (default: from recipe and --set)")
    parser.add_argument("--against", help="another experiment's NAME: the paired difference on the same images")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's, one per core); 1 is faster on a machine other jobs share")
    parser.add_argument("--no-tta-check", action="store_true", help="skip scoring the best weights without TTA")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"dataset folder not found: {args.data} (the shared ISIC 2017 training set)")

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    overrides = parse_sets(args.sets)
    base = settings.default_config() if args.recipe == "none" else settings.recipe_config(args.recipe)
    base = settings.merge_config(base, overrides)
    name = args.name or "-".join([args.recipe] + [s.replace("/", "_") for s in args.sets])
    out = args.out / name
    specs = fold_specs(args.data, args.folds, args.seed)
    wanted = [] if args.report else args.only if args.only else list(range(args.folds))
    print(f"{name}: {args.folds} folds of {args.data} (seed {args.seed}); training folds {list(wanted)}", flush=True)

    pooled: dict[str, list] = {"labels": [], "probs": [], "plain": [], "tta": [], "ids": [], "image_alone": []}
    folds, names = [], None
    for k in range(args.folds):
        folder = out / f"fold{k}"
        if k in wanted:
            print(f"fold {k}: train {len(specs[k]['splits']['train'])}, val {len(specs[k]['splits']['val'])}, "
                  f"test {len(specs[k]['splits']['test'])}", flush=True)
        run_dir = train_fold(folder, specs[k], base) if k in wanted else finished_run(folder)
        if run_dir is None:
            continue
        seconds = run_seconds(run_dir)
        ids, labels, probs, names = bootstrap.load_predictions(run_dir, "test")
        scored_with_tta = bool(runs.read_config(run_dir).get("tta"))
        row = {"fold": k, "run": str(run_dir), "seconds": seconds,
               "best_epoch": runs.read_status(run_dir).get("best", {}).get("epoch"),
               "test": scores(labels, probs, names)}
        pooled["labels"].append(labels)
        pooled["ids"].append(np.array(ids))
        pooled["probs"].append(probs)
        if not args.no_tta_check:  # the same best weights scored the other way (with / without the 8 views)
            other = inference.evaluate_run(run_dir, "test", calibrated=False, tta=not scored_with_tta)
            order = {sample_id: i for i, sample_id in enumerate(other["ids"])}
            other_probs = other["raw_probs"][[order[i] for i in ids]]
            row["test_without_tta" if scored_with_tta else "test_tta"] = scores(labels, other_probs, names)
            pooled["plain"].append(other_probs if scored_with_tta else probs)
            pooled["tta"].append(probs if scored_with_tta else other_probs)
        if (run_dir / patient_prior.FILE).is_file():  # the same predictions from the image alone
            alone = inference.evaluate_run(run_dir, "test", calibrated=False, metadata=False)
            order = {sample_id: i for i, sample_id in enumerate(alone["ids"])}
            pooled["image_alone"].append(alone["raw_probs"][[order[i] for i in ids]])
            row["test_image_alone"] = scores(labels, pooled["image_alone"][-1], names)
        folds.append(row)
        print(line(f"fold {k}", row["test"], seconds) + f"  best epoch {row['best_epoch']}", flush=True)

    if not folds:
        sys.exit("no finished fold yet")
    labels, probs = np.concatenate(pooled["labels"]), np.concatenate(pooled["probs"])
    summary = {"name": name, "data": str(args.data), "folds": args.folds, "seed": args.seed,
               "recipe": args.recipe, "overrides": overrides, "threads": args.threads, "n_images": int(len(labels)),
               "per_fold": folds,
               "pooled": scores(labels, probs, names),
               "minutes_per_fold": float(np.mean([f["seconds"] for f in folds]) / 60)}
    print(line("pooled", summary["pooled"]) + f"  ({len(labels)} images, {len(folds)} folds, "
          f"{summary['minutes_per_fold']:.1f} min a fold)")
    if len(pooled["plain"]) == len(folds):
        plain, tta = np.concatenate(pooled["plain"]), np.concatenate(pooled["tta"])
        summary["pooled_plain"], summary["pooled_tta"] = scores(labels, plain, names), scores(labels, tta, names)
        summary["tta_gain"] = bootstrap.paired_differences(labels, plain, tta, names)
        print(line("plain", summary["pooled_plain"]))
        print(line("with TTA", summary["pooled_tta"]))
        print(f"TTA adds  mean AUC {bootstrap.format_delta(summary['tta_gain']['mean_auc'])}")
    if len(pooled["image_alone"]) == len(folds):
        alone = np.concatenate(pooled["image_alone"])
        summary["pooled_image_alone"] = scores(labels, alone, names)
        summary["metadata_gain"] = bootstrap.paired_differences(labels, alone, probs, names)
        print(line("image alone", summary["pooled_image_alone"]))
        print(f"metadata adds  mean AUC {bootstrap.format_delta(summary['metadata_gain']['mean_auc'])}")
    if args.against:
        summary["against"] = compare_with(args.out / args.against, labels, probs, np.concatenate(pooled["ids"]), names)
    runs.atomic_write_json(out / "summary.json", summary)


if __name__ == "__main__":
    main()
