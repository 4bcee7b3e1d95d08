"""Command line: train, evaluate, predict, models (thin wrappers over lesion_core.training, .inference)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lesion_core.cli import progress
from lesion_core.cli import review as cli_review
from lesion_core.errors import TrainingError
from lesion_core.paths import absolute
from lesion_core.settings import fields, recipes


def register(subparsers) -> None:
    """Add the train, evaluate, predict and models sub-commands."""
    p = subparsers.add_parser("train", help="train a model; progress and results go to a run folder",
                              description="Train a model. Without options beyond --data and --out: the recipe for "
                                          "the data (--recipe): 'quick' on the demo, 'standard' on a dataset folder "
                                          "(EfficientNet-Lite0 from offline ImageNet weights, AdamW with warm-up and "
                                          "cosine, label smoothing, class weighting, default_train augmentation, "
                                          "224 px, test-time augmentation; see the README for its measured quality). "
                                          "An option's range and default are the config schema's (settings.fields); "
                                          "the recipe sets some of them otherwise.")
    # Every option that sets one setting is the schema's (settings.fields): its name, type,
    # range, choices and help; a value out of range is refused here, before torch loads.
    for flag, _key, options in fields.cli_options():
        p.add_argument(flag, **options)
    p.add_argument("--recipe", help="the settings to start from: quick or standard (default: quick for the demo, "
                                    "standard for a dataset folder); the other options override them")
    p.add_argument("--pretrained", metavar="random|offline|torchvision|FILE", help="initial weights")
    p.add_argument("--augment", metavar="PIPELINE.json|PRESET",
                   help="training augmentation: a pipeline file, or a preset name (notebook_train, default_train, eval)")
    p.add_argument("--config", metavar="FILE", help="JSON config (settings.default_config() layout); flags override it")
    p.add_argument("--resume", metavar="RUN", help="continue a stopped or interrupted run folder")
    p.add_argument("--out", metavar="RUNS_DIR", help="folder that receives the run folder")
    p.add_argument("--run-dir", help=argparse.SUPPRESS)  # a folder made by training.launch()
    p.set_defaults(func=cmd_train)
    p.error = _one_line_error(p)

    p = subparsers.add_parser("evaluate", help="metrics and confusion matrix of a run's best model",
                              description="Score a run's best model on its own val or test split, or with "
                                          "--data on every usable image of another dataset (an external test set).")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--data", metavar="DIR",
                   help="an external test set: every usable image of this dataset folder is scored; writes "
                        "predictions_external_<name>.csv and metrics_external_<name>.json in the run folder")
    p.add_argument("--name", help="the <name> of those files (default: the dataset folder's name)")
    p.add_argument("--moved-data", metavar="DIR", help="the run's own dataset, when it moved since training")
    p.add_argument("--allow-missing", action="store_true",
                   help="score the images still there when some recorded ones are missing or unreadable")
    p.add_argument("--out", metavar="FILE", help="also write the metrics as JSON (with the count of missing images)")
    cli_review.add_evaluate_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser("predict", help="class probabilities of images (JSON for one, CSV for several)",
                              description="Classify images with a run's best model: image files, or folders "
                                          "(their .jpg/.png files; a dataset folder's images/).")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("images", metavar="DIR_OR_IMAGE", nargs="+")
    p.add_argument("--mask", metavar="MASK", help="lesion mask of a single image, for runs trained on lesion crops")
    p.add_argument("--masks", metavar="DIR", help="folder of masks (<image stem>.png or <stem>_segmentation.png); "
                                                  "default: masks/ beside a dataset's images/")
    p.add_argument("--out", metavar="CSV", help="write file, prob_<class>..., pred, uncertain to this CSV")
    calibrated = p.add_mutually_exclusive_group()
    calibrated.add_argument("--uncalibrated", action="store_true", help="raw softmax probabilities (no temperature scaling)")
    calibrated.add_argument("--calibrated", action="store_true",
                            help="apply the run's temperature even where cross-fitting on validation showed no gain")
    p.add_argument("--tta", action="store_true", help="average the 8 flips/90-degree rotations of the image")
    p.add_argument("--age", help="the patient's age in years, for a run trained with metadata (default: unknown)")
    p.add_argument("--sex", help="the patient's sex (male or female), for a run trained with metadata")
    p.add_argument("--site", help="the lesion's anatomic site, for a run trained with metadata")
    p.set_defaults(func=cmd_predict)

    p = subparsers.add_parser("models", help="list the model zoo")
    p.set_defaults(func=cmd_models)


def _one_line_error(parser):
    """The train command's usage errors as one line (its usage runs to a screenful): the schema's
    message names the setting and its range."""
    def error(message: str):
        parser.exit(2, f"error: {message}\n")
    return error


def config_from_args(args) -> dict:
    """The run's config: the recipe's, then --config FILE's settings, then the flags given (flags win)."""
    from lesion_core import transforms

    config = {}
    if args.config:
        try:
            config = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TrainingError(f"cannot read config file {args.config}: {exc}") from None
        if not isinstance(config, dict):
            raise TrainingError(f"config file {args.config} must hold a JSON object")

    def put(section, key, value):
        if value is not None:
            (config.setdefault(section, {}) if section else config)[key] = value

    for flag, key, _options in fields.cli_options():
        section, _, name = key.rpartition(".")
        put(section, name, getattr(args, flag.removeprefix("--").replace("-", "_")))
    if args.data not in (None, "demo"):
        config["data"]["root"] = str(absolute(args.data))
    if args.pretrained is not None:
        if args.pretrained in ("default", "random", "offline", "torchvision"):
            put("model", "weights", args.pretrained)
        else:
            put("model", "weights", "file")
            put("model", "weights_path", args.pretrained)
    if args.augment in transforms.PRESETS:
        put(None, "augment", args.augment)  # sized to the run's image size by validate_config
    elif args.augment:
        put(None, "augment", transforms.load_spec(args.augment))
    # The recipe under it all (validate_config starts from it): --recipe, else the file's, else
    # the one for the data.
    config["recipe"] = args.recipe or config.get("recipe") or recipes.recipe_for((config.get("data") or {}).get("root"))
    return config  # settings.validate_config makes its paths absolute


class _Bars:
    """tqdm progress bars for the trainer's on_batch/on_log callbacks (one bar per phase)."""

    def __init__(self):
        self.bar = None
        self.key = None

    def batch(self, status: dict) -> None:
        key = (status["epoch"], status["phase"])
        if key != self.key:
            self.close()
            self.key = key
            self.bar = progress.live(total=status["n_iters"], desc=f"epoch {key[0]} {key[1]}", unit="batch")
        self.bar.set_postfix(img_s=f"{status['images_per_s']:.1f}", eta=f"{status['eta_s']:.0f}s", refresh=False)
        self.bar.update(status["iteration"] - self.bar.n)

    def log(self, line: str) -> None:
        from tqdm import tqdm

        tqdm.write(line, file=sys.stdout)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _absolute_paths(args, *names) -> None:
    """Make the named path arguments absolute, relative to where the command was started."""
    for name in names:
        if getattr(args, name, None):
            setattr(args, name, str(absolute(getattr(args, name))))


def cmd_train(args) -> int:
    from lesion_core import ranks, runs, training
    from lesion_core.training import ddp

    _absolute_paths(args, "out", "resume", "run_dir")  # --data: config_from_args; weights: validate_config
    bars = _Bars()
    options = [name for name, value in vars(args).items()
               if value is not None and name not in ("resume", "run_dir", "func", "command")]
    try:
        if args.resume or args.run_dir:
            if options:
                flags = ", ".join("--" + o.replace("_", "-") for o in options)
                raise TrainingError(f"--resume/--run-dir take the run's own config; drop {flags}")
            if ranks.launched():  # torchrun: one run, every process a share of each batch
                run_dir = ddp.train(resume=args.resume, run_dir=args.run_dir, on_batch=bars.batch,
                                            on_log=bars.log)
            else:
                run_dir = training.run_training(resume=args.resume, run_dir=args.run_dir,
                                             on_batch=bars.batch, on_log=bars.log)
        else:
            if not args.out:
                raise TrainingError("give --out RUNS_DIR (the folder that receives the run folder)")
            if not args.data and not args.config:
                raise TrainingError("give --data DIR (a dataset folder) or --data demo")
            if ranks.launched():
                run_dir = ddp.train(config_from_args(args), args.out, on_batch=bars.batch, on_log=bars.log)
            else:
                run_dir = training.run_training(config_from_args(args), args.out, on_batch=bars.batch, on_log=bars.log)
    finally:
        bars.close()
    if int(os.environ.get("RANK", "0")) > 0:
        return 0  # rank 0 reports
    status = runs.read_status(run_dir)
    print(f"{status.get('message')}\nrun folder: {run_dir}")
    return 0 if status.get("state") in ("finished", "stopped") else 1


def format_confusion(confusion, class_names, percent: bool = False) -> str:
    """A text table: rows = true class, columns = predicted class."""
    width = max(10, *(len(n) for n in class_names)) + 2
    lines = ["true \\ pred".ljust(width) + "".join(n[:width - 2].rjust(width) for n in class_names)]
    for name, row in zip(class_names, confusion):
        cells = (f"{v:.1f}%" if percent else str(int(v)) for v in row)
        lines.append(name.ljust(width) + "".join(c.rjust(width) for c in cells))
    return "\n".join(lines)


def cmd_evaluate(args) -> int:
    from lesion_core import inference

    def bar(loader):
        return progress.bar(loader, f"evaluating {args.data or args.split}")

    _absolute_paths(args, "run", "data", "moved_data", "out")
    if args.data:
        from lesion_core.evaluation import external

        if args.moved_data:
            raise TrainingError("give --data (an external test set) or --moved-data (the run's own data), not both")
        result = external.evaluate_external(args.run, args.data, name=args.name, wrap=bar)
        scope = f"external {result['name']} ({args.data})"
    else:
        result = inference.evaluate_run(args.run, split=args.split, data_root=args.moved_data, wrap=bar,
                                    allow_missing=args.allow_missing, calibrated=not args.uncalibrated,
                                    tta=args.tta or None)  # None: as the run was scored
        scope = args.split
    names = result["class_names"]
    def fmt(v):
        return "n/a" if v != v else f"{v:.4f}"  # NaN != NaN
    missing = result.get("missing") or []
    if missing:
        print(f"warning: {len(missing)} recorded {args.split} images are missing or unreadable; "
              f"scored the other {len(result['ids'])}")
    print(f"{scope}: {len(result['ids'])} images, accuracy {result['accuracy']:.4f}, "
          f"mean AUC {fmt(result['mean_auc'])} (over {', '.join(names[i] for i in result['scored_classes'])})")
    print(f"  macro AUC {fmt(result['macro_auc'])}, balanced accuracy {fmt(result['balanced_accuracy'])}")
    if not args.data:  # a re-score reproduces the run's own metrics, or says what differs and why
        from lesion_core import runs
        from lesion_core.inference.score import stored_differences

        differs = stored_differences(result, runs.read_metrics(args.run, args.split), runs.read_config(args.run).get("tta"))
        name = f"metrics_{args.split}.json"
        print(f"  (raw probabilities) differs from {name}: " + "; ".join(differs) if differs
              else f"  (raw probabilities) reproduces {name}" if runs.read_metrics(args.run, args.split)
              else f"  (raw probabilities) no {name} to compare with")
    if result["undefined_auc"]:
        print(f"mean AUC undefined: no images (or only images) of {', '.join(result['undefined_auc'])} "
              f"in the {args.split} split, so their AUC cannot be computed")
    for i, name in enumerate(names):
        print(f"  {name}: AUC {fmt(result['auc'][i])}, precision {result['precision'][i]:.3f}, "
              f"recall {result['recall'][i]:.3f}, n {int(result['counts'][i])}")
    print("confusion matrix:\n" + format_confusion(result["confusion"], names))
    print("confusion matrix (row %):\n" + format_confusion(result["confusion_pct"], names, percent=True))
    if args.data:
        if result["n_excluded"]:
            print(f"{result['n_excluded']} rows of {args.data} were not usable (check-data {args.data} lists them)")
        if result["no_mask"]:
            print(f"{len(result['no_mask'])} images without a mask left out: this run crops to the lesion")
        print(f"predictions: {result['predictions_path']}\nmetrics: {result['metrics_path']}")
    else:
        cli_review.evaluate_extras(args, result)
    if args.out:
        from lesion_core import metrics, runs

        per_sample = ("predicted", "confidence", "loss", "ids", "missing", "no_mask", "labels", "raw_probs",
                      "predictions_path", "metrics_path")
        summary = {k: v for k, v in result.items() if k not in per_sample}
        runs.atomic_write_json(Path(args.out), metrics.to_jsonable(summary) | {
            "n": len(result["ids"]), "n_missing": len(missing), "missing": missing})
        print(f"metrics written to {args.out}")
    return 0


def cmd_predict(args) -> int:
    from lesion_core import data, inference, paths, runs
    from lesion_core.errors import DataError
    from lesion_core.evaluation import external
    from lesion_core.inference import temperature as scaling
    from lesion_core.inference.decision import decide

    _absolute_paths(args, "run", "mask", "masks", "out")
    images = external.collect_images(args.images)
    if args.mask and len(images) != 1:
        raise DataError("--mask is for a single image; give --masks DIR for several")
    meta = data.patient_meta(args.age or "", args.sex or "", args.site or "")
    if args.age and "age" not in meta:
        raise DataError(f"--age {args.age!r} is not an age in years from 0 to 120")
    fitted = scaling.read_calibration(args.run)
    calibrated = args.calibrated or (not args.uncalibrated and fitted.by_default)
    if fitted.problem and not args.uncalibrated:  # never silently raw where calibrated was asked for
        print(f"warning: {fitted.problem}", file=sys.stderr)
    elif fitted.scaled and not calibrated and not args.uncalibrated:  # raw by default, and said so
        print(f"raw probabilities: calibration {fitted.note or 'not applied by default'} (--calibrated applies it)",
              file=sys.stderr)
    if len(images) == 1 and not args.out:  # one image: its probabilities as JSON, as always
        image = data.read_image(images[0])
        mask_path = args.mask or external.find_mask(images[0], args.masks)
        mask = data.read_mask(mask_path, image.shape[:2]) if mask_path else None
        probs = inference.predict_image(args.run, image, mask, calibrated=calibrated, tta=args.tta or None, meta=meta)
        outcome = decide(args.run, probs, calibrated, fitted.temperature)
        print(json.dumps({"probabilities": probs} | outcome, indent=2))
        if outcome["decision"] is not None:  # the line people read, on stderr as always
            print(f"decision: {outcome['decision']['text']}", file=sys.stderr)
        elif outcome["decision_withheld"]:
            print(outcome["decision_withheld"], file=sys.stderr)
        return 0
    rows, problems = external.predict_files(args.run, images, masks_dir=args.masks, mask=args.mask, meta=meta,
                                            calibrated=calibrated,
                                            wrap=lambda paths: progress.bar(paths, "classifying", unit="image"))
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if not rows:
        raise DataError(f"none of the {len(images)} images could be classified")
    text = external.predictions_csv(rows, runs.read_config(args.run)["data"]["class_names"])
    if not args.out:
        sys.stdout.write(text)
    else:
        paths.atomic_write_text(Path(args.out), text)
        print(f"{len(rows)} images classified ({sum(r['uncertain'] for r in rows)} uncertain), "
              f"{len(problems)} skipped: {args.out}")
    return 1 if problems else 0


def cmd_models(args) -> int:
    import torch

    from lesion_core import models

    print(f"{'name':20} {'input':>5} {'params':>8}  {'weights':28} description")
    for name, entry in models.MODELS.items():
        with torch.device("meta"):  # counts parameters without allocating or initialising them
            n_params = sum(p.numel() for p in entry.build(3).parameters())
        print(f"{name:20} {entry.input_size:5d} {n_params / 1e6:7.2f}M  {', '.join(entry.weight_sources):28} "
              f"{entry.description}")
    print(f"default: {models.DEFAULT_MODEL}; params counted with a 3-class head")
    return 0
