"""How long the command line takes to answer, against the import of torch alone, in one run.

    python bench/cli_start.py [--rounds 5]

Each round starts, in fresh processes and in turn: `python -c "import torch"` (the floor of any
command that uses a model), `python -m lesion_core --help`, `python -m lesion_core train --help`,
an argument error (`train --epochs x`) and `python -m lesion_core models` (which builds every
model on the meta device). Taking them in turn spreads a busy machine's load over all of them.
Prints each one's median and range of wall time in seconds, and the ratio to import torch.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "import torch": ["-c", "import torch"],
    "--help": ["-m", "lesion_core", "--help"],
    "train --help": ["-m", "lesion_core", "train", "--help"],
    "argument error": ["-m", "lesion_core", "train", "--epochs", "x"],
    "models": ["-m", "lesion_core", "models"],
}


def wall_time(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(rounds):
        for name, args in COMMANDS.items():
            times[name].append(wall_time(args))
    torch_s = statistics.median(times["import torch"])
    print(f"{'command':16} {'median s':>9} {'range s':>13} {'/ import torch':>15}   ({rounds} rounds)")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:16} {median:9.2f} {min(values):6.2f}-{max(values):<6.2f} {median / torch_s:15.2f}")


if __name__ == "__main__":
    main()
