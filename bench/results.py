"""Where the time goes when many browser sessions open Results: reading the run folders.

    python bench/results.py [--runs 60] [--sessions 20] [--repeat 3]

Every page run lists every run folder (sidebar, runs table): status, config, metrics, patient
model and history parsed, every damage check made. This writes --runs run folders of the size a
real run leaves (30 epochs of history, metrics with 600-point ROC curves per class) into a
temporary folder, then times, in one run:
  1. the baseline: runs.list_runs with nothing cached, every file read and parsed (as before
     the per-change cache);
  2. runs.list_runs again with the files unchanged: only the folder listings and the live
     checks (is the trainer alive?) are made;
  3. --sessions threads each listing the runs at once (20 browser sessions opening Results),
     cold and warm;
and prints each time and its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lesion_core import runs  # noqa: E402

NAMES = ["melanoma", "nevus", "seborrheic keratosis"]


def write_runs(folder: Path, n: int) -> None:
    roc = {"fpr": [i / 600 for i in range(601)], "tpr": [min(1.0, 1.3 * i / 600) for i in range(601)]}
    metrics = {"class_names": NAMES, "accuracy": 0.8, "mean_auc": 0.85, "n": 600,
               "confusion": [[180, 10, 10], [10, 180, 10], [10, 10, 180]],
               "confusion_pct": [[0.9, 0.05, 0.05]] * 3, "precision": [0.9] * 3, "recall": [0.9] * 3,
               "auc": [0.85] * 3, "roc": [roc] * 3}
    config = {"data": {"root": "/data/isic", "class_names": NAMES}, "model": {"name": "efficientnet_lite0",
              "weights": "offline"}, "optim": {"optimizer": "adamw", "lr": 3e-4}, "scheduler": {"name": "cosine"},
              "epochs": 30, "batch_size": 32, "image_size": 224, "seed": 0, "augment": [], "eval_augment": []}
    for i in range(n):
        run = folder / f"20261207-{i:06d}-efficientnet_lite0-ab12"
        run.mkdir(parents=True)
        runs.atomic_write_json(run / "config.json", config)
        runs.atomic_write_json(run / "status.json", {"state": "finished", "message": "done", "pid": 1,
                                                     "started": 1.0, "updated": 2.0, "epochs": 30, "epoch": 30})
        history = [{"epoch": e, "phase": p, "loss": 0.5, "accuracy": 0.8, "mean_auc": 0.8 + e / 1000,
                    "lr": 1e-4, "n_images": 2000, "time_s": 30.0} for e in range(1, 31) for p in ("train", "val")]
        (run / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
        for split in ("val", "test"):
            runs.atomic_write_json(run / f"metrics_{split}.json", metrics)


def timed(call, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "runs"
        write_runs(folder, args.runs)

        def cold():
            runs.forget_read_cache()
            return runs.list_runs(folder)

        def sessions(clear: bool):
            if clear:
                runs.forget_read_cache()
            with ThreadPoolExecutor(args.sessions) as pool:
                list(pool.map(lambda _: runs.list_runs(folder), range(args.sessions)))

        assert len(cold()) == args.runs
        baseline = timed(cold, args.repeat)
        runs.list_runs(folder)
        warm = timed(lambda: runs.list_runs(folder), args.repeat)
        many_cold = timed(lambda: sessions(True), args.repeat)
        sessions(False)
        many_warm = timed(lambda: sessions(False), args.repeat)
        print(f"{args.runs} run folders, best of {args.repeat}")
        print(f"  list_runs, every file parsed (baseline): {baseline * 1000:8.1f} ms   1.00x")
        print(f"  list_runs, files unchanged (cached):     {warm * 1000:8.1f} ms   {baseline / warm:.1f}x faster")
        print(f"  {args.sessions} sessions at once, cold:            {many_cold * 1000:8.1f} ms   "
              f"{many_cold / baseline:.1f}x the baseline")
        print(f"  {args.sessions} sessions at once, cached:          {many_warm * 1000:8.1f} ms   "
              f"{many_warm / baseline:.1f}x the baseline ({many_cold / many_warm:.1f}x faster than cold)")


if __name__ == "__main__":
    main()
