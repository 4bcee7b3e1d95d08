"""A run's training config: its defaults, how a config is merged onto them and onto a recipe,
and the checks that refuse a bad value with a message naming it. config.json holds the
result, every value resolved."""

from __future__ import annotations

import copy
from pathlib import Path

from lesion_core import metrics, models, ranks, runs, transforms
from lesion_core.core import is_int, is_number
from lesion_core.errors import LesionLabError, TrainingError, require
from lesion_core.i18n import N_
from lesion_core.paths import absolute
from lesion_core.settings import recipes
from lesion_core.settings.device import AMP_MODES, DEVICE_NAME, DEVICES, gpu_count, resolve_device

OPTIMIZERS = ("sgd", "adam", "adamw")


SCHEDULERS = ("step", "cosine", "none")
MAX_IMAGE_SIZE = 4096  # larger sides fail later, in the pipeline (at most 10000) or out of memory


def default_config() -> dict:
    """The default recipe: EfficientNet-Lite0 fine-tuned from the offline ImageNet weights.

    AdamW lr 1e-3 with a cosine schedule, class-weighted cross-entropy, the default_train
    augmentation, 224 px, batch 32, 4 epochs: mean AUC 0.887 on real ISIC 2017 in
    MEASUREMENTS.md, about 5 minutes for 1,700 images on a 2-core CPU (bf16 + channels_last).
    """
    return {
        "data": {"root": "demo", "max_size": 0, "val_fraction": 0.15, "test_fraction": 0.15,
                 "split_seed": 42, "class_names": None, "split": None,
                 "labels": None},  # where a layout offers several: ISIC 2020 "diagnosis"
        "model": {"name": models.DEFAULT_MODEL, "weights": "default", "weights_path": None,
                  "freeze_backbone": False},
        # weight_decay None: the optimiser's own default (AdamW 0.01; SGD and Adam 0, as the notebook)
        # label_smoothing: the cross-entropy's target smoothing (0 = one-hot targets)
        "optim": {"optimizer": "adamw", "lr": 1e-3, "momentum": 0.9, "weight_decay": None, "label_smoothing": 0.0},
        # warmup_epochs: a linear warm-up of the learning rate over the first epochs (lr_factor)
        "scheduler": {"name": "cosine", "step_size": 7, "gamma": 0.1, "warmup_epochs": 0},
        "epochs": 4,
        "batch_size": 32,
        "image_size": None,  # None: the model entry's input_size
        "max_side": None,  # decoded-cache side; None: 8/7 of image_size (256 for 224)
        "num_workers": "auto",  # loading.resolve_num_workers: 0 on a 2-core CPU, else cores - 1 (<= 8)
        "compile": False,  # torch.compile the model: no gain on CPU (MEASUREMENTS.md); measure on a GPU
        "seed": 0,
        "class_weights": "auto",  # "auto" (inverse frequency), "none", or one weight per class
        # A pipeline spec, or a preset name: validate_config turns a name into that preset at
        # the run's image size, so config.json always holds the exact pipeline used.
        "augment": "default_train",
        # "auto": derived from augment (transforms.eval_spec): the same crops (to the lesion
        # too), deterministic, without flips, jitter or skin changes.
        "eval_augment": "auto",
        "device": "auto",  # auto, cpu, cuda, cuda:<index> or mps
        # How many processes Launch and Resume start: 1, or N under torchrun (DDP; one GPU each on
        # CUDA, gloo on the CPU). batch_size stays the global batch. The CLI trains this many only
        # when started with torchrun itself.
        "processes": 1,
        "amp": "auto",  # bf16 autocast on CPUs that support it (~2x), fp16/bf16 on CUDA
        "channels_last": True,
        # Recompute BatchNorm statistics after each training phase from up to this many training
        # images (eval transforms; 0 = off). Lite0/MobileNetV3 use BN momentum 0.01, so on a
        # short fine-tune the running statistics lag far behind the weights and the model in
        # eval mode predicts one class (seen on the 300-image ISIC sample).
        "bn_recalibration_images": 512,
        # The metric that picks the best epoch (metrics.HEADLINE_METRICS); None: ISIC 2017 mean
        # AUC for the 2017 classes, macro AUC otherwise. The trainer writes the one it used.
        "headline_metric": None,
        "sweep": None,  # {"id", "index", "point", "repeat"} for a run of a sweep (lesion_core.sweep); a tag only
        # The run's own predictions (val, test; evaluate and predict unless told otherwise) average
        # the 8 flips/90-degree rotations of each image (inference.tta): 8x the inference time.
        "tta": False,
        # Validation, best.pt and the final predictions use an exponential moving average of the
        # weights with this decay per training step (WeightAverage; 0 = off, the weights as trained).
        "ema": 0.0,
        # Train the head alone for this many first epochs (the backbone and its BatchNorm
        # statistics as loaded), then every layer; with freeze_backbone, the head alone throughout.
        "freeze_epochs": 0,
        # Combine the image model with the patients' age, sex and site where the dataset has them
        # (evaluation.patient: a prior fitted on the training split, weighted on val).
        "metadata": False,
        "recipe": None,  # the recipes.RECIPES entry the settings started from; a tag only
    }


def merge_config(base: dict, override: dict) -> dict:
    """base with override's values (sections merged key by key); unknown keys raise TrainingError."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if key == "resolved":  # written by the trainer; recomputed on every start
            merged[key] = copy.deepcopy(value)
        elif key not in base:
            raise TrainingError(f"unknown config key {key!r}; known keys: {', '.join(base)}")
        elif isinstance(base[key], dict) and not isinstance(value, dict):
            raise TrainingError(f"config section {key!r} must be an object of settings, got {value!r}")
        elif isinstance(base[key], dict):
            unknown = set(value) - set(base[key])
            if unknown:
                raise TrainingError(f"unknown key(s) in config section {key!r}: {', '.join(sorted(unknown))}; "
                                    f"known: {', '.join(base[key])}")
            merged[key].update(copy.deepcopy(value))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def recipe_config(name: str) -> dict:
    """default_config() with the recipe's settings, tagged with its name."""
    if not isinstance(name, str) or name not in recipes.RECIPES:
        raise TrainingError(f"unknown recipe {name!r}; use one of: {', '.join(recipes.RECIPES)}")
    return merge_config(default_config(), recipes.RECIPES[name] | {"recipe": name})


def validate_config(config: dict) -> dict:
    """A complete, checked config (defaults filled in); TrainingError/TransformError say what is wrong."""
    require(isinstance(config, dict), f"a config must be a JSON object, got {type(config).__name__}")
    try:
        # A named recipe is the base the config's own settings go on (recipes.recipe_config).
        base = recipe_config(config["recipe"]) if config.get("recipe") else default_config()
        return _validate_config(merge_config(base, config))
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        # A value of a type no check above foresaw (config.json is untrusted input): name it,
        # never a traceback.
        raise TrainingError(f"malformed config ({type(exc).__name__}: {exc})") from None


def _validate_config(config: dict) -> dict:
    _check_model(config["model"])
    _check_optim(config["optim"], config["scheduler"])
    for key, low in (("epochs", 1), ("batch_size", 1), ("bn_recalibration_images", 0), ("freeze_epochs", 0)):
        require(is_int(config[key]) and config[key] >= low, f"{key} must be an integer >= {low}, got {config[key]!r}")
    require(config["num_workers"] == "auto" or (is_int(config["num_workers"]) and config["num_workers"] >= 0),
             f'num_workers must be "auto" or an integer >= 0, got {config["num_workers"]!r}')
    for key in ("compile", "tta", "metadata"):
        require(isinstance(config[key], bool), f"{key} must be true or false, got {config[key]!r}")
    require(is_number(config["ema"]) and 0 <= config["ema"] < 1,
             f"ema must be a decay in [0, 1) (0 = off), got {config['ema']!r}")
    require(config["recipe"] is None or config["recipe"] in recipes.RECIPES,  # "" or 0 reach here
             f"unknown recipe {config['recipe']!r}; use one of: {', '.join(recipes.RECIPES)}")
    require(is_int(config["seed"]) and 0 <= config["seed"] < 2**63,  # torch seeds are 64-bit
             f"seed must be an integer from 0 to 2**63 - 1, got {config['seed']!r}")
    entry = models.MODELS[config["model"]["name"]]
    size = config["image_size"]
    require(size is None or (is_int(size) and entry.min_input_size <= size <= MAX_IMAGE_SIZE),
            f"image_size must be an integer from {entry.min_input_size} to {MAX_IMAGE_SIZE} for {entry.name}, "
            f"got {size!r}")
    side = config["max_side"]
    require(side is None or (is_int(side) and side >= (size or entry.input_size)),
             f"max_side must be empty or an integer >= the image size, got {side!r}")
    _check_data(config["data"])
    _check_class_weights(config["class_weights"], config["data"]["class_names"])
    require(config["headline_metric"] is None or config["headline_metric"] in metrics.HEADLINE_METRICS,
             f"unknown headline_metric {config['headline_metric']!r}; use one of: {', '.join(metrics.HEADLINE_METRICS)}")
    for key in ("augment", "eval_augment"):
        if config[key] == "auto":  # evaluation sees what training saw, without the randomness
            require(key == "eval_augment", 'augment cannot be "auto"; give a pipeline or a preset name')
            config[key] = transforms.eval_spec(config["augment"], image_size(config))
        elif isinstance(config[key], str):
            config[key] = transforms.preset(config[key], image_size(config))
        config[key] = transforms.validate_spec(config[key])
    mismatch = transforms.eval_mismatch(config["augment"], config["eval_augment"])
    # A run that already started (resolved is set) keeps its recorded pipelines, to resume as it began.
    require(mismatch is None or "resolved" in config, mismatch)
    require(isinstance(config["device"], str) and DEVICE_NAME.fullmatch(config["device"]) is not None,
             f"unknown device {config['device']!r}; use one of: {', '.join(DEVICES)} or cuda:<index>")
    require(config["amp"] in AMP_MODES, f"unknown amp mode {config['amp']!r}; use one of: {', '.join(AMP_MODES)}")
    resolve_device(config["device"])  # fails now, not after the run folder exists
    _check_processes(config)
    # Absolute paths: the trainer may run in another working directory (launch() uses the run's).
    if config["data"]["root"] != "demo":
        config["data"]["root"] = str(absolute(config["data"]["root"]))
    if config["model"]["weights_path"]:
        config["model"]["weights_path"] = str(absolute(config["model"]["weights_path"]))
    return config


def _check_model(cfg: dict) -> None:
    require(isinstance(cfg["name"], str) and cfg["name"] in models.MODELS,
             f"unknown model {cfg['name']!r}; choose one of: {', '.join(models.MODELS)}")
    sources = ("default",) + models.MODELS[cfg["name"]].weight_sources
    require(cfg["weights"] in sources,
             f"weights {cfg['weights']!r} are not available for {cfg['name']}; choose one of: {', '.join(sources)}")
    if cfg["weights"] == "file" or cfg["weights_path"]:
        require(bool(cfg["weights_path"]) and Path(cfg["weights_path"]).is_file(),
                 N_("weights file not found: {path}").format(path=cfg["weights_path"]))


def _check_optim(optim: dict, scheduler: dict) -> None:
    require(optim["optimizer"] in OPTIMIZERS,
             f"unknown optimizer {optim['optimizer']!r}; choose one of: {', '.join(OPTIMIZERS)}")
    require(is_number(optim["lr"]) and optim["lr"] > 0, f"learning rate must be > 0, got {optim['lr']!r}")
    require(is_number(optim["momentum"]) and optim["momentum"] >= 0, f"momentum must be >= 0, got {optim['momentum']!r}")
    decay = optim["weight_decay"]
    require(decay is None or (is_number(decay) and decay >= 0), f"weight_decay must be >= 0, got {decay!r}")
    require(scheduler["name"] in SCHEDULERS,
             f"unknown scheduler {scheduler['name']!r}; choose one of: {', '.join(SCHEDULERS)}")
    require(is_int(scheduler["step_size"]) and scheduler["step_size"] >= 1,
             f"step_size must be an integer >= 1, got {scheduler['step_size']!r}")
    require(is_number(scheduler["gamma"]) and scheduler["gamma"] > 0,
             f"gamma must be > 0, got {scheduler['gamma']!r}")
    warmup = scheduler["warmup_epochs"]
    require(is_number(warmup) and warmup >= 0, f"warmup_epochs must be a number >= 0, got {warmup!r}")
    smoothing = optim["label_smoothing"]
    require(is_number(smoothing) and 0 <= smoothing < 1, f"label_smoothing must be in [0, 1), got {smoothing!r}")


def _check_data(cfg: dict) -> None:
    root = cfg["root"]
    require(root == "demo" or (isinstance(root, str) and bool(root) and Path(root).is_dir()),
             N_("dataset folder not found: {root} (give a folder, or 'demo' for the built-in demo data)").format(
                 root=repr(root)))
    require(is_int(cfg["max_size"]) and cfg["max_size"] >= 0, f"max_size must be an integer >= 0, got {cfg['max_size']!r}")
    for key in ("val_fraction", "test_fraction"):
        require(is_number(cfg[key]) and 0 <= cfg[key] < 1, f"{key} must be in [0, 1), got {cfg[key]!r}")
    names = cfg["class_names"]
    require(names is None or (isinstance(names, list) and names and all(isinstance(n, str) for n in names)),
             f"class_names must be empty or a list of names, got {names!r}")
    require(cfg["split"] is None or isinstance(cfg["split"], dict), f"data.split must be an object, got {cfg['split']!r}")


def _check_class_weights(value, class_names) -> None:
    ok = value in ("auto", "none", True, False, None) or (
        isinstance(value, list) and value and all(is_number(w) and w >= 0 for w in value))
    require(ok, N_("class_weights must be 'auto', 'none' or a list of weights >= 0, got {value}").format(
        value=repr(value)))
    if isinstance(value, list) and class_names:  # else checked once the data is loaded
        require(len(value) == len(class_names),
                 N_("class_weights has {n} values for {classes} classes ({names})").format(
                     n=len(value), classes=len(class_names), names=", ".join(class_names)))


def _check_processes(config: dict) -> None:
    n, batch = config["processes"], config["batch_size"]
    require(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 64,
             f"processes must be an integer from 1 to 64, got {n!r}")
    if n == 1:
        return
    device = resolve_device(config["device"])
    require(device.type in ("cpu", "cuda") and device.index is None,
             N_("{n} processes need the device cpu, cuda or auto (one GPU each), not {device}").format(
                 n=n, device=config["device"]))
    require(device.type == "cpu" or n <= gpu_count(),
             N_("{n} processes need {n} GPUs; this machine has {gpus}").format(n=n, gpus=gpu_count()))
    ranks.local_batch(batch, n)  # an even share each (batch_size is checked above)


def image_size(config: dict) -> int:
    """Side of the square model input in pixels."""
    return config["image_size"] or models.MODELS[config["model"]["name"]].input_size


def run_config(run_dir) -> dict:
    """A trained run's config.json, checked before its model is used (it is untrusted input):
    TrainingError names the file and what is wrong."""
    run_dir = Path(run_dir)
    require((run_dir / "config.json").is_file(), N_("not a run folder (no config.json): {path}").format(path=run_dir))
    damage = [p for p in runs.run_problems(run_dir) if p.startswith("config.json")]
    require(not damage, N_("run {run} cannot be used: {damage}").format(run=run_dir.name, damage="; ".join(damage)))
    config = runs.read_config(run_dir)
    # Check every value as training would, except what may differ now: where the data and the
    # initial weights were, and which devices exist (the model is used on the CPU).
    probe = copy.deepcopy(config)
    probe["data"] = dict(probe.get("data") or {}, root="demo")
    probe["model"] = dict(probe.get("model") or {}, weights="default", weights_path=None)
    probe["device"] = "cpu"
    try:
        validate_config(probe)
    except LesionLabError as exc:
        raise TrainingError(N_("run {run} cannot be used: config.json: {error}").format(
            run=run_dir.name, error=exc)) from None
    names = config["data"].get("class_names")
    require(bool(names), N_("run {run} cannot be used: config.json has no class names (no epoch finished?)").format(
        run=run_dir.name))
    return config
