"""Training engine: one JSON config in, one run folder out.

run_training() trains in this process and reports only through the run folder (status.json
every second or so, history.jsonl per epoch and phase, train.log, best.pt/last.pt), so a
page, the CLI or a test can follow it the same way. launch() starts the same training as a
detached `python -m lesion_core train --run-dir ...` process and returns at once.

Reproducibility: every epoch reseeds random, numpy, torch and the DataLoader generator from
(seed, epoch). A resumed run restarts from the last completed epoch with the same seeds, so
it ends exactly where an uninterrupted run would have (on CPU; GPU kernels may differ
slightly), without storing RNG states in the checkpoint.
"""

from __future__ import annotations

import copy
import fcntl
import io
import json
import math
import os
import platform
import random
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader

import lesion_core
from lesion_core import csvsafe, data, distributed, loading, locks, metrics, models, recipes, runs, transforms
from lesion_core.errors import LesionLabError, TrainingError, TransformError, describe_os_error
from lesion_core.i18n import N_
from lesion_core.paths import absolute
from lesion_core.evaluation import bootstrap, calibration, patient
from lesion_core.evaluation.review import split_review
from lesion_core.evaluation.tta import mean_softmax

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("step", "cosine", "none")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("auto", "off", "bf16", "fp16")
STATUS_EVERY_S = 1.0  # status.json refresh period while training: live enough, cheap enough
# Keys of a history line that measure speed, not learning (excluded when comparing runs).
TIMING_KEYS = ("time_s", "images_per_s", "iter_time_s", "data_time_s", "time")


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
        # the 8 flips/90-degree rotations of each image (evaluation.tta): 8x the inference time.
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


# ---------------------------------------------------------------------------- config


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


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise TrainingError(message)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_config(config: dict) -> dict:
    """A complete, checked config (defaults filled in); TrainingError/TransformError say what is wrong."""
    _require(isinstance(config, dict), f"a config must be a JSON object, got {type(config).__name__}")
    try:
        # A named recipe is the base the config's own settings go on (recipes.recipe_config).
        base = recipes.recipe_config(config["recipe"]) if config.get("recipe") else default_config()
        return _validate_config(merge_config(base, config))
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        # A value of a type no check above foresaw (config.json is untrusted input): name it,
        # never a traceback.
        raise TrainingError(f"malformed config ({type(exc).__name__}: {exc})") from None


def _validate_config(config: dict) -> dict:
    _check_model(config["model"])
    _check_optim(config["optim"], config["scheduler"])
    for key, low in (("epochs", 1), ("batch_size", 1), ("bn_recalibration_images", 0), ("freeze_epochs", 0)):
        _require(_is_int(config[key]) and config[key] >= low, f"{key} must be an integer >= {low}, got {config[key]!r}")
    _require(config["num_workers"] == "auto" or (_is_int(config["num_workers"]) and config["num_workers"] >= 0),
             f'num_workers must be "auto" or an integer >= 0, got {config["num_workers"]!r}')
    for key in ("compile", "tta", "metadata"):
        _require(isinstance(config[key], bool), f"{key} must be true or false, got {config[key]!r}")
    _require(_is_number(config["ema"]) and 0 <= config["ema"] < 1,
             f"ema must be a decay in [0, 1) (0 = off), got {config['ema']!r}")
    _require(config["recipe"] is None or config["recipe"] in recipes.RECIPES,  # "" or 0 reach here
             f"unknown recipe {config['recipe']!r}; use one of: {', '.join(recipes.RECIPES)}")
    _require(_is_int(config["seed"]) and 0 <= config["seed"] < 2**63,  # torch seeds are 64-bit
             f"seed must be an integer from 0 to 2**63 - 1, got {config['seed']!r}")
    entry = models.MODELS[config["model"]["name"]]
    size = config["image_size"]
    _require(size is None or (_is_int(size) and entry.min_input_size <= size <= MAX_IMAGE_SIZE),
             f"image_size must be an integer from {entry.min_input_size} to {MAX_IMAGE_SIZE} for {entry.name}, "
             f"got {size!r}")
    side = config["max_side"]
    _require(side is None or (_is_int(side) and side >= (size or entry.input_size)),
             f"max_side must be empty or an integer >= the image size, got {side!r}")
    _check_data(config["data"])
    _check_class_weights(config["class_weights"], config["data"]["class_names"])
    _require(config["headline_metric"] is None or config["headline_metric"] in metrics.HEADLINE_METRICS,
             f"unknown headline_metric {config['headline_metric']!r}; use one of: {', '.join(metrics.HEADLINE_METRICS)}")
    for key in ("augment", "eval_augment"):
        if config[key] == "auto":  # evaluation sees what training saw, without the randomness
            _require(key == "eval_augment", 'augment cannot be "auto"; give a pipeline or a preset name')
            config[key] = transforms.eval_spec(config["augment"])
        elif isinstance(config[key], str):
            config[key] = transforms.preset(config[key], image_size(config))
        config[key] = transforms.validate_spec(config[key])
    mismatch = transforms.eval_mismatch(config["augment"], config["eval_augment"])
    # A run that already started (resolved is set) keeps its recorded pipelines, to resume as it began.
    _require(mismatch is None or "resolved" in config, mismatch)
    _require(isinstance(config["device"], str) and _DEVICE_NAME.fullmatch(config["device"]) is not None,
             f"unknown device {config['device']!r}; use one of: {', '.join(DEVICES)} or cuda:<index>")
    _require(config["amp"] in AMP_MODES, f"unknown amp mode {config['amp']!r}; use one of: {', '.join(AMP_MODES)}")
    resolve_device(config["device"])  # fails now, not after the run folder exists
    _check_processes(config)
    # Absolute paths: the trainer may run in another working directory (launch() uses the run's).
    if config["data"]["root"] != "demo":
        config["data"]["root"] = str(absolute(config["data"]["root"]))
    if config["model"]["weights_path"]:
        config["model"]["weights_path"] = str(absolute(config["model"]["weights_path"]))
    return config


def _check_model(cfg: dict) -> None:
    _require(isinstance(cfg["name"], str) and cfg["name"] in models.MODELS,
             f"unknown model {cfg['name']!r}; choose one of: {', '.join(models.MODELS)}")
    sources = ("default",) + models.MODELS[cfg["name"]].weight_sources
    _require(cfg["weights"] in sources,
             f"weights {cfg['weights']!r} are not available for {cfg['name']}; choose one of: {', '.join(sources)}")
    if cfg["weights"] == "file" or cfg["weights_path"]:
        _require(bool(cfg["weights_path"]) and Path(cfg["weights_path"]).is_file(),
                 N_("weights file not found: {path}").format(path=cfg["weights_path"]))


def _check_optim(optim: dict, scheduler: dict) -> None:
    _require(optim["optimizer"] in OPTIMIZERS,
             f"unknown optimizer {optim['optimizer']!r}; choose one of: {', '.join(OPTIMIZERS)}")
    _require(_is_number(optim["lr"]) and optim["lr"] > 0, f"learning rate must be > 0, got {optim['lr']!r}")
    _require(_is_number(optim["momentum"]) and optim["momentum"] >= 0, f"momentum must be >= 0, got {optim['momentum']!r}")
    decay = optim["weight_decay"]
    _require(decay is None or (_is_number(decay) and decay >= 0), f"weight_decay must be >= 0, got {decay!r}")
    _require(scheduler["name"] in SCHEDULERS,
             f"unknown scheduler {scheduler['name']!r}; choose one of: {', '.join(SCHEDULERS)}")
    _require(_is_int(scheduler["step_size"]) and scheduler["step_size"] >= 1,
             f"step_size must be an integer >= 1, got {scheduler['step_size']!r}")
    _require(_is_number(scheduler["gamma"]) and scheduler["gamma"] > 0,
             f"gamma must be > 0, got {scheduler['gamma']!r}")
    warmup = scheduler["warmup_epochs"]
    _require(_is_number(warmup) and warmup >= 0, f"warmup_epochs must be a number >= 0, got {warmup!r}")
    smoothing = optim["label_smoothing"]
    _require(_is_number(smoothing) and 0 <= smoothing < 1, f"label_smoothing must be in [0, 1), got {smoothing!r}")


def _check_data(cfg: dict) -> None:
    root = cfg["root"]
    _require(root == "demo" or (isinstance(root, str) and bool(root) and Path(root).is_dir()),
             N_("dataset folder not found: {root} (give a folder, or 'demo' for the built-in demo data)").format(
                 root=repr(root)))
    _require(_is_int(cfg["max_size"]) and cfg["max_size"] >= 0, f"max_size must be an integer >= 0, got {cfg['max_size']!r}")
    for key in ("val_fraction", "test_fraction"):
        _require(_is_number(cfg[key]) and 0 <= cfg[key] < 1, f"{key} must be in [0, 1), got {cfg[key]!r}")
    names = cfg["class_names"]
    _require(names is None or (isinstance(names, list) and names and all(isinstance(n, str) for n in names)),
             f"class_names must be empty or a list of names, got {names!r}")
    _require(cfg["split"] is None or isinstance(cfg["split"], dict), f"data.split must be an object, got {cfg['split']!r}")


def _check_class_weights(value, class_names) -> None:
    ok = value in ("auto", "none", True, False, None) or (
        isinstance(value, list) and value and all(_is_number(w) and w >= 0 for w in value))
    _require(ok, N_("class_weights must be 'auto', 'none' or a list of weights >= 0, got {value}").format(
        value=repr(value)))
    if isinstance(value, list) and class_names:  # else checked once the data is loaded
        _require(len(value) == len(class_names),
                 N_("class_weights has {n} values for {classes} classes ({names})").format(
                     n=len(value), classes=len(class_names), names=", ".join(class_names)))


_DEVICE_NAME = re.compile(r"auto|cpu|cuda|cuda:\d+|mps")


def gpu_count() -> int:
    """CUDA GPUs this process can use (CUDA_VISIBLE_DEVICES applies)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


MAX_IMAGE_SIZE = 4096  # larger sides fail later, in the pipeline (at most 10000) or out of memory


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA, else Apple MPS, else CPU; a requested device that is absent raises TrainingError."""
    gpus, mps = gpu_count(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if gpus else "mps" if mps else "cpu")
    kind, _, index = name.partition(":")
    _require(kind == "cpu" or (kind == "cuda" and int(index or 0) < gpus) or (kind == "mps" and mps),
             N_("device {name} is not available here; use 'auto' or 'cpu'").format(name=repr(name)))
    return torch.device(name)


def _check_processes(config: dict) -> None:
    n, batch = config["processes"], config["batch_size"]
    _require(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 64,
             f"processes must be an integer from 1 to 64, got {n!r}")
    if n == 1:
        return
    device = resolve_device(config["device"])
    _require(device.type in ("cpu", "cuda") and device.index is None,
             N_("{n} processes need the device cpu, cuda or auto (one GPU each), not {device}").format(
                 n=n, device=config["device"]))
    _require(device.type == "cpu" or n <= gpu_count(),
             N_("{n} processes need {n} GPUs; this machine has {gpus}").format(n=n, gpus=gpu_count()))
    distributed.local_batch(batch, n)  # an even share each (batch_size is checked above)


def device_choices(gpus: list[tuple[str, int]] | None = None) -> dict[str, str]:
    """Where Launch can train, {choice: label}, for the Train page. A choice is a config device,
    or 'cuda*K': GPUs 0..K-1 with one torchrun process each (see split_device_choice).
    gpus: [(name, memory in bytes)] of the GPUs; None: this machine's."""
    if gpus is None:
        gpus = [(props.name, props.total_memory)
                for props in map(torch.cuda.get_device_properties, range(gpu_count()))]
    choices = {"auto": N_("auto (a GPU when there is one, else the CPU)"), "cpu": N_("CPU")}
    if torch.backends.mps.is_available():
        choices["mps"] = N_("Apple GPU (mps)")
    for index, (name, memory) in enumerate(gpus):
        choices[f"cuda:{index}"] = N_("GPU {index}: {name}, {gib} GiB").format(
            index=index, name=name, gib=round(memory / 2**30))
    for k in range(2, len(gpus) + 1):
        choices[f"cuda*{k}"] = N_("{k} GPUs (0 to {last}), one torchrun process each").format(k=k, last=k - 1)
    return choices


def split_device_choice(choice: str) -> tuple[str, int]:
    """(config device, processes) of a device_choices() key."""
    device, _, k = choice.partition("*")
    return device, int(k or 1)


def device_choice(config: dict, choices: dict | None = None) -> str:
    """The device_choices() key for a config's device and processes; 'auto' when the choices
    (this machine's by default) lack it. The page offers no CPU processes: 'cpu' for those."""
    device, n = config.get("device", "auto"), config.get("processes", 1)
    if device == "cpu" or n == 1:
        choice = device
    else:
        choice = f"{'cuda' if device == 'auto' else device}*{n}"
    return choice if choice in (device_choices() if choices is None else choices) else "auto"


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for mode on device, or None for full precision."""
    if mode == "off":
        return None
    if mode == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return torch.bfloat16
        return None
    return torch.bfloat16 if mode == "bf16" else torch.float16


def versions() -> dict:
    """Versions that matter for reproducing a run (git commit when this is a checkout)."""
    commit = None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        commit = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "lesion_core": lesion_core.__version__,
            "numpy": np.__version__, "git_commit": commit}


# ---------------------------------------------------------------------------- seeds, data


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: distinct per (seed, epoch), identical on resume."""
    return (seed * 1_000_003 + epoch) % 2**63


def _worker_init(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; derive the other RNGs from it.
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def collate(samples: list[dict]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images float32 (B, 3, S, S), labels int64 (B,), ids); masks are not needed to train."""
    images = torch.stack([s["image"] for s in samples])
    labels = torch.tensor([s["label"] for s in samples], dtype=torch.int64)
    return images, labels, [s["id"] for s in samples]


def _data_root(cfg: dict) -> Path:
    if cfg["root"] != "demo":
        return Path(cfg["root"])
    from lesion_core.demo import demo_dir

    return demo_dir()


def _recorded_split(cfg: dict) -> dict | None:
    """cfg's recorded split (LesionData.to_spec()) if it still describes cfg's data settings.

    A config copied from an earlier run keeps that run's exact split, unless its root or
    split settings were changed since, which calls for a new split.
    """
    spec = cfg.get("split")
    if not spec or any(spec.get(k) != cfg.get(k) for k in ("max_size", "val_fraction", "test_fraction", "split_seed", "labels")):
        return None
    if cfg["root"] == "demo":
        return spec if Path(spec["root"]).is_dir() else dict(spec, root=str(_data_root(cfg)))
    return spec if Path(spec["root"]).resolve() == Path(cfg["root"]).resolve() else None


def load_data(config: dict, root_override=None) -> data.LesionData:
    """The run's dataset: the recorded split when it applies, else a fresh load and split.

    root_override: the same dataset at another place (it moved since training).
    """
    cfg = config["data"]
    spec = _recorded_split(cfg)
    if spec:
        return data.from_spec(dict(spec, root=str(root_override or spec["root"])))
    root = root_override or _data_root(cfg)
    return data.load_dataset(root, class_names=cfg["class_names"], max_size=cfg["max_size"],
                             val_fraction=cfg["val_fraction"], test_fraction=cfg["test_fraction"],
                             split_seed=cfg["split_seed"], labels=cfg["labels"])


def image_size(config: dict) -> int:
    """Side of the square model input in pixels."""
    return config["image_size"] or models.MODELS[config["model"]["name"]].input_size


def make_loader(records, spec, config: dict, shuffle: bool, generator=None, shard: bool = True) -> DataLoader:
    """A DataLoader of (images, labels, ids) batches from records through the finalised spec.

    Under torchrun (shard=True) each process loads its share (loading.SeededSampler)."""
    entry = models.MODELS[config["model"]["name"]]
    size = image_size(config)
    pipeline = transforms.build_pipeline(transforms.finalize_spec(spec, size, entry.mean, entry.std))
    max_side = config["max_side"] or round(size * 8 / 7)
    dataset = data.LesionDataset(records, transform=pipeline, max_side=max_side)
    # A last training batch of one sample breaks BatchNorm; drop it only in that case.
    rank, world = distributed.rank_and_world() if shard else (0, 1)
    batch = distributed.local_batch(config["batch_size"], world)
    share = -(-len(records) // world)
    drop_last = shuffle and share % batch == 1 and share > 1
    device = resolve_device(config["device"])
    sampler = loading.SeededSampler(len(records), shuffle, generator, rank, world)
    return DataLoader(loading.SeededSamples(dataset), batch_size=batch, sampler=sampler, drop_last=drop_last,
                      collate_fn=collate, worker_init_fn=_worker_init,
                      **loading.loader_options(loading.resolve_num_workers(config["num_workers"], device, world), device))


def class_weights(config: dict, labels: list[int], n_classes: int) -> torch.Tensor | None:
    """Cross-entropy weights: inverse class frequency ("auto": N / (C * n_c)), a list, or None."""
    value = config["class_weights"]
    if value in ("none", False, None):
        return None
    if isinstance(value, list):
        _require(len(value) == n_classes, N_("class_weights has {n} values for {classes} classes").format(
            n=len(value), classes=n_classes))
        return torch.tensor(value, dtype=torch.float32)
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def weight_decay(optim: dict) -> float:
    """The weight decay an optim config trains with: its own, else the optimiser's default
    (torch's: AdamW 0.01; SGD and Adam 0, as the notebook)."""
    if optim.get("weight_decay") is not None:
        return float(optim["weight_decay"])
    return 0.01 if optim.get("optimizer") == "adamw" else 0.0


def make_optimizer(config: dict, params) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW over the trainable parameters."""
    cfg = config["optim"]
    params = [p for p in params if p.requires_grad]
    decay = {} if cfg["weight_decay"] is None else {"weight_decay": cfg["weight_decay"]}
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], **decay)
    cls = torch.optim.Adam if cfg["optimizer"] == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg["lr"], **decay)


def lr_factor(config: dict, step: int, steps_per_epoch: int) -> float:
    """The learning rate's multiplier for optimiser step `step` (0-based) of the run.

    A linear warm-up over scheduler.warmup_epochs (from 1/steps of the rate up to all of it),
    then the named schedule: "cosine" anneals to 0 over the remaining epochs step by step,
    "step" multiplies by gamma every step_size epochs, "none" keeps the rate.
    """
    cfg = config["scheduler"]
    warm_steps = cfg["warmup_epochs"] * steps_per_epoch
    factor = min(1.0, (step + 1) / warm_steps) if warm_steps else 1.0
    epochs_done = step / steps_per_epoch
    if cfg["name"] == "step":
        return factor * cfg["gamma"] ** (int(epochs_done) // cfg["step_size"])
    if cfg["name"] == "cosine":
        span = max(config["epochs"] - cfg["warmup_epochs"], 1e-9)
        t = min(max(epochs_done - cfg["warmup_epochs"], 0.0) / span, 1.0)
        return factor * 0.5 * (1.0 + math.cos(math.pi * t))
    return factor


def make_scheduler(config: dict, optimizer, steps_per_epoch: int):
    """The per-step schedule of lr_factor (stepped after every optimiser step)."""
    steps = max(int(steps_per_epoch), 1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, steps))


def resume_schedule(scheduler, optimizer, steps_done: int) -> None:
    """Put the schedule (and the optimiser's rates) where it is after steps_done steps.

    The schedule is a function of the step alone, so it is recomputed rather than loaded:
    checkpoints written before it was stepped per batch (per-epoch StepLR/cosine states)
    resume just as well."""
    scheduler.last_epoch = steps_done
    for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * factor(steps_done)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


# ---------------------------------------------------------------------------- files


def _save_torch(path: Path, obj: dict) -> None:
    """torch.save through an atomic write (readable with torch.load(weights_only=True))."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    runs.atomic_write_bytes(path, buffer.getvalue())


def write_predictions(path: Path, ids, labels, probs: np.ndarray, class_names, meta: dict | None = None) -> None:
    """CSV: id, label, prob_<class name> per class, pred (label and pred are class names), then
    group, age, sex, site where meta (id -> {column: text}) has them for any row."""
    meta = meta or {}
    extra = [c for c in ("group",) + data.META_COLUMNS if any(c in m for m in meta.values())]
    rows = [["id", "label"] + [f"prob_{name}" for name in class_names] + ["pred"] + extra]
    for sample_id, label, row in zip(ids, labels, probs):
        rows.append([sample_id, class_names[int(label)]] + [f"{p:.6f}" for p in row]
                    + [class_names[int(row.argmax())]] + [meta.get(sample_id, {}).get(c, "") for c in extra])
    runs.atomic_write_text(path, csvsafe.write_rows(rows))  # ids and metadata never run as formulas


def read_predictions(path):
    """A predictions CSV as write_predictions wrote it, as a pandas DataFrame with per-sample
    confidence (max probability), loss (-log p(true class)) and correct columns from
    metrics.compute_metrics; frame.attrs["class_names"] lists the classes in column order."""
    import pandas as pd

    try:
        # Ids, class names and metadata are text: ids such as 0001 must not become the number 1.
        text = {"id": str, "label": str, "pred": str, "group": str, "sex": str, "site": str}
        frame = pd.read_csv(path, dtype=text, keep_default_na=False)
        csvsafe.restore_frame(frame, text)
        if "age" in frame:  # empty when unknown
            frame["age"] = pd.to_numeric(frame["age"], errors="coerce")
        prob_columns = [c for c in frame.columns if c.startswith("prob_")]
        names = [c.removeprefix("prob_") for c in prob_columns]
        _require(len(names) >= 1 and {"id", "label", "pred"} <= set(frame.columns), "not the columns the trainer writes")
        known = frame["label"].isin(names)
        _require(known.all(), N_("label {label} is not one of the classes ({names})").format(
            label=repr(frame["label"][~known].iloc[0] if not known.all() else ""), names=", ".join(names)))
        labels = frame["label"].map({name: index for index, name in enumerate(names)}).to_numpy(dtype=int)
        result = metrics.compute_metrics(labels, frame[prob_columns].to_numpy(dtype=float), names)
    except (ValueError, TypeError, KeyError, TrainingError, pd.errors.ParserError) as exc:
        # UnicodeDecodeError is a ValueError: a binary file where a CSV should be
        raise data.DataError(f"{Path(path).name} is damaged: {(str(exc).splitlines() or [type(exc).__name__])[0][:100]}") from None
    frame["confidence"] = result["confidence"]
    frame["loss"] = result["loss"]
    frame["correct"] = frame["label"] == frame["pred"]
    frame.attrs["class_names"] = names
    return frame


def forward(model: nn.Module, images: torch.Tensor, device: torch.device, amp_dtype=None,
            channels_last: bool = False) -> torch.Tensor:
    """Logits float32 (B, C) of images float32 (B, 3, S, S), under autocast when amp_dtype is set."""
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        return model(images).float()


def backward_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor) -> None:
    """One optimiser update from loss (the scaler is a no-op unless fp16 autocast is on)."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _frozen(module: nn.Module) -> bool:
    """A layer whose parameters are all frozen (freeze_backbone): it is not being trained."""
    params = list(module.parameters(recurse=False))
    return bool(params) and not any(p.requires_grad for p in params)


def set_train_mode(model: nn.Module, training: bool) -> None:
    """model.train(training), except that frozen BatchNorm layers stay in eval mode: "train
    the head only" must leave the backbone exactly as loaded, running statistics included."""
    model.train(training)
    if training:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and _frozen(module):
                module.eval()


def recalibrate_batchnorm(model: nn.Module, loader: DataLoader, device: torch.device, amp_dtype=None,
                          channels_last: bool = False) -> int:
    """Reset every trained BatchNorm's running statistics to their exact average over loader's
    batches (frozen ones keep theirs).

    Forward passes only (no gradients), in train mode with momentum None (a cumulative
    average). Returns the number of BatchNorm layers updated (0: nothing to do).
    """
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and not _frozen(m)]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    set_train_mode(model, True)
    with torch.no_grad():
        for images, _labels, _ids in loader:
            forward(model, images, device, amp_dtype, channels_last)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    set_train_mode(model, was_training)
    return len(norms)


class WeightAverage:
    """An exponential moving average of a model's weights, updated after each optimiser step.

    The decay ramps up as min(decay, (1 + t) / (10 + t)) at step t, so the first steps (a
    fresh head, a warm-up) do not linger in the average. Buffers (BatchNorm statistics) are
    copied, not averaged: the trainer recomputes them for the averaged weights each epoch.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model)  # requires_grad as trained: frozen layers stay frozen
        self.decay = float(decay)
        self.steps = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        averaged = [p for p in self.module.parameters() if p.is_floating_point()]
        current = [p.detach() for p in model.parameters() if p.is_floating_point()]
        torch._foreach_lerp_(averaged, current, 1 - decay)
        for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)

    def state_dict(self) -> dict:
        return {"model": self.module.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict, source: object) -> None:
        _require(isinstance(state, dict) and isinstance(state.get("model"), dict) and _is_int(state.get("steps")),
                 f"{source}: the weight average is not one the trainer wrote; delete it to restart the run from epoch 1")
        models.load_weights(self.module, state["model"], source)
        self.steps = int(state["steps"])


class _Diverged(Exception):
    """The loss became NaN or infinite."""


class _StopRequested(Exception):
    """A stop file or signal arrived; the current epoch is abandoned."""


# ---------------------------------------------------------------------------- the trainer


class Trainer:
    """Trains one run folder; see run_training(). on_batch(status) and on_log(line) let the
    CLI draw progress bars; everything else is reported through the run folder."""

    def __init__(self, run_dir: Path, config: dict, on_batch: Callable | None = None,
                 on_log: Callable | None = None):
        self.run_dir = Path(run_dir)
        self.config = config
        self.on_batch = on_batch
        self.on_log = on_log
        self.stop_signal = False
        self.iter_time = {}  # phase -> mean seconds per batch, for the ETA
        self.calibration_s = None  # seconds of the last BatchNorm recalibration, for the ETA
        self.n_test_batches = 0  # batches of the final evaluation on test, for the ETA
        self.completed = 0  # last epoch saved in last.pt
        self.status = {}

    # -- reporting

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        runs.append_line(self.run_dir / "train.log", line)
        if self.on_log:
            self.on_log(line)

    def set_status(self, **fields) -> None:
        self.status = runs.write_status(self.run_dir, **fields)

    def _should_stop(self) -> bool:
        return self.stop_signal or runs.stop_requested(self.run_dir)

    def _on_signal(self, signum, frame) -> None:
        if self.stop_signal and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the user really wants out
        self.stop_signal = True

    # -- setup

    def setup(self, resuming: bool) -> int:
        """Load data, build everything, restore last.pt when resuming; return the first epoch."""
        cfg = self.config
        self.device = resolve_device(cfg["device"])
        if self.device.type == "cuda" and self.device.index is not None and not distributed.launched():
            # pinned-memory threads and bf16 support checks use the current GPU, not GPU 0
            # (under torchrun, distributed.init made the local rank's GPU current)
            torch.cuda.set_device(self.device)
        self.amp_dtype = resolve_amp(cfg["amp"], self.device)
        self.set_status(message=N_("loading the dataset"))
        self._load_data()
        self.set_status(message=N_("building {model}").format(model=cfg["model"]["name"]))
        weights_info = self._build_model()
        cfg["resolved"] = {
            "device": str(self.device), "amp": dtype_name(self.amp_dtype), "channels_last": self.channels_last,
            "image_size": image_size(cfg), "class_weights": _tolist(self.criterion.weight),
            "weights": weights_info, "threads": torch.get_num_threads(), "versions": versions()}
        runs.atomic_write_json(self.run_dir / "config.json", cfg)
        frozen = ", backbone frozen (head only)" if cfg["model"]["freeze_backbone"] else ""
        self.log(f"model {cfg['model']['name']} ({(weights_info or {}).get('source', '?')} weights{frozen}) on {self.device}, "
                 f"amp {cfg['resolved']['amp']}, {image_size(cfg)} px, batch {cfg['batch_size']}, "
                 f"{cfg['optim']['optimizer']} lr {cfg['optim']['lr']}, {cfg['scheduler']['name']} schedule")
        self.best = None
        self.completed = self._restore() if resuming else 0
        return self.completed + 1

    def _load_data(self) -> None:
        """The dataset and its loaders; records the exact split in the config."""
        cfg = self.config
        self.data = load_data(cfg)
        self.class_names = list(self.data.class_names)
        cfg["data"]["split"] = self.data.to_spec()
        cfg["data"]["class_names"] = self.class_names
        try:
            cfg["headline_metric"] = metrics.headline_metric(self.class_names, cfg["headline_metric"])
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        self.log("data: " + "; ".join(f"{s} {sum(c.values())} ({', '.join(f'{k} {v}' for k, v in c.items())})"
                                      for s, c in self.data.report.counts.items()))
        _require(len(self.data.split("train")) > 0,
                 N_("the training split is empty: this dataset has no training images"))
        _require(len(self.data.split("val")) > 0,
                 N_("the validation split is empty: use more data or a larger val_fraction"))
        self.generator = torch.Generator()
        self.loaders = {
            "train": make_loader(self.data.split("train"), cfg["augment"], cfg, True, self.generator),
            "val": make_loader(self.data.split("val"), cfg["eval_augment"], cfg, False),
        }
        self.n_test_batches = math.ceil(len(self.data.split("test")) / cfg["batch_size"])
        train_records = self.data.split("train")
        n_calibration = min(cfg["bn_recalibration_images"], len(train_records))
        if n_calibration > 1 and n_calibration % cfg["batch_size"] == 1:
            n_calibration -= 1  # BatchNorm in train mode cannot take a batch of one (1x1 feature maps)
        if n_calibration:  # evenly spaced training images, through the eval transforms
            picked = [train_records[i * len(train_records) // n_calibration] for i in range(n_calibration)]
            # Not sharded: every process recomputes the same BatchNorm statistics from all of them.
            self.loaders["calibration"] = make_loader(picked, cfg["eval_augment"], cfg, False, shard=False)

    def _build_model(self) -> dict | None:
        """Model, loss, optimiser, scheduler and grad scaler; returns what weights were loaded."""
        cfg, mcfg = self.config, self.config["model"]
        seed_everything(cfg["seed"])  # the new head's initialisation draws from torch's RNG
        self.model = models.build_model(mcfg["name"], len(self.class_names), weights=mcfg["weights"],
                                        weights_path=mcfg["weights_path"], freeze_backbone=mcfg["freeze_backbone"])
        self.model.to(self.device)
        self.channels_last = cfg["channels_last"] and self.device.type in ("cpu", "cuda")
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        # What training batches go through (DistributedTrainer wraps it in DDP); evaluation
        # and checkpoints use self.model itself, so state_dict keys never change.
        self.train_model = torch.compile(self.model) if cfg["compile"] else self.model
        # What validation, best.pt and the final predictions use: the averaged weights when ema is on.
        self.average = WeightAverage(self.model, cfg["ema"]) if cfg["ema"] else None
        self.eval_model = self.average.module if self.average else self.model
        weights = class_weights(cfg, [r.label for r in self.data.split("train")], len(self.class_names))
        self.criterion = nn.CrossEntropyLoss(weight=weights.to(self.device) if weights is not None else None,
                                             label_smoothing=float(cfg["optim"]["label_smoothing"]))
        self.optimizer = make_optimizer(cfg, self.model.parameters())
        self.scheduler = make_scheduler(cfg, self.optimizer, len(self.loaders["train"]))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        return getattr(self.model, "weights_info", None)

    def _restore(self) -> int:
        """Load last.pt (if any) into model/optimizer/scheduler; return its epoch (0 if none)."""
        path = self.run_dir / "last.pt"
        rows, skipped = runs.read_history_checked(self.run_dir)
        if skipped:  # rewritten below without them
            self.log(f"history.jsonl: {skipped} unreadable line(s) skipped and dropped")
        if not path.exists():
            self.log("no completed epoch to resume from: starting from epoch 1")
            runs.atomic_write_text(self.run_dir / "history.jsonl", "")
            return 0
        ckpt = models.load_checkpoint(path)
        _require(isinstance(ckpt.get("model"), dict) and isinstance(ckpt.get("optimizer"), dict)
                 and _is_int(ckpt.get("epoch")), N_("{path} is not a checkpoint the trainer wrote (no model, "
                 "optimizer and epoch); delete it to restart the run from epoch 1").format(path=path))
        models.load_weights(self.model, ckpt["model"], path)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        resume_schedule(self.scheduler, self.optimizer, int(ckpt["epoch"]) * len(self.loaders["train"]))
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.average:
            _require("ema" in ckpt, N_("{path} has no weight average (the run began without ema); "
                                       "delete it to restart the run from epoch 1").format(path=path))
            self.average.load_state_dict(ckpt["ema"], path)
        self.best = ckpt.get("best")
        epoch = int(ckpt["epoch"])
        # Lines of the interrupted epoch are replayed, so drop them.
        kept = [row for row in rows if row["epoch"] <= epoch]
        runs.atomic_write_text(self.run_dir / "history.jsonl", "".join(_json_line(r) for r in kept))
        self.log(f"resuming after epoch {epoch} of {self.config['epochs']}")
        return epoch

    # -- the loop

    def run(self, resuming: bool) -> None:
        cfg = self.config
        started = self.status.get("started") if resuming else None
        self.set_status(state="running", message=N_("starting"), pid=os.getpid(), started=started or time.time(),
                        epochs=cfg["epochs"], epoch=0, phase=None, iteration=0, n_iters=0)
        first = self.setup(resuming)
        for epoch in range(first, cfg["epochs"] + 1):
            self._epoch(epoch)
        self._finish()

    def _epoch(self, epoch: int) -> None:
        seed = epoch_seed(self.config["seed"], epoch)
        seed_everything(seed)
        self.generator.manual_seed(seed)
        if self.config["freeze_epochs"] and not self.config["model"]["freeze_backbone"]:
            head_only = epoch <= self.config["freeze_epochs"]
            models.train_head_only(self.model, models.MODELS[self.config["model"]["name"]].head, head_only)
        lr = self.optimizer.param_groups[0]["lr"]
        train = self._phase("train", epoch, lr)
        if "calibration" in self.loaders:
            self.set_status(phase="calibrate", message=N_("epoch {epoch}: recomputing BatchNorm statistics").format(
                                epoch=epoch),
                            eta_s=self._eta("calibrate", epoch, 0))
            started = time.perf_counter()
            recalibrate_batchnorm(self.eval_model, self.loaders["calibration"], self.device, self.amp_dtype,
                                  self.channels_last)
            self.calibration_s = time.perf_counter() - started
        val = self._phase("val", epoch, lr)
        improved = self._update_best(epoch, val)
        _save_torch(self.run_dir / "last.pt", {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            **({"ema": self.average.state_dict()} if self.average else {}),
            "epoch": epoch, "best": self.best, "seed": self.config["seed"]})
        self.completed = epoch
        self.log(f"epoch {epoch}/{self.config['epochs']}: train loss {train['loss']:.4f} acc {train['accuracy']:.3f}"
                 f" | val loss {val['loss']:.4f} acc {val['accuracy']:.3f} mean AUC {_fmt(val['mean_auc'])}"
                 f" ({', '.join(f'{k} {_fmt(v)}' for k, v in val['auc'].items())})"
                 f" | {train['images_per_s']:.1f} img/s{' *best*' if improved else ''}")
        self.set_status(best=self.best, message=N_("epoch {epoch} done").format(epoch=epoch))

    def _update_best(self, epoch: int, val: dict) -> bool:
        """Save best.pt when the val headline metric rises (val loss falls, when it is undefined)."""
        headline = self.config["headline_metric"]
        if val.get(headline) is not None:
            metric, value, better = f"val_{headline}", val[headline], lambda new, old: new > old
        else:
            metric, value, better = "val_loss", val["loss"], lambda new, old: new < old
        if self.best is not None and self.best["metric"] == metric and not better(value, self.best["value"]):
            return False
        self.best = {"metric": metric, "value": value, "epoch": epoch}
        _save_torch(self.run_dir / "best.pt", {"model": self.eval_model.state_dict(), "epoch": epoch,
                                               "metric": metric, "value": value,
                                               "class_names": self.class_names, "model_name": self.config["model"]["name"]})
        return True

    def _phase(self, phase: str, epoch: int, lr: float) -> dict:
        """One pass over a split; appends its line to history.jsonl and returns it."""
        training = phase == "train"
        loader = self.loaders[phase]
        set_train_mode(self.model if training else self.eval_model, training)
        n_iters = len(loader)
        # Loss and probabilities stay on the device until the phase ends (or a status is due):
        # reading them per batch would make the host wait for the device every batch.
        loss_sum, labels, probs, ids = torch.zeros((), device=self.device), [], [], []
        start = last_report = time.perf_counter()
        data_time = 0.0
        batch_end = start
        self.set_status(phase=phase, epoch=epoch, iteration=0, n_iters=n_iters,
                        message=N_("epoch {epoch} {phase}").format(epoch=epoch, phase=phase))
        with torch.set_grad_enabled(training):
            for iteration, (images, targets, batch_ids) in enumerate(loader, 1):
                data_time += time.perf_counter() - batch_end
                loss, batch_probs = self._step(images, targets, training, epoch, iteration)
                loss_sum += loss.detach() * len(targets)
                labels.append(targets)
                probs.append(batch_probs)
                ids += batch_ids
                batch_end = time.perf_counter()
                elapsed = batch_end - start
                self.iter_time[phase] = elapsed / iteration
                progress = {"phase": phase, "epoch": epoch, "iteration": iteration, "n_iters": n_iters,
                            "images_per_s": sum(len(t) for t in labels) / elapsed, "eta_s": self._eta(phase, epoch, iteration)}
                if self.on_batch:
                    self.on_batch(progress)
                if batch_end - last_report >= STATUS_EVERY_S or iteration == 1:
                    _check_finite(loss_sum, epoch, iteration)
                    self.set_status(**progress)
                    last_report = batch_end
                if self._should_stop():
                    raise _StopRequested(N_("epoch {epoch} {phase}, batch {iteration}/{n_iters}").format(
                        epoch=epoch, phase=phase, iteration=iteration, n_iters=n_iters))
        _check_finite(loss_sum, epoch, n_iters)
        seconds = time.perf_counter() - start
        loss_total, labels, probs = self._merge(float(loss_sum), torch.cat(labels), torch.cat(probs).float().cpu(), ids)
        return self._phase_summary(phase, epoch, lr, loss_total, labels, probs, seconds, data_time, n_iters)

    def _merge(self, loss_total: float, labels: torch.Tensor, probs: torch.Tensor, ids: list[str]):
        """(summed loss, labels, probs) over every process; alone, what it is given."""
        return loss_total, labels, probs

    def _step(self, images, targets, training: bool, epoch: int, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward (and backward when training) one batch; returns (mean loss, softmax (B, C)), both
        on the device: the caller reads them when it needs to, not every batch."""
        model = self.train_model if training else self.eval_model
        logits = forward(model, images, self.device, self.amp_dtype, self.channels_last)
        loss = self.criterion(logits, targets.to(self.device, non_blocking=True))
        if training:
            backward_step(self.optimizer, self.scaler, loss)
            self.scheduler.step()
            if self.average:
                self.average.update(self.model)
        return loss, torch.softmax(logits.detach(), dim=1)

    def _phase_summary(self, phase, epoch, lr, loss_total, labels, probs, seconds, data_time, n_iters) -> dict:
        labels = labels.numpy()
        probs = probs.numpy()
        result = metrics.compute_metrics(labels, probs, self.class_names, self.config["headline_metric"])
        row = metrics.to_jsonable({
            "epoch": epoch, "phase": phase, "loss": loss_total / len(labels), "accuracy": result["accuracy"],
            "auc": dict(zip(self.class_names, result["auc"])), "mean_auc": result["mean_auc"], "lr": lr,
            **{k: result[k] for k in ("macro_auc", "balanced_accuracy", "isic2017_mean_auc", "headline") if k in result},
            "n_images": len(labels), "time_s": seconds, "images_per_s": len(labels) / seconds,
            "iter_time_s": seconds / n_iters, "data_time_s": data_time, "time": time.time()})
        runs.append_line(self.run_dir / "history.jsonl", _json_line(row).rstrip("\n"))
        return row

    def _eta(self, phase: str, epoch: int, iteration: int) -> float:
        """Seconds left: remaining batches times the measured (or guessed) time per batch, with
        each epoch's BatchNorm recalibration and the final evaluation of the best weights on
        val and test (forward passes, timed like validation batches until measured)."""
        t_train = self.iter_time.get("train", 0.0)
        t_val = self.iter_time.get("val", t_train / 3)
        n_train, n_val = len(self.loaders["train"]), len(self.loaders["val"])
        calibrate = (self.calibration_s if self.calibration_s is not None
                     else len(self.loaders.get("calibration", ())) * t_val)
        after_train = calibrate + n_val * t_val
        if phase == "train":
            left = (n_train - iteration) * t_train + after_train
        elif phase == "calibrate":
            left = after_train
        else:
            left = (n_val - iteration) * t_val
        final = (n_val + self.n_test_batches) * t_val
        return left + (self.config["epochs"] - epoch) * (n_train * t_train + after_train) + final

    # -- the end

    def _merge_predictions(self, records, ids, labels, probs):
        """(ids, labels, probs) of every record, each once; alone, what it is given."""
        return ids, labels, probs

    def _fit_patient_prior(self) -> dict | None:
        """The metadata prior of the training split (evaluation.patient), when the config asks
        for one and enough training images have an age or a sex; None otherwise (logged)."""
        if not self.config["metadata"]:
            return None
        records = self.data.split("train")
        metas = [r.meta for r in records]
        prior = patient.fit(metas, [r.label for r in records], len(self.class_names))
        if prior is None:
            self.log(f"patient metadata: {patient.known_share(metas):.0%} of the training "
                     f"images have an age or a sex (at least {patient.MIN_KNOWN:.0%} needed): the image alone")
        return prior

    def _with_patient_prior(self, prior: dict, split: str, records, ids, labels, probs) -> np.ndarray:
        """probs combined with each image's metadata; on val, the weight is fitted first and
        patient_model.json written (val comes before test)."""
        metas = patient.metas_of(records, ids)
        if split == "val":
            prior["weight"] = patient.fit_weight(prior, probs, labels, metas)
            patient.save(self.run_dir, prior)
            before = metrics.compute_metrics(labels, probs, self.class_names)["mean_auc"]
            after = metrics.compute_metrics(labels, patient.combine(probs, prior, metas), self.class_names)["mean_auc"]
            self.log(f"patient metadata: prior from {prior['n']} training images ({prior['known']:.0%} with age or "
                     f"sex; {', '.join(prior['features'])}), weight {prior['weight']:g} fitted on val "
                     f"(val mean AUC {_fmt(before)} with the image alone, {_fmt(after)} combined)")
        return patient.combine(probs, prior, metas)

    def _finish(self) -> None:
        """Predictions and metrics of the best weights on val and test; state finished."""
        self.set_status(phase="evaluate", message=N_("evaluating the best model on val and test"))
        best = models.load_checkpoint(self.run_dir / "best.pt")
        models.load_weights(self.model, best["model"], self.run_dir / "best.pt")
        summary = {}
        prior = self._fit_patient_prior()
        for split in ("val", "test"):
            records = self.data.split(split)
            if not records:
                self.log(f"no {split} images: no predictions_{split}.csv")
                continue
            loader = self.loaders["val"] if split == "val" else make_loader(records, self.config["eval_augment"], self.config, False)
            ids, labels, probs = self._merge_predictions(
                records, *predict_loader(self.model, loader, self.device, self.amp_dtype, self.channels_last,
                                         tta=self.config["tta"]))
            if prior is not None:
                probs = self._with_patient_prior(prior, split, records, ids, labels, probs)
            meta = {r.id: r.meta | ({"group": r.group} if r.group else {}) for r in records}
            write_predictions(self.run_dir / f"predictions_{split}.csv", ids, labels, probs, self.class_names, meta)
            result = metrics.compute_metrics(labels, probs, self.class_names, self.config["headline_metric"])
            review = split_review(self.run_dir, split, labels, probs, self.class_names)  # fits calibration on val
            intervals = bootstrap.metric_intervals(labels, probs, self.class_names)  # 95% CIs, seeded
            runs.atomic_write_json(self.run_dir / f"metrics_{split}.json",
                                   _metrics_summary(result, ids) | review | {"intervals": intervals})
            headline = result["headline"]
            summary[split] = {"mean_auc": result["mean_auc"], "accuracy": result["accuracy"], headline: result[headline]}
            self.log(f"best model (epoch {self.best['epoch']}) on {split}: mean AUC {_fmt(result['mean_auc'])}, "
                     f"accuracy {result['accuracy']:.3f}")
        # "finished: " names the state, which the pages show already; the rest is the message.
        # The metric by its name on the pages ("ISIC 2017 mean AUC (melanoma, keratosis)"), not
        # its key, with the 3 decimals the pages show.
        key = self.best["metric"].removeprefix("val_")
        best = {"metric": metrics.HEADLINE_METRICS.get(key, key), "value": _fmt(self.best["value"], 3),
                "epoch": self.best["epoch"]}
        message = "finished: " + (
            N_("best validation {metric}: {value} at epoch {epoch}; test mean AUC {auc}").format(
                **best, auc=_fmt(summary["test"]["mean_auc"], 3)) if "test" in summary
            else N_("best validation {metric}: {value} at epoch {epoch}").format(**best))
        self.set_status(state="finished", phase=None, message=message, eta_s=0, final=metrics.to_jsonable(summary))
        self.log(message)


def _check_finite(loss_sum: torch.Tensor, epoch: int, iteration: int) -> None:
    """_Diverged when the summed loss is no longer finite (one host-device sync)."""
    if not torch.isfinite(loss_sum):
        raise _Diverged(N_("the loss became {loss} by epoch {epoch}, batch {iteration}").format(
            loss=float(loss_sum), epoch=epoch, iteration=iteration))


def dtype_name(dtype: torch.dtype | None) -> str:
    """'bfloat16', 'float16' or 'off' (no autocast)."""
    return str(dtype).replace("torch.", "") if dtype is not None else "off"


def _tolist(tensor: torch.Tensor | None) -> list | None:
    return tensor.tolist() if tensor is not None else None


def _fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _json_line(row: dict) -> str:
    return json.dumps(metrics.to_jsonable(row), allow_nan=False) + "\n"


def _metrics_summary(result: dict, ids) -> dict:
    """compute_metrics' output for metrics_<split>.json: per-sample arrays dropped, ROC kept."""
    per_sample = ("predicted", "confidence", "loss")
    return metrics.to_jsonable({k: v for k, v in result.items() if k not in per_sample} | {"n": len(ids)})


def predict_loader(model: nn.Module, loader: DataLoader, device: torch.device, amp_dtype=None,
                   channels_last: bool = False, wrap: Callable | None = None,
                   tta: bool = False) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids, labels int64 (N,), softmax probabilities float32 (N, C)) of model over loader.

    wrap: optional iterable -> iterable around the loader (e.g. a tqdm progress bar);
    tta: the mean softmax over the 8 flips/90-degree rotations (evaluation.tta).
    """
    model.eval()
    ids, labels, probs = [], [], []
    with torch.no_grad():
        for images, targets, batch_ids in (wrap(loader) if wrap else loader):
            probs.append(_softmax(model, images, (device, amp_dtype, channels_last), tta).cpu())
            labels.append(targets)
            ids += batch_ids
    return ids, torch.cat(labels).numpy(), torch.cat(probs).numpy()


def _softmax(model: nn.Module, images: torch.Tensor, settings: tuple, tta: bool) -> torch.Tensor:
    if tta:
        return mean_softmax(lambda batch: forward(model, batch, *settings), images)
    return torch.softmax(forward(model, images, *settings), dim=1)


# ---------------------------------------------------------------------------- entry points


def _install_signal_handlers(trainer: Trainer) -> dict:
    """SIGINT/SIGTERM set the trainer's stop flag (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, trainer._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


def run_training(config: dict | None = None, runs_dir=None, resume=None, run_dir=None,
                 on_batch: Callable | None = None, on_log: Callable | None = None, trainer_cls=None) -> Path:
    """Train and return the run folder. Exactly one of: config (+ runs_dir) for a new run,
    resume (a stopped, failed or interrupted run folder), run_dir (a folder made by launch()).

    Raises TrainingError (or another LesionLabError) for bad configs, a diverging loss and
    unusable data; the run's status then says "failed" with the same message.
    """
    # The device's lock (one training per device, whatever the runs folder) is taken before
    # anything is written, the run's right after the run is claimed; both are held until the
    # end. Under torchrun, rank 0 holds them for the run.
    # The device's lock is released first, so whoever waits for the run's lock (a sweep) finds the device free.
    held, run_held, lead = ExitStack(), ExitStack(), os.environ.get("RANK", "0") == "0"

    def hold_device(config, run_dir):
        if lead:
            held.enter_context(locks.device(locks.device_name(resolve_device(config["device"])), run_dir))

    try:
        if resume is not None:
            run_dir = absolute(resume)
            hold_device(_resumable_config(run_dir), run_dir)  # a refused resume writes nothing
            config, resuming = _resumable_config(run_dir, claim=True), True
        elif run_dir is not None:
            run_dir, resuming = absolute(run_dir), False
            try:
                config = validate_config(runs.read_config(run_dir))
                _check_world(config)
                hold_device(config, run_dir)
            except LesionLabError as exc:  # e.g. the data folder vanished since launch()
                runs.write_status(run_dir, state="failed", message=str(exc), pid=os.getpid())
                raise
        else:
            config, resuming = validate_config(config or {}), False
            _check_world(config)
            runs_dir = absolute(runs_dir or "runs")
            hold_device(config, runs_dir)
            with _claim(runs_dir) as runs_dir:
                run_dir = runs.create_run(runs_dir, config)
                runs.write_status(run_dir, pid=os.getpid())  # active from now on: a launch beside us is refused
        if lead:
            run_held.enter_context(locks.run(run_dir))
        trainer = (trainer_cls or Trainer)(run_dir, config, on_batch, on_log)  # under torchrun: DistributedTrainer
    except BaseException:
        held.close()
        run_held.close()
        raise
    trainer.status = runs.read_status(run_dir)
    previous = _install_signal_handlers(trainer)
    try:
        trainer.run(resuming)
    except (_StopRequested, KeyboardInterrupt) as where:  # KeyboardInterrupt: a second Ctrl-C
        runs.clear_stop(run_dir)
        saved = (N_("best and last weights saved (last.pt: epoch {epoch})").format(epoch=trainer.completed)
                 if trainer.completed else N_("no epoch was completed, so no weights were saved"))
        command = resume_command(run_dir, trainer.config["processes"])  # under torchrun: the world size
        message = (N_("stopped during {where}; {saved}; continue with Resume on the Train page or {command}").format(
                       where=where, saved=saved, command=command) if str(where)
                   else N_("stopped by a second interrupt; {saved}; continue with Resume on the Train page or "
                           "{command}").format(saved=saved, command=command))
        trainer.set_status(state="stopped", phase=None, message=message, eta_s=None)
        trainer.log(message)
    except _Diverged as exc:
        message = N_("{error}: training diverged. Lower the learning rate (it was {lr}) and start a new run; "
                     "best weights so far are kept").format(error=exc, lr=config["optim"]["lr"])
        trainer.set_status(state="failed", phase=None, message=message, eta_s=None)
        trainer.log(message)
        raise TrainingError(message) from None
    except BaseException as exc:
        message = (str(exc) if isinstance(exc, LesionLabError) else describe_os_error(exc)
                   if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}")
        try:
            trainer.set_status(state="failed", phase=None, message=message, eta_s=None)
            trainer.log(f"failed: {message}")
        except OSError:  # the disk that failed the run is full: the one line still reaches the console
            pass
        if isinstance(exc, (LesionLabError, OSError)) or not isinstance(exc, Exception):
            raise  # already a message for the user (an OSError names its file: cli.main); or SystemExit and the like
        trainer.log(traceback.format_exc())
        # The CLI and the pages show the same one line as status.json; the traceback is in train.log.
        raise TrainingError(N_("training failed: {error} (details in {path})").format(
            error=message, path=run_dir / "train.log")) from exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        held.close()
        run_held.close()
    return run_dir


def _resumable_config(run_dir: Path, claim: bool = False) -> dict:
    """The config of a run that may be resumed; TrainingError when it is running, done or
    damaged, and then nothing in the run folder has changed.

    claim: take the runs folder's one-training-at-a-time lock (as every start does) and mark
    the run active with this process's pid before releasing it.
    """
    _require((run_dir / "config.json").is_file(), N_("not a run folder (no config.json): {path}").format(path=run_dir))
    with _claim(run_dir.parent, own=run_dir) if claim else _no_claim():
        info = runs.run_info(run_dir)
        damage = [p for p in info.damage if p.startswith(("config.json", "status.json"))]
        _require(not damage, N_("cannot resume run {run}: {damage}; the run folder was left as it is").format(
            run=info.id, damage="; ".join(damage)))
        # launch_resume() started this process, or the torchrun that started it
        queued_for_us = info.status.get("pid") in (os.getpid(), os.getppid() if distributed.launched() else None)
        _require(info.state not in runs.ACTIVE_STATES or queued_for_us,
                 N_("run {run} is still {state} (pid {pid})").format(run=info.id, state=info.state,
                                                                     pid=info.status.get("pid")))
        _require(info.state != "finished",
                 N_("run {run} has already finished; start a new run instead").format(run=info.id))
        try:
            config = validate_config(info.config)
        except LesionLabError as exc:
            raise TrainingError(N_("cannot resume run {run}: its config.json is not usable: {error}").format(
                run=info.id, error=exc)) from None
        if claim:  # this process trains it
            _check_world(config)
            runs.write_status(run_dir, pid=os.getpid())  # active from now on: a launch beside us is refused
    if not queued_for_us:  # launch_resume() cleared it; a Stop pressed since, while queued, stands
        runs.clear_stop(run_dir)
    return config


def _check_world(config: dict) -> None:
    """A config for several processes trains under torchrun (launch() starts it so), not alone."""
    n = config["processes"]
    _require(n == 1 or distributed.launched(), N_(
        "this run is set up for {n} processes: start it with torchrun --nproc_per_node={n} -m lesion_core train "
        "..., or from the Train page").format(n=n))


@contextmanager
def _no_claim():
    yield None


@contextmanager
def _claim(runs_dir: Path, own: Path | None = None):
    """Refuse if a run in runs_dir is active, else hold an exclusive lock on the folder until
    the caller's new run is marked active (a pid in its status), so that two launches at the
    same moment (two browser tabs, a tab and a terminal) cannot both pass the check.

    own: the run being resumed (launch_resume may already have marked it queued for us)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(runs_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
        own = own.resolve() if own is not None else None
        active = next((run for run in runs.list_runs(runs_dir)
                       if run.state in runs.ACTIVE_STATES and run.path.resolve() != own), None)
        if active is not None:
            raise TrainingError(N_("run {run} is still {state}: one training at a time; stop it first").format(
                run=active.id, state=active.state))
        yield runs_dir
    finally:
        os.close(fd)


def launch(config: dict, runs_dir) -> Path:
    """Validate, create the run folder, start a detached trainer process and return at once.

    The trainer is `python -m lesion_core train --run-dir <run>` in its own session (a page
    reload or a closed terminal does not kill it), started through torchrun when the config
    asks for several processes; its console output goes to console.log, its progress to the
    run folder.
    """
    config = validate_config(config)
    locks.check_device_free(locks.device_name(resolve_device(config["device"])))  # the trainer holds it
    with _claim(absolute(runs_dir)) as runs_dir:
        run_dir = runs.create_run(runs_dir, config)
        _start_detached(run_dir, "--run-dir", config["processes"])
    return run_dir


def launch_resume(run_dir) -> Path:
    """Continue a stopped, failed or interrupted run in a detached `train --resume` process."""
    run_dir = absolute(run_dir)
    config = _resumable_config(run_dir)  # refuses running and finished runs now, not in the child
    locks.check_device_free(locks.device_name(resolve_device(config["device"])))
    with _claim(run_dir.parent):
        _start_detached(run_dir, "--resume", config["processes"])
    return run_dir


def resume_command(run_dir: Path, processes: int = 1) -> str:
    """What a user types to continue run_dir: `train --resume RUN`, through torchrun for a run
    that trains in several processes (alone, such a run is refused: _check_world)."""
    command = f"train --resume {run_dir}"
    return command if processes <= 1 else f"torchrun --nproc_per_node={processes} -m lesion_core {command}"


def trainer_command(run_dir: Path, flag: str, processes: int = 1) -> list[str]:
    """The command that trains run_dir: `python -m lesion_core train <flag> <run_dir>`, under
    torchrun (one machine, `processes` workers) when processes > 1."""
    command = [sys.executable, "-m", "lesion_core", "train", flag, str(run_dir)]
    if processes > 1:
        command[1:2] = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m"]
    return command


def _start_detached(run_dir: Path, flag: str, processes: int = 1) -> None:
    """Start the trainer_command in its own session; mark the run queued with its pid (under
    torchrun, torchrun's: rank 0, its child, takes over the status).

    The child runs in the run folder, so run_dir must be absolute (a relative one would
    name runs/<id>/runs/<id> there).
    """
    run_dir = absolute(run_dir)
    package_root = str(Path(lesion_core.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    with open(run_dir / "console.log", "ab") as console:
        process = subprocess.Popen(
            trainer_command(run_dir, flag, processes),
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, cwd=run_dir)
    # The pid makes the run active at once, before the child has even imported torch.
    runs.write_status(run_dir, state="queued", pid=process.pid, message=N_("waiting for the trainer to start"))


# ---------------------------------------------------------------------------- using a run


def load_run_model(run_dir, device: str = "cpu") -> tuple[nn.Module, dict]:
    """(model with best.pt weights in eval mode, config) of a run; refuses unsafe checkpoints."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    best = run_dir / "best.pt"
    _require(best.is_file(), N_("run {run} has no best.pt yet (no epoch finished)").format(run=run_dir.name))
    checkpoint = models.load_checkpoint(best)
    class_names = config["data"]["class_names"]
    model = models.build_model(config["model"]["name"], len(class_names), weights="random")
    models.load_weights(model, models.extract_state_dict(checkpoint), best)
    return model.to(device).eval(), config


def run_config(run_dir) -> dict:
    """A trained run's config.json, checked before its model is used (it is untrusted input):
    TrainingError names the file and what is wrong."""
    run_dir = Path(run_dir)
    _require((run_dir / "config.json").is_file(), N_("not a run folder (no config.json): {path}").format(path=run_dir))
    damage = [p for p in runs.run_problems(run_dir) if p.startswith("config.json")]
    _require(not damage, N_("run {run} cannot be used: {damage}").format(run=run_dir.name, damage="; ".join(damage)))
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
    _require(bool(names), N_("run {run} cannot be used: config.json has no class names (no epoch finished?)").format(
        run=run_dir.name))
    return config


def _inference_settings(config: dict) -> tuple[torch.device, torch.dtype | None, bool]:
    """(device, autocast dtype, channels_last) for using a run's model on the CPU with the
    precision it was trained and evaluated with, so evaluate reproduces predictions_*.csv."""
    device = torch.device("cpu")
    return device, resolve_amp(config.get("amp", "off"), device), bool(config.get("channels_last"))


_MODEL_CACHE: dict = {}  # (run folder, best.pt mtime) -> (model, pipeline, class names, settings)


def predict_image(run_dir, image: np.ndarray, mask: np.ndarray | None = None, calibrated: bool = True,
                  tta: bool | None = None, meta: dict | None = None) -> dict:
    """{class name: probability} for one uint8 (H, W, 3) image with the run's best model;
    averaged over 8 flips/rotations when tta (None: as the run's config says); combined with
    the patient's metadata (age, sex, site as data.patient_meta has them; None: unknown) when
    the run has a patient model; scaled by the run's calibration.json unless calibrated is False."""
    run_dir = Path(run_dir).resolve()
    key = (str(run_dir), (run_dir / "best.pt").stat().st_mtime_ns if (run_dir / "best.pt").exists() else None)
    if key not in _MODEL_CACHE:
        model, config = load_run_model(run_dir)
        entry = models.MODELS[config["model"]["name"]]
        spec = transforms.finalize_spec(config["eval_augment"], image_size(config), entry.mean, entry.std)
        if len(_MODEL_CACHE) >= 4:
            _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
        _MODEL_CACHE[key] = (model, transforms.build_pipeline(spec), config["data"]["class_names"],
                             _inference_settings(config), config["tta"])
    model, pipeline, class_names, settings, run_tta = _MODEL_CACHE[key]
    tta = run_tta if tta is None else tta
    if mask is None and transforms.needs_mask(pipeline.spec):
        raise TransformError(f"run {run_dir.name} was trained on lesion crops, so it classifies an image cropped "
                             "to its lesion: give the lesion mask too (predict --mask MASK, or the mask upload)")
    sample = pipeline({"image": np.ascontiguousarray(image, dtype=np.uint8), "mask": mask, "label": 0, "id": "image"})
    with torch.no_grad():
        probs = _softmax(model, sample["image"].unsqueeze(0), settings, tta).numpy()
    probs = patient.apply_run(run_dir, probs, [meta or {}], len(class_names))
    if calibrated:
        probs = calibration.apply_temperature(probs, calibration.read_temperature(run_dir))
    return {name: float(p) for name, p in zip(class_names, probs[0])}


def evaluate_run(run_dir, split: str = "test", data_root=None, wrap: Callable | None = None,
                 allow_missing: bool = False, calibrated: bool = True, tta: bool | None = None,
                 metadata: bool = True) -> dict:
    """compute_metrics() of the run's best model on one split of its recorded data split
    (plus "ids", "labels", "raw_probs" (combined with the metadata as the run's own predictions
    are, unless metadata is False: the image alone; before calibration), the "temperature"
    applied unless calibrated is False,
    and "missing": recorded ids that are missing or unreadable now); wrap and tta as in
    predict_loader.

    Refuses (TrainingError) when recorded images are missing or unreadable, unless
    allow_missing: a score over a silent subset would not be the run's score.
    """
    model, config = load_run_model(run_dir)
    _require(split in ("train", "val", "test"), f"unknown split {split!r}; use val or test")
    lesion = load_data(config, root_override=data_root)
    records = lesion.split(split)
    recorded_split = _recorded_split(config["data"])
    recorded = (recorded_split or {}).get("splits", {}).get(split, [])
    loaded = {r.id for r in records}
    missing = [sample_id for sample_id in recorded if sample_id not in loaded]
    if missing and not allow_missing:
        raise TrainingError(N_(
            "{n} of the {total} recorded {split} images are missing or unreadable (first: {first}); restore them "
            "(or give --data where the dataset is now), or pass --allow-missing to score the other {left}").format(
            n=len(missing), total=len(recorded), split=split, first=", ".join(map(str, missing[:3])),
            left=len(records)))
    _require(bool(records), N_("the {split} split of this run is empty").format(split=split))
    loader = make_loader(records, config["eval_augment"], config, False)
    tta = config["tta"] if tta is None else tta
    ids, labels, probs = predict_loader(model, loader, *_inference_settings(config), wrap=wrap, tta=tta)
    if metadata:
        probs = patient.apply_run(run_dir, probs, patient.metas_of(records, ids), len(lesion.class_names))
    temperature = calibration.read_temperature(run_dir) if calibrated else 1.0
    result = metrics.compute_metrics(labels, calibration.apply_temperature(probs, temperature), lesion.class_names)
    result.update(ids=ids, labels=labels, raw_probs=probs, temperature=temperature)
    result["missing"] = missing
    return result
