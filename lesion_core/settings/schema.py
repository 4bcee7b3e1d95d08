"""A run's training config: the schema's defaults (settings.fields), how a config is merged
onto them and onto a recipe, and the checks across settings that the schema's own types and
ranges cannot express (a model's smallest input, the data folder, the devices here). config.json
holds the result, every value resolved, with its schema "version" (settings.versions migrates
older files)."""

from __future__ import annotations

import copy
from pathlib import Path

from lesion_core import metrics, models, ranks, runs, transforms
from lesion_core.errors import LesionLabError, TrainingError, require
from lesion_core.i18n import N_
from lesion_core.paths import absolute
from lesion_core.settings import fields, recipes, versions
from lesion_core.settings.device import DEVICE_NAME, DEVICES, gpu_count, resolve_device
from lesion_core.settings.fields import MAX_IMAGE_SIZE, OPTIMIZERS, SCHEDULERS

__all__ = ["MAX_IMAGE_SIZE", "OPTIMIZERS", "SCHEDULERS", "default_config", "image_size", "merge_config",
           "recipe_config", "run_config", "validate_config"]


def default_config() -> dict:
    """The default recipe: EfficientNet-Lite0 fine-tuned from the offline ImageNet weights.

    AdamW lr 1e-3 with a cosine schedule, class-weighted cross-entropy, the default_train
    augmentation, 224 px, batch 32, 4 epochs: mean AUC 0.887 on real ISIC 2017 in
    MEASUREMENTS.md, about 5 minutes for 1,700 images on a 2-core CPU (bf16 + channels_last).
    Every value and its range is declared in settings.fields.
    """
    return fields.defaults()


def merge_config(base: dict, override: dict) -> dict:
    """base with override's values (sections merged key by key); unknown keys raise TrainingError."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if key == "resolved":  # written by the trainer; recomputed on every start
            merged[key] = copy.deepcopy(value)
        elif key not in base:
            raise TrainingError(fields.UNKNOWN_KEY.format(key=repr(key), known=", ".join(base)))
        elif isinstance(base[key], dict) and not isinstance(value, dict):
            raise TrainingError(N_("config section {key} must be an object of settings, got {value}").format(
                key=repr(key), value=repr(value)))
        elif isinstance(base[key], dict):
            unknown = set(value) - set(base[key])
            if unknown:
                raise TrainingError(fields.UNKNOWN_KEY.format(
                    key=", ".join(repr(f"{key}.{name}") for name in sorted(unknown)), known=", ".join(base[key])))
            merged[key].update(copy.deepcopy(value))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def recipe_config(name: str) -> dict:
    """default_config() with the recipe's settings, tagged with its name."""
    if not isinstance(name, str) or name not in recipes.RECIPES:
        raise TrainingError(N_("unknown recipe {value}; use one of: {choices}").format(
            value=repr(name), choices=", ".join(recipes.RECIPES)))
    return merge_config(default_config(), recipes.RECIPES[name] | {"recipe": name})


def check_partial(config: dict) -> dict:
    """A partial config (a recipe, a form's draft) checked against the schema alone: its keys
    known and each value of its type and in its range; TrainingError names the first refused."""
    require(isinstance(config, dict), N_("a config must be a JSON object, got {type}").format(
        type=type(config).__name__))
    checked = fields.check(merge_config(default_config(), config))
    require(checked["recipe"] is None or checked["recipe"] in recipes.RECIPES,
            N_("unknown recipe {value}; use one of: {choices}").format(
                value=repr(checked["recipe"]), choices=", ".join(recipes.RECIPES)))
    return config


def validate_config(config: dict) -> dict:
    """A complete, checked config (defaults filled in); TrainingError/TransformError say what is wrong."""
    require(isinstance(config, dict), N_("a config must be a JSON object, got {type}").format(
        type=type(config).__name__))
    config = versions.migrate(config)
    try:
        # A named recipe is the base the config's own settings go on (recipes.recipe_config).
        base = recipe_config(config["recipe"]) if config.get("recipe") else default_config()
        merged = merge_config(base, config)
        resolved = merged.pop("resolved", None)
        checked = fields.check(merged)  # types and ranges, as the schema declares them
        if resolved is not None:
            checked["resolved"] = resolved
        return _validate_config(checked)
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        # A value of a type no check foresaw (config.json is untrusted input): name it,
        # never a traceback.
        raise TrainingError(N_("malformed config ({error})").format(error=f"{type(exc).__name__}: {exc}")) from None


def _validate_config(config: dict) -> dict:
    """The checks across settings, on a config whose every value has the schema's type and range."""
    _check_model(config["model"])
    require(config["recipe"] is None or config["recipe"] in recipes.RECIPES,  # "" reaches here
            N_("unknown recipe {value}; use one of: {choices}").format(
                value=repr(config["recipe"]), choices=", ".join(recipes.RECIPES)))
    entry = models.MODELS[config["model"]["name"]]
    size = config["image_size"]
    require(size is None or entry.min_input_size <= size,
            N_("{key} must be an integer from {low} to {high} for {model}, got {value}").format(
                key="image_size", low=entry.min_input_size, high=MAX_IMAGE_SIZE, model=entry.name, value=repr(size)))
    side = config["max_side"]
    require(side is None or side >= (size or entry.input_size), fields.message("max_side", side))
    _check_data(config["data"])
    _check_class_weights(config["class_weights"], config["data"]["class_names"])
    require(config["headline_metric"] is None or config["headline_metric"] in metrics.HEADLINE_METRICS,
            fields.CHOICE.format(key="headline_metric", value=repr(config["headline_metric"]),
                                 choices=", ".join(metrics.HEADLINE_METRICS)))
    for key in ("augment", "eval_augment"):
        if config[key] == "auto":  # evaluation sees what training saw, without the randomness
            require(key == "eval_augment", N_('augment cannot be "auto"; give a pipeline or a preset name'))
            config[key] = transforms.eval_spec(config["augment"], image_size(config))
        elif isinstance(config[key], str):
            config[key] = transforms.preset(config[key], image_size(config))
        config[key] = transforms.validate_spec(config[key])
    mismatch = transforms.eval_mismatch(config["augment"], config["eval_augment"])
    # A run that already started (resolved is set) keeps its recorded pipelines, to resume as it began.
    require(mismatch is None or "resolved" in config, mismatch)
    require(DEVICE_NAME.fullmatch(config["device"]) is not None,
            N_("unknown device {value}; use one of: {choices} or cuda:<index>").format(
                value=repr(config["device"]), choices=", ".join(DEVICES)))
    resolve_device(config["device"])  # fails now, not after the run folder exists
    _check_processes(config)
    # Absolute paths: the trainer may run in another working directory (launch() uses the run's).
    if config["data"]["root"] != "demo":
        config["data"]["root"] = str(absolute(config["data"]["root"]))
    if config["model"]["weights_path"]:
        config["model"]["weights_path"] = str(absolute(config["model"]["weights_path"]))
    return config


def _check_model(cfg: dict) -> None:
    require(cfg["name"] in models.MODELS,
            N_("unknown model {value}; choose one of: {choices}").format(
                value=repr(cfg["name"]), choices=", ".join(models.MODELS)))
    sources = ("default",) + models.MODELS[cfg["name"]].weight_sources
    require(cfg["weights"] in sources,
            N_("weights {value} are not available for {model}; choose one of: {choices}").format(
                value=repr(cfg["weights"]), model=cfg["name"], choices=", ".join(sources)))
    if cfg["weights"] == "file" or cfg["weights_path"]:
        require(bool(cfg["weights_path"]) and Path(cfg["weights_path"]).is_file(),
                N_("weights file not found: {path}").format(path=cfg["weights_path"]))


def _check_data(cfg: dict) -> None:
    root = cfg["root"]
    require(root == "demo" or (bool(root) and Path(root).is_dir()),
            N_("dataset folder not found: {root} (give a folder, or 'demo' for the built-in demo data)").format(
                root=repr(root)))


def _check_class_weights(value, class_names) -> None:
    if isinstance(value, list) and class_names:  # else checked once the data is loaded
        require(len(value) == len(class_names),
                 N_("class_weights has {n} values for {classes} classes ({names})").format(
                     n=len(value), classes=len(class_names), names=", ".join(class_names)))


def _check_processes(config: dict) -> None:
    n, batch = config["processes"], config["batch_size"]  # in the schema's range
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
    config = versions.migrate(runs.read_config(run_dir))
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
