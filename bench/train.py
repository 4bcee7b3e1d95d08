"""Training throughput of the default CPU recipe: does the data loader starve the model?

    python bench/train.py [--data DIR|demo] [--size 224] [--batch-size 32] [--batches 4] [--amp auto|off]

Measures, in one run and with the trainer's own pieces (train.make_loader, train.forward,
train.backward_step; bf16 autocast + channels_last when the CPU supports it, as "auto" does):
  1. a large square matmul (fp32, and bf16 when training uses bf16): the machine's peak;
  2. training images/s fed from one batch of tensors already in memory (the model alone);
  3. the loader alone: samples/s of the real LesionDataset + default_train augmentation
     (decoded-image cache warm, as from the second epoch on);
  4. training images/s fed by that loader (what an epoch really gets);
2-4 are timed batch by batch in turn, so that other load on a shared machine hits them alike;
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

# bf16 autocast on CPU needs a few steps before oneDNN settles (steps 1-4: ~5 img/s, then ~35).
N_WARMUP = 4


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="demo", help="dataset folder or 'demo' (default)")
    parser.add_argument("--size", type=int, default=224, help="input side in pixels (default 224)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6, help=f"timed batches per measurement (after {N_WARMUP} warm-up)")
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

    n_timed = args.batch_size * args.batches
    lesion = train.load_data(config)
    records = (lesion.split("train") * (n_timed // max(len(lesion.split("train")), 1) + 1))[:n_timed]
    loader = train.make_loader(records, config["augment"], config, shuffle=True, generator=torch.Generator().manual_seed(0))

    start = time.perf_counter()
    batches = iter(loader)  # the first pass fills the decoded-image cache, as the first epoch does
    first = next(batches)
    for _ in batches:
        pass
    print(f"first pass over {len(records)} images of {args.data} (decoding): {len(records) / (time.perf_counter() - start):.0f} samples/s")
    for _ in range(N_WARMUP):
        step(first[0], first[1])

    # Interleaved, so that the other load on a shared machine hits all three alike.
    t_memory = t_fetch = t_fed = 0.0
    batches = iter(loader)
    for _ in range(args.batches):
        t0 = time.perf_counter()
        step(first[0], first[1])
        t1 = time.perf_counter()
        images, labels, _ids = next(batches)
        t2 = time.perf_counter()
        step(images, labels)
        t3 = time.perf_counter()
        t_memory, t_fetch, t_fed = t_memory + t1 - t0, t_fetch + t2 - t1, t_fed + t3 - t2
    memory, loader_rate, fed = n_timed / t_memory, n_timed / t_fetch, n_timed / (t_fetch + t_fed)
    print(f"loader alone (warm cache): {loader_rate:.0f} samples/s")
    flops_per_image = 3 * forward_flops(model, first[0], amp_dtype, True) / args.batch_size
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
