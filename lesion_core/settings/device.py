"""Devices: which exist here, what a config's device name means, the choices a page offers,
and the mixed precision each device gets."""

from __future__ import annotations

import re

import torch

from lesion_core.errors import require
from lesion_core.i18n import N_

DEVICES = ("auto", "cpu", "cuda", "mps")

DEVICE_NAME = re.compile(r"auto|cpu|cuda|cuda:\d+|mps")


def gpu_count() -> int:
    """CUDA GPUs this process can use (CUDA_VISIBLE_DEVICES applies)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA, else Apple MPS, else CPU; a requested device that is absent raises TrainingError."""
    gpus, mps = gpu_count(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if gpus else "mps" if mps else "cpu")
    kind, _, index = name.partition(":")
    require(kind == "cpu" or (kind == "cuda" and int(index or 0) < gpus) or (kind == "mps" and mps),
             N_("device {name} is not available here; use 'auto' or 'cpu'").format(name=repr(name)))
    return torch.device(name)


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
