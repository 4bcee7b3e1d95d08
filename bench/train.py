"""Training throughput of the default recipe on any device: does the data loader starve the model?

    python bench/train.py [--data DIR|demo] [--model efficientnet_lite0] [--size 224] [--batch-size 32]
                          [--batches 6] [--amp auto|off]
                          [--device auto|cpu|cuda|cuda:N] [--num-workers auto|N] [--compile]

Measures, in one run and with the trainer's own pieces (settings.make_loader with its worker,
pinning and prefetch settings, inference.forward, training.backward_step; autocast + channels_last
as "auto" does: bf16 on a CPU that supports it, bf16/fp16 on CUDA):
  1. a large square matmul (fp32, and bf16 when training uses bf16): the machine's peak;
  2. model only: training images/s on one batch already on the device;
  3. the loader alone: samples/s of the real LesionDataset + default_train augmentation
     (decoded-image cache warm, as from the second epoch on);
  4. loader-fed: training images/s fed by that loader (what an epoch really gets);
2-4 are timed in rounds of --batches batches in turn (device synchronised at each end), so that
other load on a shared machine hits them alike; with --compile the model goes through
torch.compile first (its compile time printed);
and the step's achieved GFLOP/s: forward FLOPs counted by torch.utils.flop_counter x 3 for
forward + backward. Caveat (MEASUREMENTS.md): torch 2.14's FlopCounterMode overcounts the
backward of depthwise convolutions by the channel count, so we count the forward only and
assume backward = 2 x forward; for depthwise-heavy nets that is itself only an estimate.
"""

from __future__ import annotations

import collections
import argparse
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lesion_core import models
from lesion_core.settings import loading
from lesion_core import inference
from lesion_core import settings
from lesion_core import training

# bf16 autocast on CPU needs a few steps before oneDNN settles (steps 1-4: ~5 img/s, then ~35).
N_WARMUP = 4


def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 1.5, device=torch.device("cpu"),
                  sync=lambda: None) -> float:
    """Achieved GFLOP/s of repeated (n, n) @ (n, n) products in dtype on device."""
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up
    sync()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
        if count % 10 == 0:
            sync()
    sync()
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def forward_flops(model: nn.Module, images: torch.Tensor, amp_dtype, channels_last: bool,
                  device=torch.device("cpu")) -> int:
    """FLOPs of one forward pass over images (B, 3, S, S)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        inference.forward(model, images, device, amp_dtype, channels_last)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="demo", help="dataset folder or 'demo' (default)")
    parser.add_argument("--model", default=models.DEFAULT_MODEL, choices=list(models.MODELS))
    parser.add_argument("--size", type=int, default=224, help="input side in pixels (default 224)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6, help=f"timed batches per round (after {N_WARMUP} warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three measurements")
    parser.add_argument("--amp", default="auto", choices=("auto", "off"))
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:<index> or mps")
    parser.add_argument("--num-workers", default="auto", help="'auto' (the trainer's default) or a count")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = parser.parse_args()

    workers = args.num_workers if args.num_workers == "auto" else int(args.num_workers)
    config = settings.validate_config({"data": {"root": args.data}, "model": {"name": args.model},
                                    "image_size": args.size, "device": args.device,
                                    "batch_size": args.batch_size, "amp": args.amp, "num_workers": workers})
    device = settings.resolve_device(config["device"])
    amp_dtype = settings.resolve_amp(config["amp"], device)
    name = config["model"]["name"]
    n_workers = loading.resolve_num_workers(workers, device)
    print(f"{name} at {args.size} px, batch {args.batch_size}, on {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"{torch.get_num_threads()} threads, {n_workers} loader workers ({loading.cpu_count()} cores), "
          f"autocast {training.dtype_name(amp_dtype)}, channels_last, compile {args.compile}, torch {torch.__version__}")

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    peak = {"fp32": matmul_gflops(torch.float32, device=device, sync=sync)}
    if amp_dtype is not None:
        peak[training.dtype_name(amp_dtype)] = matmul_gflops(amp_dtype, device=device, sync=sync)
    print("matmul 2048^3: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))

    model = models.build_model(name, 3, weights="default").to(device).to(memory_format=torch.channels_last).train()
    optimizer = training.make_optimizer(config, model.parameters())
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    criterion = nn.CrossEntropyLoss()
    net = torch.compile(model) if args.compile else model

    def step(images, labels):
        loss = criterion(inference.forward(net, images, device, amp_dtype, True), labels.to(device, non_blocking=True))
        training.backward_step(optimizer, scaler, loss)

    per_round = args.batch_size * args.batches
    lesion = settings.load_data(config)
    n_records = per_round * (args.rounds + 1)
    records = (lesion.split("train") * (n_records // max(len(lesion.split("train")), 1) + 1))[:n_records]
    loader = settings.make_loader(records, config["augment"], config, shuffle=True, generator=torch.Generator().manual_seed(0))

    start = time.perf_counter()
    # The first pass fills the decoded-image cache, as the first epoch does; its last batch is
    # the one timed below.
    first = collections.deque(loader, maxlen=1)[0]
    print(f"first pass over {len(records)} images of {args.data} (decoding): "
          f"{len(records) / (time.perf_counter() - start):.0f} samples/s")
    on_device = first[0].to(device), first[1].to(device)
    start = time.perf_counter()
    for _ in range(N_WARMUP):
        step(*on_device)
    sync()
    print(f"warm-up ({N_WARMUP} steps{', compiling' if args.compile else ''}): {time.perf_counter() - start:.1f} s")

    def batches():
        while True:
            yield from loader

    feed, fetch = batches(), batches()
    t_memory = t_loader = t_fed = 0.0
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for _ in range(args.batches):
            step(*on_device)
        sync()
        t1 = time.perf_counter()
        for _ in range(args.batches):
            next(fetch)
        t2 = time.perf_counter()
        for _ in range(args.batches):
            images, labels, _ids = next(feed)
            step(images, labels)
        sync()
        t3 = time.perf_counter()
        t_memory, t_loader, t_fed = t_memory + t1 - t0, t_loader + t2 - t1, t_fed + t3 - t2
    n_timed = per_round * args.rounds
    memory, loader_rate, fed = n_timed / t_memory, n_timed / t_loader, n_timed / t_fed
    flops_per_image = 3 * forward_flops(model, first[0].to(device), amp_dtype, True, device) / args.batch_size
    achieved = memory * flops_per_image / 1e9
    print(f"model only (batch on the device): {memory:.1f} img/s")
    print(f"loader alone (warm cache): {loader_rate:.0f} samples/s")
    print(f"loader-fed training: {fed:.1f} img/s")
    print(f"training FLOPs: {flops_per_image / 1e9:.2f} GFLOP/image (3 x forward) -> {achieved:.1f} GFLOP/s")
    print("ratios:")
    print(f"  loader-fed / model only: {fed / memory:.2f}  (1.00 = the loader never starves the model)")
    print(f"  loader alone / model only: {loader_rate / memory:.1f}x  (above 1: the loader can keep up)")
    for kind, gflops in peak.items():
        print(f"  achieved / {kind} matmul: {achieved / gflops:.1%}")


if __name__ == "__main__":
    main()
