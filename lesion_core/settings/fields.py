"""The training config's schema: every setting declared once, with its default, type, range,
help text and the message that refuses a bad value.

The rest is derived from it: settings.default_config() (the defaults), validate_config (the
types and ranges; schema.py adds the checks across settings), the `train` command's flags
(cli_options: names, types, help, choices), the Train page's widgets (number_limits, choices)
and the recipes' check (check_partial). This module imports pydantic and nothing heavy, so the
command line can build its parser from it before torch loads.

A message is `N_("... {key} ...")` rendered with the setting's dotted key and its range, so a
page translates it like any other engine message.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from lesion_core.errors import TrainingError
from lesion_core.i18n import N_

SCHEMA_VERSION = 2  # config.json's "version"; settings.versions migrates older files
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("step", "cosine", "none")
AMP_MODES = ("auto", "off", "bf16", "fp16")
MIN_IMAGE_SIZE = 16  # the smallest model's minimum (lenet); each model may ask more (models.MODELS)
MAX_IMAGE_SIZE = 4096  # larger sides fail later, in the pipeline (at most 10000) or out of memory
MAX_SEED = 2**63 - 1  # torch seeds are 64-bit
MAX_PROCESSES = 64
JS_MAX_INT = 2**53 - 1  # the largest integer a browser's number widget holds exactly

# The messages that refuse a value, by the kind of setting (the schema's type and bounds).
INT_AT_LEAST = N_("{key} must be an integer >= {low}, got {value}")
INT_RANGE = N_("{key} must be an integer from {low} to {high}, got {value}")
NUMBER_AT_LEAST = N_("{key} must be a number >= {low}, got {value}")
NUMBER_RANGE = N_("{key} must be a number from {low} to {high}, got {value}")
NUMBER_BELOW = N_("{key} must be a number in [{low}, {high}), got {value}")
BOOLEAN = N_("{key} must be true or false, got {value}")
CHOICE = N_("unknown {key} {value}; use one of: {choices}")
WRONG_TYPE = N_("{key} has a value of the wrong type: {value}")
UNKNOWN_KEY = N_("unknown config key {key}; known keys: {known}")


def setting(default: Any, help: str, *, flag: str | None = None, step: float | None = None,
            message: str | None = None, metavar: str | None = None, **bounds) -> Any:
    """A pydantic Field carrying what the CLI and the page need: help, the flag's name (None: no
    flag), the widget's step and, where the kind's message does not fit, the setting's own."""
    extra = {"help": help, "flag": flag, "step": step, "message": message, "metavar": metavar}
    return Field(default, json_schema_extra={k: v for k, v in extra.items() if v is not None}, **bounds)


class _Section(BaseModel):
    # strict: 8.0 is no epoch count and "0.99" no decay (config.json is untrusted input); ints
    # are accepted where a number is asked and stored as floats
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class DataSettings(_Section):
    root: str = setting("demo", N_("dataset folder, or 'demo' for the built-in demo data"), flag="--data")
    max_size: int = setting(0, N_("A seeded random subset of at most this many images, then split into train, val "
                                  "and test (the notebook's maxSize)"), flag="--max-size", ge=0, step=10)
    val_fraction: float = setting(0.15, N_("share of the images held out for validation"), ge=0, lt=1)
    test_fraction: float = setting(0.15, N_("share of the images held out for the test"), ge=0, lt=1)
    split_seed: int = setting(42, N_("seed of the train/val/test split"), ge=0, le=MAX_SEED)
    class_names: Annotated[list[str], Field(min_length=1)] | None = setting(
        None, N_("the classes, in the model's output order (empty: the data's)"),
                                            message=N_("{key} must be empty or a list of names, got {value}"))
    split: dict | None = setting(None, N_("the exact split of a run (written by the trainer)"),
                                 message=N_("{key} must be an object, got {value}"))
    labels: str | None = setting(None, N_("which labels where a layout offers several: ISIC 2020 'diagnosis'"),
                                 flag="--labels")


class ModelSettings(_Section):
    name: str = setting("efficientnet_lite0", N_("model name (see `models`)"), flag="--model")
    weights: str = setting("default", N_("initial weights: default, random, offline, torchvision or file"))
    weights_path: str | None = setting(None, N_("the initial weights' file, for weights 'file'"))
    freeze_backbone: bool = setting(False, N_("train the head alone throughout"))


class OptimSettings(_Section):
    optimizer: Literal[OPTIMIZERS] = setting("adamw", N_("the optimiser"), flag="--optimizer")
    lr: float = setting(1e-3, N_("learning rate"), flag="--lr", ge=1e-7, le=10.0, step=1e-4)
    momentum: float = setting(0.9, N_("SGD momentum"), flag="--momentum", ge=0.0, le=0.999, step=0.05)
    # None: the optimiser's own default (AdamW 0.01; SGD and Adam 0, as the notebook)
    weight_decay: float | None = setting(None, N_("weight decay (default: the optimiser's own: AdamW 0.01, "
                                                  "SGD/Adam 0)"), flag="--weight-decay", ge=0.0, le=1.0, step=0.01)
    label_smoothing: float = setting(0.0, N_("Targets of 1 - s for the true class and s spread over the others"),
                                     flag="--label-smoothing", ge=0.0, le=0.99, step=0.05)


class SchedulerSettings(_Section):
    name: Literal[SCHEDULERS] = setting("cosine", N_("the learning-rate schedule"), flag="--scheduler")
    step_size: int = setting(7, N_("StepLR period in epochs"), flag="--step-size", ge=1)
    gamma: float = setting(0.1, N_("StepLR factor"), flag="--gamma", ge=0.001, step=0.05)
    warmup_epochs: float = setting(0.0, N_("The learning rate rises linearly from almost 0 over these first epochs"),
                                   flag="--warmup-epochs", ge=0.0, le=50.0, step=0.5)


class TrainConfig(_Section):
    """A run's whole config (config.json without the trainer's "resolved" record)."""

    version: int = setting(SCHEMA_VERSION, N_("the config's schema version"), ge=1, le=SCHEMA_VERSION)
    data: DataSettings = Field(default_factory=DataSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    optim: OptimSettings = Field(default_factory=OptimSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    epochs: int = setting(4, N_("training epochs"), flag="--epochs", ge=1)
    batch_size: int = setting(32, N_("images per batch (the global batch under several processes)"),
                              flag="--batch-size", ge=1)
    image_size: int | None = setting(None, N_("model input side in pixels (default: the model's)"),
                                     flag="--image-size", ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE, step=16)
    max_side: int | None = setting(None, N_("side of the decoded-image cache (default: 8/7 of the image size)"),
                                   ge=1, message=N_("{key} must be empty or an integer >= the image size, got {value}"))
    num_workers: Annotated[int, Field(ge=0)] | Literal["auto"] = setting(
        "auto", N_("DataLoader worker processes (default auto: 0 on a 2-core CPU, else cores - 1, at most 8)"),
        flag="--num-workers", metavar="N|auto", message=N_('{key} must be "auto" or an integer >= 0, got {value}'))
    compile: bool = setting(False, N_("torch.compile the model (no gain on CPU)"))
    seed: int = setting(0, N_("the run's random seed"), flag="--seed", ge=0, le=MAX_SEED, step=1)
    class_weights: Literal["auto", "none", True, False] | None | Annotated[
            list[Annotated[float, Field(ge=0)]], Field(min_length=1)] = setting(
        "auto", N_("auto: inverse class frequency, so rare classes count as much"),
        message=N_("class_weights must be 'auto', 'none' or a list of weights >= 0, got {value}"))
    # A pipeline spec, or a preset name: validate_config turns a name into that preset at the
    # run's image size, so config.json always holds the exact pipeline used.
    augment: str | list[dict] = setting("default_train", N_("training augmentation: a pipeline or a preset name"),
                                        message=N_("{key} must be a pipeline or a preset name, got {value}"))
    # "auto": derived from augment (transforms.eval_spec): the same crops, deterministic.
    eval_augment: str | list[dict] = setting("auto", N_("evaluation pipeline (auto: derived from augment)"),
                                             message=N_("{key} must be a pipeline or a preset name, got {value}"))
    device: str = setting("auto", N_("auto, cpu, cuda, cuda:<index> or mps"), flag="--device")
    # How many processes Launch and Resume start: 1, or N under torchrun (DDP). batch_size stays
    # the global batch. The CLI trains this many only when started with torchrun itself.
    processes: int = setting(1, N_("processes that train the run (DDP under torchrun)"), ge=1, le=MAX_PROCESSES)
    amp: Literal[AMP_MODES] = setting("auto", N_("mixed precision: auto, off, bf16 or fp16"))
    channels_last: bool = setting(True, N_("channels-last memory layout"))
    # Recompute BatchNorm statistics after each training phase from up to this many training
    # images (0 = off): Lite0/MobileNetV3 use BN momentum 0.01, so on a short fine-tune the running
    # statistics lag far behind the weights and the model in eval mode predicts one class.
    bn_recalibration_images: int = setting(512, N_("training images that recompute the BatchNorm statistics (0: off)"),
                                           ge=0)
    headline_metric: str | None = setting(
        None, N_("metric that picks the best epoch: isic2017_mean_auc, macro_auc, balanced_accuracy, mean_auc or "
                 "accuracy (default: ISIC 2017 mean AUC for its classes, else macro AUC)"), flag="--headline-metric")
    sweep: dict | None = setting(None, N_("the sweep a run belongs to (a tag only)"),
                                 message=N_("{key} must be an object, got {value}"))
    tta: bool = setting(False, N_("Score the validation and test images averaged over their 8 flips and 90-degree "
                                  "rotations (8x the time of that final scoring)"), flag="--tta")
    ema: float = setting(0.0, N_("validate, keep and predict with a moving average of the weights (e.g. 0.99; 0: off)"),
                         flag="--ema", metavar="DECAY", ge=0.0, lt=1.0,
                         message=N_("{key} must be a decay in [{low}, {high}) (0 = off), got {value}"))
    freeze_epochs: int = setting(0, N_("train the head alone for the first N epochs (the backbone as loaded), then "
                                       "every layer"), flag="--freeze-epochs", metavar="N", ge=0)
    metadata: bool = setting(False, N_("Where the dataset has the patients' age, sex or site, combine them with the "
                                       "image: a prior fitted on the training images, weighted on the validation "
                                       "images (nothing changes without metadata)"), flag="--metadata")
    recipe: str | None = setting(None, N_("the recipe the settings started from (a tag only)"))


SECTIONS = {name: typing.get_type_hints(TrainConfig)[name] for name in ("data", "model", "optim", "scheduler")}


def defaults() -> dict:
    """Every setting's default, as config.json holds it (the version included)."""
    return TrainConfig().model_dump()


def field(key: str) -> FieldInfo:
    """The schema's declaration of a setting, by dotted key ("epochs", "optim.lr")."""
    section, _, name = key.rpartition(".")
    model = SECTIONS[section] if section else TrainConfig
    if name not in model.model_fields:
        raise KeyError(key)
    return model.model_fields[name]


def keys() -> list[str]:
    """Every leaf setting's dotted key."""
    out = []
    for name in TrainConfig.model_fields:
        if name in SECTIONS:
            out += [f"{name}.{leaf}" for leaf in SECTIONS[name].model_fields]
        else:
            out.append(name)
    return out


def meta(key: str) -> dict:
    return dict(field(key).json_schema_extra or {})


def bounds(key: str) -> dict:
    """The setting's bounds: {"ge": 1, "le": 64} (gt/lt where exclusive), {} for none."""
    found = {}
    items = list(field(key).metadata)
    for arg in typing.get_args(field(key).annotation):  # a union's member may carry them
        for extra in getattr(arg, "__metadata__", ()):
            items += getattr(extra, "metadata", [extra])
    for item in items:
        for name in ("ge", "gt", "le", "lt", "min_length"):
            if getattr(item, name, None) is not None:
                found[name] = getattr(item, name)
    return found


def _types(key: str) -> set:
    """The plain types a setting's annotation allows (int, float, bool, str, None, list, dict, Literal args)."""
    found = set()

    def walk(tp):
        origin = typing.get_origin(tp)
        if origin is Annotated:
            walk(typing.get_args(tp)[0])
        elif origin is Literal:
            found.update(typing.get_args(tp))
        elif origin in (typing.Union, types.UnionType):
            for arg in typing.get_args(tp):
                walk(arg)
        elif tp is type(None):
            found.add(None)
        else:
            found.add(origin or tp)
    walk(field(key).annotation)
    return found


def choices(key: str) -> tuple | None:
    """The values a choice setting allows (optimiser, scheduler, amp), None for others."""
    annotation = field(key).annotation
    return typing.get_args(annotation) if typing.get_origin(annotation) is Literal else None


def kind(key: str) -> type | None:
    """int or float for a numeric setting (bool excluded), bool for a switch, else None."""
    allowed = _types(key)
    if allowed <= {bool}:
        return bool
    if float in allowed:
        return float
    if int in allowed and True not in allowed:  # (True == 1: class_weights' switch is no number)
        return int
    return None


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def message(key: str, value) -> str:
    """The schema's one-line refusal of value for the setting key, naming the key and its range."""
    info, limits = meta(key), bounds(key)
    low = limits.get("ge", limits.get("gt"))
    high = limits.get("le", limits.get("lt"))
    template = info.get("message")
    if template is None:
        if choices(key):
            template = CHOICE
        elif kind(key) is bool:
            template = BOOLEAN
        elif kind(key) is int:
            template = INT_AT_LEAST if high is None else INT_RANGE
        elif kind(key) is float:
            template = NUMBER_AT_LEAST if high is None else NUMBER_BELOW if "lt" in limits else NUMBER_RANGE
        else:
            template = WRONG_TYPE
    if key == "seed" or key == "data.split_seed":
        high = "2**63 - 1"  # as readable as the bound is
    return template.format(key=key, value=repr(value), low=_number(low) if low is not None else "",
                           high=_number(high) if high is not None else "",
                           choices=", ".join(map(str, choices(key) or ())))


def _value_at(config, loc) -> Any:
    for part in loc:
        if isinstance(config, dict) and part in config:
            config = config[part]
        else:
            return None
    return config


def explain(error: ValidationError, config: dict) -> str:
    """pydantic's first error as the schema's one-line message (never its traceback or URL)."""
    first = error.errors()[0]
    loc = [part for part in first["loc"] if isinstance(part, str)]
    path = []
    for part in loc:  # the setting's key; union branches ("int", "literal['auto']") follow it
        candidate = ".".join(path + [part])
        if candidate in SECTIONS or candidate in keys():
            path.append(part)
        else:
            break
    key = ".".join(path)
    if first["type"] == "extra_forbidden":  # (merge_config names these first, as the same message)
        section = SECTIONS.get(".".join(loc[:-1]), TrainConfig)
        return UNKNOWN_KEY.format(key=repr(".".join(loc)), known=", ".join(section.model_fields))
    if key in SECTIONS:
        return N_("config section {key} must be an object of settings, got {value}").format(
            key=repr(key), value=repr(_value_at(config, path)))
    if not key:
        return WRONG_TYPE.format(key="config", value=repr(config))
    return message(key, _value_at(config, path))


def check(config: dict) -> dict:
    """config (a complete or partial config) checked against the schema and completed with the
    defaults: a plain dict; TrainingError with the schema's message when a value is refused."""
    try:
        return TrainConfig.model_validate(config).model_dump()
    except ValidationError as exc:
        raise TrainingError(explain(exc, config)) from None


def parse(key: str, text: str):
    """A command-line value of the setting key: converted to its type and checked against the
    schema (ValueError with the schema's message, which argparse shows as one line)."""
    number = kind(key)
    value: Any = text
    try:
        if number is int and (text.lstrip("-").isdigit() or str not in {type(t) for t in _types(key)}):
            value = int(text)
        elif number is float:
            value = float(text)
    except ValueError:
        raise ValueError(message(key, text)) from None
    section, _, name = key.rpartition(".")
    try:
        (SECTIONS[section] if section else TrainConfig).model_validate({name: value})
    except ValidationError:
        raise ValueError(message(key, value)) from None
    return value


def cli_options() -> list[tuple[str, str, dict]]:
    """(flag, key, argparse keywords) for every setting that has a flag: the `train` command's
    options, each defaulting to None (a flag given overrides the recipe and --config FILE)."""
    import argparse

    options = []
    for key in keys():
        info = meta(key)
        if "flag" not in info:
            continue
        default, limits = field(key).default, bounds(key)
        notes = [_range_text(limits)] if kind(key) in (int, float) and limits else []
        if default not in (None, "") and kind(key) is not bool:
            notes.append(f"default {_number(default)}")
        options_kw: dict = {"help": info["help"] + (f" ({'; '.join(notes)})" if notes else ""), "default": None}
        if kind(key) is bool:
            options_kw["action"] = argparse.BooleanOptionalAction
        else:
            options_kw["type"] = _Parser(key)
            if choices(key):
                options_kw["choices"] = choices(key)
            if "metavar" in info:
                options_kw["metavar"] = info["metavar"]
        options.append((info["flag"], key, options_kw))
    return options


def _range_text(limits: dict) -> str:
    """">= 1", "1 to 64", "0 to < 1": a setting's range as its help shows it."""
    low = _number(limits.get("ge", limits.get("gt", "")))
    low = f"> {low}" if "gt" in limits else low
    if "le" in limits:
        return f"{low} to {_number(limits['le'])}"
    if "lt" in limits:
        return f"{low} to < {_number(limits['lt'])}"
    return f">= {low}" if "ge" in limits else low


class _Parser:
    """argparse's type for a setting: its name shows in argparse's messages."""

    def __init__(self, key: str):
        self.key = key
        self.__name__ = key

    def __call__(self, text: str):
        import argparse

        try:
            return parse(self.key, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


def help_text(key: str) -> str:
    """A setting's help text (English; pages translate it)."""
    return meta(key)["help"]


def number_limits(key: str) -> dict:
    """A number widget's keywords from the schema: min_value, max_value, step (of the setting's
    type: Streamlit refuses an int step with float bounds) and its help text."""
    number, limits, info = kind(key), bounds(key), meta(key)
    if number not in (int, float) or "gt" in limits or "lt" in limits:
        raise ValueError(f"{key} is not a setting with inclusive numeric bounds")
    low, high = limits.get("ge"), limits.get("le")
    if number is int and high is not None:
        high = min(high, JS_MAX_INT)  # a browser holds no larger integer exactly
    cast = number
    return {"min_value": cast(low) if low is not None else None, "max_value": cast(high) if high is not None else None,
            "step": cast(info.get("step", 1)), "help": info["help"]}
