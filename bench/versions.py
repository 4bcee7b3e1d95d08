"""Before/after: the same short default training with two checkouts' lesion_core, alternately.

    git worktree add ../before <commit>
    python bench/versions.py ../before . [--data ../shared/data/isic2017_dev] [--rounds 2] [--epochs 2]

Each round trains once with each tree (A then B, in fresh processes, into a temporary folder):
EfficientNet-Lite0 from the offline weights at 224 px, batch 32, default_train, the given
epochs, on the data folder, with each tree's own defaults for everything else (loader,
autocast, threads). Alternating spreads the load of a shared machine over both. Prints each
run's wall time and per-epoch training and validation images/s, then the ratio B / A of the
median wall time and of the last epoch's training rate (above 1.0 for the rate, below 1.0 for
the time: B is faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run in a child process with the tree's lesion_core first on the path; prints one JSON line.
CHILD = """
import json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
config = {"data": {"root": sys.argv[2]}, "epochs": int(sys.argv[3]), "image_size": 224, "batch_size": 32,
          "augment": "default_train", "seed": 0}
start = time.perf_counter()
run_dir = training.run_training(config, Path(tempfile.mkdtemp(dir=sys.argv[4])))
wall = time.perf_counter() - start
rows = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
print(json.dumps({"wall_s": wall,
                  "train": [r["images_per_s"] for r in rows if r.get("phase") == "train"],
                  "val": [r["images_per_s"] for r in rows if r.get("phase") == "val"]}))
"""


def run_once(tree: Path, data: Path, epochs: int, scratch: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree.resolve()), str(data.resolve()), str(epochs), scratch],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"training with {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="the 'before' checkout")
    parser.add_argument("b", type=Path, help="the 'after' checkout")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "isic2017_dev")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(1, args.rounds + 1):
            for label, tree in (("A", args.a), ("B", args.b)):
                result = run_once(tree, args.data, args.epochs, scratch)
                results[label].append(result)
                print(f"round {round_} {label} ({tree}): {result['wall_s']:.1f} s; train img/s "
                      f"{', '.join(f'{x:.1f}' for x in result['train'])}; val img/s "
                      f"{', '.join(f'{x:.1f}' for x in result['val'])}", flush=True)
    wall = {k: statistics.median(r["wall_s"] for r in v) for k, v in results.items()}
    rate = {k: statistics.median(r["train"][-1] for r in v) for k, v in results.items()}
    print(f"B / A: wall time {wall['B'] / wall['A']:.2f} (below 1: B is faster); "
          f"last epoch's training rate {rate['B'] / rate['A']:.2f} (above 1: B is faster)")


if __name__ == "__main__":
    main()
