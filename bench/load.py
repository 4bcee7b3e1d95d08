"""Loading and validating an ISIC 2019-sized dataset (25,000 rows): is it under a minute?

    python bench/load.py [--rows 25000] [--size 256] [--dir DIR] [--keep]

Writes the official ISIC 2019 layout (ISIC_2019_Training_GroundTruth.csv,
ISIC_2019_Training_Metadata.csv, ISIC_2019_Training_Input/) with --rows generated JPEGs of
--size px into DIR (a temporary folder unless given; an existing layout there is reused),
then times, in one run:
  1. the baseline: opening every image's header with PIL (what any check must at least do);
  2. load_dataset(check_images=False): tables, paths, labels, groups, metadata, the split;
  3. load_dataset(check_images=True): the same plus decoding every image (JPEG at 1/8 size),
     as check-data and the Dataset page do.
and prints each time and its ratio to the baseline. Real ISIC 2019 images are ~1024 px:
decoding at 1/8 reads every byte, so expect (3) to grow with file size; --size 1024 shows it
(25,000 such files take ~4 GB of disk).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lesion_core.data import load_dataset

CODES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
# Class shares of the real ISIC 2019 training set (NV about half), UNK never set.
SHARES = (0.18, 0.51, 0.13, 0.035, 0.10, 0.01, 0.01, 0.025, 0.0)


def write_layout(root: Path, rows: int, size: int, seed: int = 0) -> None:
    """The ISIC 2019 layout with `rows` images; lesions of 1-3 images; 1 in 10 without lesion_id."""
    rng = np.random.default_rng(seed)
    folder = root / "ISIC_2019_Training_Input"
    folder.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    labels = rng.choice(len(CODES), size=rows, p=np.array(SHARES) / sum(SHARES))
    truth, meta, lesion = [], [], 0
    for i in range(rows):
        image_id = f"ISIC_{i:07d}"
        # One base image shifted per row: distinct files at the cost of one random draw.
        Image.fromarray(np.roll(base, i % size, axis=1)).save(folder / f"{image_id}.jpg", quality=85)
        truth.append([image_id] + ["1.0" if c == labels[i] else "0.0" for c in range(len(CODES))])
        if rng.random() > 0.6:
            lesion += 1
        meta.append([image_id, str(int(rng.integers(20, 85)) // 5 * 5),
                     ("anterior torso", "head/neck", "lower extremity", "upper extremity")[i % 4],
                     "" if i % 10 == 0 else f"BCN_{lesion:07d}", ("male", "female")[i % 2]])
    for name, header, body in (("ISIC_2019_Training_GroundTruth.csv", ["image", *CODES], truth),
                               ("ISIC_2019_Training_Metadata.csv",
                                ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"], meta)):
        with open(root / name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(body)


def header_baseline(root: Path) -> float:
    """Seconds to open every image's header with PIL."""
    start = time.perf_counter()
    for path in (root / "ISIC_2019_Training_Input").iterdir():
        with Image.open(path) as image:
            _ = image.size  # the header alone: open() decodes no pixels
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25_000)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--dir", help="folder for the layout (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the generated temporary folder")
    args = parser.parse_args()
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-load-"))
    try:
        if not (root / "ISIC_2019_Training_GroundTruth.csv").is_file():
            start = time.perf_counter()
            write_layout(root, args.rows, args.size)
            print(f"wrote {args.rows:,} images of {args.size} px to {root} in {time.perf_counter() - start:.1f} s")
        import sklearn.model_selection  # noqa: F401  (its first import takes seconds; not loading)

        baseline = header_baseline(root)
        print(f"baseline, PIL header of every image: {baseline:6.1f} s")
        for check in (False, True):
            start = time.perf_counter()
            data = load_dataset(root, check_images=check)
            seconds = time.perf_counter() - start
            print(f"load_dataset(check_images={check!s:5}): {seconds:6.1f} s "
                  f"({seconds / baseline:.2f} x baseline, {len(data.records) / seconds:,.0f} rows/s)")
        print(data.report.split_line)
    finally:
        if not args.dir and not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
