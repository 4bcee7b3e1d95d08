"""How long a run will take here: from a finished run's measured speed on this machine, else
a few batches of the run's own model timed here and now (time_batches), else the project's
reference speed for the device, scaled by image side and model cost."""

from __future__ import annotations

import statistics
import time

import torch

from lesion_core import runs
from lesion_core.errors import TrainingError
from lesion_core.i18n import N_
from lesion_core.settings.device import resolve_amp, resolve_device
from lesion_core.settings.schema import image_size

# Training and inference images/s of EfficientNet-Lite0 at 224 px with the trainer's own
# settings (bf16 autocast + channels_last on a CPU with bf16; 2 threads), measured on the
# project's 2-core machine (fold 2 of bench/quality.py's standard recipe, 2026-11-28, load
# average ~1.5: 16.7 and 103 img/s after the first epoch); other sizes scale with the side, not the
# pixel count: small inputs are dominated by per-batch overheads (Lite0 at 96 px trains the demo
# at ~50 img/s, not 5x the 224-px rate). STARTUP_S: starting Python, the model, the first
# decoding. The estimate prefers what a finished run on this machine measured.
REFERENCE_SIZE = 224


REFERENCE_IMAGES_PER_S = {"cpu": (17.0, 100.0), "cuda": (250.0, 900.0), "mps": (40.0, 150.0)}


# Time per image relative to Lite0 at the same side (divided by the side ratio the estimate
# applies anyway), from the trainer itself on the quiet 2-core machine: Lite2 at 260 px trained
# bench/quality.py's folds at 7.8 img/s and validated at 50.5 (2026-11-29; Lite0 at 224 px:
# 16.7 and 103), so 1.8; Lite1 from `bench/train.py --model` back to back (2026-11-28, model
# only: Lite0 at 224 px 12.7 and 11.2 img/s, Lite1 at 240 px 9.3; its fold 1 trained at 9.8
# img/s under a light load). Other models: Lite0's speed.
MODEL_COST = {"efficientnet_lite1": 1.3, "efficientnet_lite2": 1.8}


STARTUP_S = 15.0


TTA_VIEWS = 8


def _measured_speed(config: dict, listed_runs) -> tuple[float, float, str] | None:
    """(train, eval images/s, run id) of the newest finished run (runs.RunInfo) with the same
    model, image size, device kind and number of processes, from its history (epochs after the
    first, which also decodes every image; under torchrun the rates are the whole job's)."""
    model, size, kind = config["model"]["name"], image_size(config), _device_kind(config)
    for run in sorted(listed_runs, key=lambda r: r.id, reverse=True):
        resolved = run.config.get("resolved") or {}
        if (run.state != "finished" or run.model != model or resolved.get("image_size") != size
                or str(resolved.get("device", "")).split(":")[0] != kind
                or run.config.get("processes", 1) != config.get("processes", 1)):
            continue
        history = runs.read_history(run.path)
        rates = {phase: [row["images_per_s"] for row in history
                         if row.get("phase") == phase and row.get("epoch", 0) > 1 and row.get("images_per_s")]
                 for phase in ("train", "val")}
        if rates["train"] and rates["val"]:
            return statistics.median(rates["train"]), statistics.median(rates["val"]), run.id
    return None


def _device_kind(config: dict) -> str:
    try:
        return resolve_device(config["device"]).type
    except TrainingError:  # an unavailable device is reported by Launch, not here
        return "cpu"


def estimate(config: dict, n_images: int, listed_runs=(), timed: dict | None = None) -> dict:
    """Roughly how long a run of config on n_images usable images takes here.

    {"seconds", "low", "high" (the range the time may take: a machine busier than when the
    speed was measured takes longer), "images" (those the run uses: max_size counts), "basis":
    "run" (a finished run's measured speed; "run" names it), "timed" (timed, time_batches'
    answer for this config: a few batches timed here) or "reference" (the project's reference
    speed for this device kind, scaled by the image side and the model's cost)}.
    Counts every epoch's training and validation pass, the BatchNorm recalibration and the
    final scoring of val and test (8 views each with test-time augmentation)."""
    data = config["data"]
    n = min(n_images, data["max_size"]) if data.get("max_size") else n_images
    n_val, n_test = round(n * data["val_fraction"]), round(n * data["test_fraction"])
    n_train = max(n - n_val - n_test, 0)
    measured = _measured_speed(config, listed_runs)
    kind = _device_kind(config)
    # one GPU per process (on the CPU, processes share the same cores)
    processes = config.get("processes", 1) if kind == "cuda" else 1
    if measured:
        train_rate, eval_rate, run_id = measured
        basis = {"basis": "run", "run": run_id}
    elif timed:
        train_rate, eval_rate = timed["train"] * processes, timed["eval"] * processes
        basis = {"basis": "timed"}
    else:
        train_rate, eval_rate = REFERENCE_IMAGES_PER_S.get(kind, REFERENCE_IMAGES_PER_S["cpu"])
        scale = REFERENCE_SIZE / image_size(config) / MODEL_COST.get(config["model"]["name"], 1.0) * processes
        train_rate, eval_rate = train_rate * scale, eval_rate * scale
        basis = {"basis": "reference"}
    calibration = min(config["bn_recalibration_images"], n_train)
    per_epoch = n_train / train_rate + (n_val + calibration) / eval_rate
    final = (n_val + n_test) * (TTA_VIEWS if config.get("tta") else 1) / eval_rate
    seconds = STARTUP_S + config["epochs"] * per_epoch + final
    low, high = ESTIMATE_RANGE[basis["basis"]]
    return {"seconds": seconds, "low": seconds * low, "high": seconds * high, "images": n} | basis


# Timing a few batches: at most this many images a batch (a larger batch trains at about the
# same images/s on a CPU, and one batch of 64 at 384 px would take most of a minute), and
# about this many seconds of timed steps after one untimed warm-up step.
TIMING_BATCH = 16
TIMING_BUDGET_S = 3.0
_TIMED: dict[tuple, dict] = {}


def timing_key(config: dict) -> tuple:
    """What a speed timed by time_batches depends on: model, size, batch, device, amp."""
    device = resolve_device(config["device"])
    return (config["model"]["name"], image_size(config), min(config["batch_size"], TIMING_BATCH), str(device),
            str(resolve_amp(config["amp"], device)), bool(config["channels_last"]), bool(config["model"]["freeze_backbone"]))


def timed_speed(config: dict) -> dict | None:
    """time_batches' answer for config if this process already timed it, else None."""
    return _TIMED.get(timing_key(config))


def time_batches(config: dict, budget_s: float = TIMING_BUDGET_S) -> dict:
    """{"train", "eval": images/s, "batches": train steps timed}: the run's own model (random
    weights: the same cost) trained and scored here on a synthetic batch at the run's image
    size, on its device with its autocast and memory format, as the trainer does; a warm-up
    step first, then steps until budget_s. Leaves out what the trainer adds around the model
    (reading and augmenting images), which the estimate's range covers. Cached per
    timing_key for the life of the process."""
    from lesion_core import models
    from lesion_core.inference.model import forward
    from lesion_core.training.ops import backward_step
    from lesion_core.training.optim import make_optimizer

    key = timing_key(config)
    if key in _TIMED:
        return _TIMED[key]
    name, size, batch, _device, _amp, channels_last, freeze = key
    device = resolve_device(config["device"])
    amp_dtype = resolve_amp(config["amp"], device)
    channels_last = channels_last and device.type in ("cpu", "cuda")
    n_classes = max(len(config["data"].get("class_names") or ()), 2)
    model = models.build_model(name, n_classes, weights="random", freeze_backbone=freeze).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(config, model.parameters())
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    targets = torch.arange(batch, device=device) % n_classes
    criterion = torch.nn.CrossEntropyLoss()

    def train_step() -> None:
        loss = criterion(forward(model, images, device, amp_dtype, channels_last), targets)
        backward_step(optimizer, scaler, loss)

    def eval_step() -> None:
        with torch.no_grad():
            forward(model, images, device, amp_dtype, channels_last)

    try:
        model.train()
        train_s, steps = _steps_per_s(train_step, device, budget_s * 0.7)
        model.eval()
        eval_s, _ = _steps_per_s(eval_step, device, budget_s * 0.3)
    except RuntimeError as exc:  # out of memory at this size and batch, above all (torch.OutOfMemoryError)
        raise TrainingError(N_("timing a few batches of {model} at {size} px failed: {error}").format(
            model=name, size=size, error=(str(exc).splitlines() or [type(exc).__name__])[0][:200])) from None
    _TIMED[key] = {"train": batch / train_s, "eval": batch / eval_s, "batches": steps}
    return _TIMED[key]


def _steps_per_s(step, device: torch.device, budget_s: float) -> tuple[float, int]:
    """(median seconds per step, steps timed): one untimed warm-up step, then at least
    MIN_TIMED_STEPS steps and more until budget_s has passed; the median, as one step slowed
    by a neighbour's burst says little of the run's minutes."""
    def synced() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    step()
    times, start = [], synced()
    while len(times) < MIN_TIMED_STEPS or sum(times) < budget_s:
        before = synced()
        step()
        times.append(synced() - before)
        if synced() - start > 10 * budget_s:  # never more than a few steps of a slow model
            break
    return statistics.median(times), len(times)


MIN_TIMED_STEPS = 3


# How far a run may stray from the estimate: a speed measured here by a finished run still
# meets another load (a run took 7 minutes where 35 s were estimated from the reference speed,
# beside four busy sessions); the reference speeds are another machine's.
# Batches timed here and now leave out reading and augmenting the images, and the load may grow.
ESTIMATE_RANGE = {"run": (0.8, 2.0), "timed": (0.7, 2.5), "reference": (0.5, 4.0)}
