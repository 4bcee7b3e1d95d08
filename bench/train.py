"""Training throughput of the default CPU recipe: does the data loader starve the model?

    python bench/train.py [--data DIR|demo] [--size 224] [--batch-size 32] [--batches 4] [--amp auto|off]

Measures, in one run and with the trainer's own pieces (train.make_loader, train.forward,
train.backward_step; bf16 autocast + channels_last when the CPU supports it, as "auto" does):
  1. a large square matmul (fp32, and bf16 when training uses bf16): the machine's peak;
  2. training images/s fed from one batch of tensors already in memory (the model alone);
  3. the loader alone: samples/s of the real LesionDataset + default_train augmentation
     (decoded-image cache warm, as from the second epoch on);
  4. training images/s fed by that loader (what an epoch really gets);
and the step's achieved GFLOP/s: forward FLOPs counted by torch.utils.flop_counter x 3 for
forward + backward. Caveat (MEASUREMENTS.md): torch 2.14's FlopCounterMode overcounts the
backward of depthwise convolutions by the channel count, so we count the forward only and
assume backward = 2 x forward; for depthwise-heavy nets that is itself only an estimate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lesion_core import models, train  # noqa: E402


def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 1.5) -> float:
    """Achieved GFLOP/s of repeated (n, n) @ (n, n) products in dtype."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def forward_flops(model: nn.Module, images: torch.Tensor, amp_dtype, channels_last: bool) -> int:
    """FLOPs of one forward pass over images (B, 3, S, S)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        train.forward(model, images, torch.device("cpu"), amp_dtype, channels_last)
    return counter.get_total_flops()


def train_rate(step, batches, n_warmup: int = 1) -> float:
    """Images/s of step(images, labels) over an iterable of batches, after n_warmup batches."""
    seen, start = 0, None
    for index, (images, labels) in enumerate(batches):
        if index == n_warmup:
            start = time.perf_counter()
        step(images, labels)
        if start is not None:
            seen += len(labels)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="demo", help="dataset folder or 'demo' (default)")
    parser.add_argument("--size", type=int, default=224, help="input side in pixels (default 224)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4, help="timed batches per measurement")
    parser.add_argument("--amp", default="auto", choices=("auto", "off"))
    args = parser.parse_args()

    config = train.validate_config({"data": {"root": args.data}, "image_size": args.size,
                                    "batch_size": args.batch_size, "amp": args.amp})
    device = torch.device("cpu")
    amp_dtype = train.resolve_amp(config["amp"], device)
    name = config["model"]["name"]
    print(f"{name} at {args.size} px, batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"autocast {train.dtype_name(amp_dtype)}, channels_last, torch {torch.__version__}")

    peak = {"fp32": matmul_gflops(torch.float32)}
    if amp_dtype == torch.bfloat16:
        peak["bf16"] = matmul_gflops(torch.bfloat16)
    print("matmul 2048^3: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))

    model = models.build_model(name, 3, weights="default").to(memory_format=torch.channels_last).train()
    optimizer = train.make_optimizer(config, model.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    criterion = nn.CrossEntropyLoss()

    def step(images, labels):
        loss = criterion(train.forward(model, images, device, amp_dtype, True), labels)
        train.backward_step(optimizer, scaler, loss)

    n_needed = args.batch_size * (args.batches + 1)
    lesion = train.load_data(config)
    records = (lesion.split("train") * (n_needed // max(len(lesion.split("train")), 1) + 1))[:n_needed]
    loader = train.make_loader(records, config["augment"], config, shuffle=True, generator=torch.Generator().manual_seed(0))

    start = time.perf_counter()
    batches = [(images, labels) for images, labels, _ in loader]  # fills the decoded-image cache
    first_pass = len(records) / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in loader:
        pass
    loader_rate = len(records) / (time.perf_counter() - start)
    print(f"loader alone: {loader_rate:.0f} samples/s with a warm decode cache "
          f"(first pass, decoding {args.data}: {first_pass:.0f} samples/s)")

    memory = train_rate(step, [batches[0]] * (args.batches + 1))
    fed = train_rate(step, ((images, labels) for images, labels, _ in loader))
    flops_per_image = 3 * forward_flops(model, batches[0][0], amp_dtype, True) / args.batch_size
    achieved = memory * flops_per_image / 1e9
    print(f"training fed from memory: {memory:.1f} img/s; fed by the loader + augmentation: {fed:.1f} img/s")
    print(f"training FLOPs: {flops_per_image / 1e9:.2f} GFLOP/image (3 x forward) -> {achieved:.1f} GFLOP/s")
    print("ratios:")
    print(f"  loader-fed / in-memory training: {fed / memory:.2f}  (1.00 = the loader never starves the model)")
    print(f"  loader alone / in-memory training: {loader_rate / memory:.1f}x  (above 1: the loader can keep up)")
    for kind, gflops in peak.items():
        print(f"  achieved / {kind} matmul: {achieved / gflops:.1%}")


if __name__ == "__main__":
    main()
