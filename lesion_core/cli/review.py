"""Command line: explain, calibrate, threshold (reviewing a run as a clinician would), and the
review part of `evaluate` (calibration, operating points, --tta, --explain)."""

from __future__ import annotations

import math
from pathlib import Path

from lesion_core.cli import progress


def _fraction(text: str) -> float:
    """A number from 0 to 1 (a specificity): argparse says what is wrong in one line otherwise."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text}")
    return value


def register(subparsers) -> None:
    """Add the explain, calibrate, threshold and report sub-commands."""
    from lesion_core.cli.names import DEFAULT_EXPLAIN_METHOD as DEFAULT_METHOD, EXPLAIN_METHODS as METHODS

    p = subparsers.add_parser("explain", help="heatmap of where the model looks in one image, and its lesion focus",
                              description="Class-activation heatmap (pytorch-grad-cam) of a run's best model on one "
                                          "image; with --mask, the share of the heatmap inside the lesion (focus) and "
                                          "whether its peak is in the lesion. Writes DIR/heatmap.png, heatmap.npy and "
                                          "explain.json.")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--mask", metavar="M", help="lesion mask (PNG): enables the focus score")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=tuple(METHODS))
    p.add_argument("--class", dest="class_name", metavar="C", help="class to explain (default: the predicted one)")
    p.add_argument("--uncalibrated", action="store_true", help="report the raw softmax probabilities")
    p.add_argument("--out", metavar="DIR", required=True)
    p.set_defaults(func=cmd_explain)

    p = subparsers.add_parser("calibrate", help="fit (or refit) a run's temperature scaling on its validation predictions")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.set_defaults(func=cmd_calibrate)

    p = subparsers.add_parser("threshold", help="save the decision threshold predict uses to flag a class",
                              description="Save a decision rule with the run: `predict` then reports 'refer: CLASS "
                                          "suspected' when p(CLASS) >= the threshold. Give --threshold, or "
                                          "--specificity to take the threshold reaching it on the validation split.")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--class", dest="class_name", metavar="C", required=True)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--threshold", type=float, help="calibrated probability, 0..1")
    group.add_argument("--specificity", type=_fraction,
                       help="smallest acceptable specificity on the validation split (raw probabilities, as the ROC)")
    p.set_defaults(func=cmd_threshold)

    p = subparsers.add_parser("report", help="one self-contained HTML report of a run, for a clinician to read")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--out", metavar="FILE", required=True, help="the HTML file to write, e.g. report.html")
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--no-heatmaps", action="store_true", help="skip the worst errors' heatmaps (needs the data)")
    p.set_defaults(func=cmd_report)


def add_evaluate_options(parser) -> None:
    """The review flags of `evaluate` (registered by cli.train's evaluate parser)."""
    from lesion_core.cli.names import DEFAULT_EXPLAIN_METHOD as DEFAULT_METHOD, EXPLAIN_METHODS as METHODS

    parser.add_argument("--uncalibrated", action="store_true", help="raw softmax probabilities (no temperature scaling)")
    parser.add_argument("--tta", action="store_true",
                        help="average the 8 flips/90-degree rotations; AUCs with and without go to metrics_SPLIT.json")
    parser.add_argument("--explain", action="store_true",
                        help="heatmap of every image: focus columns in predictions_SPLIT.csv, a summary in metrics_SPLIT.json")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=tuple(METHODS), help="heatmap method for --explain")


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def print_review(result: dict, run_dir) -> None:
    """Calibration and operating points of an evaluate_run() result, as text."""
    from lesion_core.evaluation import calibration, operating
    from lesion_core.inference import temperature as scaling

    names = result["class_names"]
    report = calibration.report(result["raw_probs"], result["labels"], scaling.read_temperature(run_dir))
    print(f"calibration: temperature {report['temperature']:.3f}; ECE {_fmt(report['ece'])} -> "
          f"{_fmt(report['ece_calibrated'])}; Brier {_fmt(report['brier'])} -> {_fmt(report['brier_calibrated'])}"
          + ("" if result["temperature"] != 1.0 else " (probabilities shown uncalibrated)"))
    points = operating.operating_points(result["labels"], result["raw_probs"], names)
    print("operating points (class vs rest, raw probabilities as the AUC): sensitivity at specificity "
          "0.82 / 0.89 / 0.95, average precision")
    for name in names:
        sens = points[name]["sens_at_spec"]
        print(f"  {name}: {' / '.join(_fmt(v) for v in sens.values())}, AP {_fmt(points[name]['average_precision'])}")


def evaluate_extras(args, result: dict) -> None:
    """--tta and --explain of `evaluate`: compute, print and merge into the run's files."""
    from lesion_core import inference
    from lesion_core.evaluation import explain, review

    print_review(result, args.run)
    if args.tta:
        plain = inference.evaluate_run(args.run, split=args.split, data_root=args.moved_data, calibrated=not args.uncalibrated,
                                   tta=False)
        tta = {"auc": plain["auc"], "mean_auc": plain["mean_auc"], "auc_tta": result["auc"],
               "mean_auc_tta": result["mean_auc"]}
        review.update_metrics(args.run, args.split, {"tta": tta})
        print(f"test-time augmentation: mean AUC {_fmt(plain['mean_auc'])} without, {_fmt(result['mean_auc'])} with")
    if args.explain:
        def wrap(it):
            return progress.bar(it, f"heatmaps {args.split}")
        focus = explain.explain_split(args.run, args.split, args.method, data_root=args.moved_data,
                                      calibrated=not args.uncalibrated, wrap=wrap)
        names = result["class_names"]
        labels = {i: names[int(y)] for i, y in zip(result["ids"], result["labels"])}
        correct = {i: int(p) == int(y) for i, p, y in zip(result["ids"], result["predicted"], result["labels"])}
        summary = explain.summarize(focus, labels, correct, args.method)
        review.update_metrics(args.run, args.split, {"explain": summary})
        explain.add_focus_columns(Path(args.run) / f"predictions_{args.split}.csv", focus)
        print(f"lesion focus ({args.method}, {summary['n_scored']} of {summary['n_images']} images scored): mean "
              f"{_fmt(summary['mean_focus'])}, focus < 0.5 in {_fmt(summary['share_focus_below_0_5'])}, "
              f"pointing game {_fmt(summary['pointing_game'])}"
              + (f"; the lesion covers {_fmt(summary['mean_lesion_share'])} of the model's view, focus lift "
                 f"{_fmt(summary['focus_lift'], 2)} (1.00: no preference for the lesion)" if "focus_lift" in summary else ""))


def cmd_explain(args) -> int:
    from lesion_core import data
    from lesion_core.errors import DataError
    from lesion_core.evaluation import explain

    if not Path(args.image).is_file():
        raise DataError(f"image not found: {args.image}")
    image = data.read_image(args.image)
    mask = data.read_mask(args.mask, image.shape[:2]) if args.mask else None
    from lesion_core.inference.temperature import read_calibration

    # predict's default: the temperature only where cross-fitting showed it helps
    explainer = explain.Explainer(args.run, args.method,
                                  calibrated=not args.uncalibrated and read_calibration(args.run).by_default)
    result = explainer.explain(image, mask, args.class_name)
    explain.write_explanation(result, args.out)
    if mask is None:
        focus = "no mask given: no lesion focus"
    elif result.focus is None:
        focus = "no lesion focus (empty mask, or no positive evidence for this class)"
    else:
        focus = (f"lesion focus {result.focus:.3f}, peak {'inside' if result.peak_in_lesion else 'outside'} the lesion; "
                 f"the lesion covers {result.lesion_share:.0%} of the model's view, so focus lift "
                 f"{result.focus_lift:.2f} (1.00: no preference for the lesion)")
    print(f"{result.method} heatmap of {result.target_class} (p {result.probabilities[result.target_class]:.3f}); "
          f"{focus}\nwritten to {args.out}")
    return 0


def cmd_calibrate(args) -> int:
    from lesion_core.evaluation import calibration
    from lesion_core.inference import temperature as scaling

    record = calibration.calibrate_run(args.run)
    print(f"temperature {record['temperature']:.3f} fitted on {record['n']} validation images: "
          f"NLL {_fmt(record['nll'])} -> {_fmt(record['nll_calibrated'])}, "
          f"ECE {_fmt(record['ece'])} -> {_fmt(record['ece_calibrated'])}\n"
          f"written to {Path(args.run) / scaling.CALIBRATION_FILE}")
    return 0


def cmd_threshold(args) -> int:
    from lesion_core import inference
    from lesion_core.errors import TrainingError
    from lesion_core.evaluation import operating

    threshold = args.threshold
    if args.specificity is not None:
        path = Path(args.run) / "predictions_val.csv"
        if not path.is_file():
            raise TrainingError(f"{path} is missing: --specificity needs the validation predictions")
        frame = inference.read_predictions(path)
        names = frame.attrs["class_names"]
        if args.class_name not in names:
            raise TrainingError(f"class {args.class_name!r} is not one of the run's classes ({', '.join(names)})")
        # raw probabilities, as the stored operating points and the ROC: the rule records it
        probs = frame[[f"prob_{n}" for n in names]].to_numpy(dtype=float)
        is_class = (frame["label"] == args.class_name).to_numpy()
        sens, threshold = operating.sensitivity_at_specificity(is_class, probs[:, names.index(args.class_name)],
                                                               args.specificity)
        if not math.isfinite(threshold) or threshold > 1 or sens <= 0:
            best = operating.best_specificity_with_sensitivity(is_class, probs[:, names.index(args.class_name)])
            raise TrainingError(f"no threshold reaches specificity {args.specificity} with any sensitivity on val"
                                + (f"; the highest reachable is {best:.3f} (--specificity {math.floor(best * 100) / 100:.2f})"
                                   if math.isfinite(best) else f": val has no {args.class_name} images, or only those"))
        print(f"specificity >= {args.specificity} on val: threshold {threshold:.4f}, sensitivity {sens:.3f}")
    rule = operating.save_threshold(args.run, args.class_name, threshold, calibrated=args.specificity is None)
    measured = (f" (on val: sensitivity {rule['sensitivity']:.3f}, specificity {rule['specificity']:.3f}, "
                f"{'calibrated' if rule['calibrated'] else 'raw'} probabilities)" if "sensitivity" in rule else "")
    print(f"saved: refer when p({rule['class']}) >= {rule['threshold']:.4f}{measured}")
    return 0


def cmd_report(args) -> int:
    from lesion_core.errors import TrainingError
    from lesion_core.evaluation import report

    if not (Path(args.run) / "config.json").is_file():
        raise TrainingError(f"not a run folder (no config.json): {args.run}")
    progress.step(f"writing the report of {args.run} ({args.split}"
                  + (")..." if args.no_heatmaps else ", with heatmaps: the slow part)..."))
    path = report.write_report(args.run, args.out, args.split, with_heatmaps=not args.no_heatmaps)
    print(f"report written to {path}")
    return 0
