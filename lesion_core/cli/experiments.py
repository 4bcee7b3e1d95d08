"""Experiment sub-commands: compare two runs, a run's robustness report, sweeps."""

from __future__ import annotations

import json
import sys

from lesion_core.cli import progress


def register(subparsers) -> None:
    """Add the compare, robustness and sweep sub-commands."""
    p = subparsers.add_parser("compare", help="paired comparison of two runs on the same images, with a verdict")
    p.add_argument("run_a", metavar="RUN_A", help="run folder A")
    p.add_argument("run_b", metavar="RUN_B", help="run folder B")
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", action="store_true", help="print {split, n, metrics, verdict, same_images}")
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser("robustness", help="re-score a run's split under skin-tone and other shifts, with intervals")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--moved-data", metavar="DIR", help="the run's dataset, when it moved since training")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_robustness)

    p = subparsers.add_parser("sweep", help="train every combination of a grid of settings, one run at a time",
                              description='SPEC.json: {"base": {...config...}, "grid": {"optim.lr": [0.001, 0.0003], '
                                          '"augment": ["default_train", "notebook_train"]}, "repeats": 1}. Started '
                                          "again with the same spec, a sweep keeps its finished runs and resumes.")
    p.add_argument("spec", metavar="SPEC.json")
    p.add_argument("--out", required=True, metavar="RUNS_DIR", help="folder that receives the run folders")
    p.set_defaults(func=cmd_sweep)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def cmd_compare(args) -> int:
    from lesion_core.evaluation import bootstrap, compare
    from lesion_core.metrics import to_jsonable

    progress.step(f"comparing {args.split} predictions, {args.resamples} paired bootstrap resamples...")
    result = compare.compare_runs(args.run_a, args.run_b, args.split, args.resamples, args.seed)
    if args.json:
        print(json.dumps(to_jsonable(compare.json_summary(result)), indent=2, allow_nan=False))
        return 0
    print(f"A = {result['run_a']}\nB = {result['run_b']}")
    if result["config_diff"]:
        print("settings that differ:")
        for row in result["config_diff"]:
            print(f"  {row['setting']}: A {row[result['run_a']]} | B {row[result['run_b']]}")
    else:
        print("same settings")
    n = result["n"] if result["same_images"] else "different"
    print(f"{args.split} images: {n}")
    print(f"{'metric':28} {'A':>7} {'B':>7}  B - A [95% CI]")
    for name, row in result["metrics"].items():
        print(f"{name:28} {_fmt(row['a']):>7} {_fmt(row['b']):>7}  {bootstrap.format_delta(row)}")
    print(f"verdict (mean AUC): {compare.verdict_text(result)}")
    if result["disagreements"]:
        right_a = sum(r["right"] == "a" for r in result["disagreements"])
        print(f"images one run gets right and the other wrong: {len(result['disagreements'])} "
              f"(A right {right_a}, B right {len(result['disagreements']) - right_a})")
    sys.stdout.flush()
    return 0


def cmd_robustness(args) -> int:
    from lesion_core.evaluation import bootstrap, robustness
    from lesion_core.metrics import to_jsonable

    report = robustness.robustness_report(args.run, args.split, data_root=args.moved_data, n_resamples=args.resamples,
                                          on_progress=progress.step)  # stderr: a --json stdout stays JSON
    path = robustness.save_report(args.run, report)
    if args.json:
        print(json.dumps(to_jsonable(report), indent=2, allow_nan=False))
        return 0
    print(f"{report['split']}: {report['n']} images ({report['skipped_no_mask']} without a mask, skipped from "
          f"the skin conditions); {report['seconds']} s")
    print(f"unshifted: mean AUC {bootstrap.format_interval(report['baseline'].get('mean_auc'))}")
    print(f"{'condition':22} {'n':>4}  mean AUC [95% CI]        change [95% CI]")
    for row in report["conditions"]:
        interval = {"value": row["mean_auc"], "ci_low": row["ci_low"], "ci_high": row["ci_high"]}
        change = {"delta": row["delta"], "ci_low": row["delta_ci_low"], "ci_high": row["delta_ci_high"]}
        print(f"{row['name']:22} {row['n']:4d}  {bootstrap.format_interval(interval):24} {bootstrap.format_delta(change)}")
    print("unshifted, per skin-tone group of the images themselves:")
    for row in report["groups"]:
        interval = {"value": row["mean_auc"], "ci_low": row["ci_low"], "ci_high": row["ci_high"]}
        print(f"  {row['ita_group']:14} n {row['n']:4d}  mean AUC {bootstrap.format_interval(interval)}"
              + (f"  ({row['warning']})" if row["warning"] else ""))
    print(f"report written to {path}")
    return 0


def cmd_sweep(args) -> int:
    from lesion_core import sweep

    spec = sweep.load_spec(args.spec)
    print(f"{sweep.sweep_id(spec)}: {len(sweep.expand(spec))} runs into {args.out}", flush=True)
    done = sweep.run_sweep(spec, args.out, on_log=lambda line: print(line, flush=True))
    total = len(sweep.expand(spec))
    print(f"{len(done)} of {total} runs finished")
    return 0 if len(done) == total else 1
