"""Heatmap speed: one image's Grad-CAM against one plain forward pass of the same model.

    python bench/explain.py [--model efficientnet_lite0] [--size 224] [--repeats 10] [--threads 2]

Builds a run folder in a temporary directory holding the model's randomly initialised (or
offline ImageNet) weights, so the same Explainer path as `explain` is timed: one Explainer,
then per image the eval pipeline, a forward with hooks, the backward of the class score and
the CAM resized to the input. Reported as seconds per heatmap and the ratio to a plain no-grad
forward of the same input, measured alternately in the same run (a shared machine's load then
hits both alike). The product's target: under 1 s per 224 px heatmap on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lesion_core import models, runs, settings
from lesion_core.core import CLASS_NAMES
from lesion_core.evaluation import explain


def fake_run(folder: Path, model_name: str, size: int) -> Path:
    """A run folder with config.json and best.pt (offline weights when the model has them)."""
    config = settings.validate_config({"data": {"root": "demo", "class_names": list(CLASS_NAMES)},
                                    "model": {"name": model_name, "weights": "random"}, "image_size": size,
                                    "eval_augment": "eval"})
    weights = "offline" if "offline" in models.MODELS[model_name].weight_sources else "random"
    model = models.build_model(model_name, 3, weights=weights)
    runs.atomic_write_json(folder / "config.json", config)
    torch.save({"model": model.state_dict()}, folder / "best.pt")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=models.DEFAULT_MODEL)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--method", default="gradcam", choices=tuple(explain.METHODS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (round(args.size * 8 / 7), round(args.size * 8 / 7), 3), dtype=np.uint8)
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[image.shape[0] // 4: 3 * image.shape[0] // 4, image.shape[1] // 4: 3 * image.shape[1] // 4] = 1
    with tempfile.TemporaryDirectory() as tmp:
        explainer = explain.Explainer(fake_run(Path(tmp), args.model, args.size), args.method)
        batch = torch.rand(1, 3, args.size, args.size)
        explainer.explain(image, mask)  # warm-up (first call allocates, oneDNN picks kernels)
        with torch.no_grad():
            explainer.model(batch)
        cam_s, forward_s = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            explainer.explain(image, mask)
            cam_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            with torch.no_grad():
                explainer.model(batch)
            forward_s.append(time.perf_counter() - start)
    cam, fwd = statistics.median(cam_s), statistics.median(forward_s)
    print(f"{args.model} at {args.size} px, {args.threads} threads, {args.method}: "
          f"{cam * 1000:.0f} ms per heatmap (median of {args.repeats}), plain forward {fwd * 1000:.0f} ms, "
          f"ratio {cam / fwd:.1f}x; target < 1000 ms: {'met' if cam < 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
