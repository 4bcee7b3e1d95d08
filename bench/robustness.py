"""Time of the robustness report against one plain scoring pass of the same images.

    python bench/robustness.py [--data DIR] [--size 224] [--run RUN]

Without --run, trains a throwaway EfficientNet-Lite0 run (offline ImageNet weights, 1 epoch
on 48 images; the weights' quality does not change the time) in a temporary folder. Then
scores all the dataset's images (300 for the ISIC sample) at --size: once unshifted (the
baseline, what `evaluate` costs) and with the full report (11 conditions + baseline +
bootstrap intervals). The ratio is the figure to quote; the goal is under 3 minutes for
300 images at 224 px on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from lesion_core import data
from lesion_core.evaluation import robustness
from lesion_core import training


def throwaway_run(root: str, size: int, out: Path) -> Path:
    config = {"data": {"root": root, "max_size": 48}, "model": {"name": "efficientnet_lite0", "weights": "default"},
              "image_size": size, "epochs": 1, "batch_size": 16, "bn_recalibration_images": 0}
    return training.run_training(config, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data/isic2017_dev")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--run", help="an existing run folder (its image size is used)")
    parser.add_argument("--images", type=int, default=0, help="score only the first N images (0 = all)")
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run) if args.run else throwaway_run(args.data, args.size, Path(tmp) / "runs")
        records = data.load_dataset(args.data).records
        records = records[:args.images] if args.images else records
        plain = [{"name": "none", "kind": "brightness", "ita_group": None, "value": 1.0}]
        robustness.robustness_report(run_dir, records=records[:8], conditions=plain, n_resamples=10)  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        robustness.robustness_report(run_dir, records=records, conditions=[], n_resamples=1000)
        baseline, baseline_cpu = time.perf_counter() - start, time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        report = robustness.robustness_report(run_dir, records=records, n_resamples=1000)
        full, full_cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"{len(records)} images at {args.size} px, {len(report['conditions'])} conditions")
    # CPU seconds too: on a shared machine the wall time says more about the neighbours.
    print(f"baseline (one unshifted pass + intervals): {baseline:.1f} s wall, {baseline_cpu:.1f} s CPU")
    print(f"full robustness report: {full:.1f} s wall, {full_cpu:.1f} s CPU; ratio to the baseline "
          f"{full / baseline:.1f}x wall, {full_cpu / baseline_cpu:.1f}x CPU (12 passes would be 12x)")


if __name__ == "__main__":
    main()
