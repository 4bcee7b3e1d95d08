"""Data sub-commands: demo-data, check-data, import-zip, clear-cache."""

from __future__ import annotations

import time

from lesion_core.cli.progress import step

# The engine loads inside each command, so that --help answers at once.


def register(subparsers) -> None:
    """Add the data sub-commands to the `python -m lesion_core` parser."""
    demo = subparsers.add_parser("demo-data", help="write the synthetic demo dataset into OUT")
    demo.add_argument("out", help="new or empty folder")
    demo.add_argument("--n-per-class", type=int, default=100, help="images per class (default 100)")
    demo.add_argument("--size", type=int, default=320, help="image side in pixels (default 320)")
    demo.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    demo.set_defaults(func=demo_data)

    check = subparsers.add_parser(
        "check-data", help="validate a dataset folder; exit 0 when usable, 1 when not")
    check.add_argument("dir", help="dataset folder (notebook layout, official ISIC 2017/2018/2019/2020 or HAM10000 "
                                   "download, or one folder per class)")
    check.add_argument("--max-size", type=int, default=0, help="check a seeded subset of N rows")
    check.add_argument("--split-seed", type=int, default=42, help="seed of the stratified split")
    check.add_argument("--labels", help="which labels where a layout offers several: ISIC 2020 'diagnosis'")
    check.add_argument("--json", action="store_true",
                       help="print the report as JSON, with the skin-tone (ITA) distribution per split and class")
    check.set_defaults(func=check_data)

    unzip = subparsers.add_parser(
        "import-zip", help="safely extract a dataset ZIP into DEST and check it")
    unzip.add_argument("file", help="the ZIP file")
    unzip.add_argument("dest", help="new or empty folder to extract into")
    unzip.set_defaults(func=import_zip_command)

    clear = subparsers.add_parser(
        "clear-cache", help="delete the decoded-image cache (re-made on demand by training)")
    clear.set_defaults(func=clear_cache)


def demo_data(args) -> int:
    from lesion_core.data.demo import generate_demo

    start = time.perf_counter()
    root = generate_demo(args.out, n_per_class=args.n_per_class, size=args.size, seed=args.seed)
    print(f"wrote {3 * args.n_per_class} demo images ({args.size}px) to {root} "
          f"in {time.perf_counter() - start:.1f}s")
    return 0


def _print_check(root, **options) -> int:
    """Load and validate root, print the report; 0 when usable, 1 when not."""
    from lesion_core.data import load_dataset

    step(f"checking {root} (every image and mask is read once)...")
    data = load_dataset(root, **options)
    print(f"dataset: {data.root} (layout {data.layout})")
    print(f"classes ({len(data.class_names)}): {', '.join(data.class_names)}")
    print(f"split groups: {data.group_column}" if data.group_column
          else "split groups: none (no lesion or patient id; split by image)")
    known = {key: sum(bool(r.meta.get(key)) for r in data.records) for key in ("age", "sex", "site")}
    print("patient metadata: " + (", ".join(f"{key} for {n}" for key, n in known.items() if n) + f" of {len(data.records)} images"
                                  if any(known.values()) else "none (predictions use the image alone)"))
    print(data.report.format())
    return 0 if data.report.usable else 1


def check_data(args) -> int:
    if args.json:
        return _print_check_json(args.dir, max_size=args.max_size, split_seed=args.split_seed, labels=args.labels)
    return _print_check(args.dir, max_size=args.max_size, split_seed=args.split_seed, labels=args.labels)


def _print_check_json(root, **options) -> int:
    """check-data --json: the report and the skin tones (lesion_core.data.skin) as one JSON object."""
    import json

    from lesion_core.data import load_dataset, skin

    step(f"checking {root} (every image and mask is read once)...")
    data = load_dataset(root, **options, require_usable=False)  # an unusable folder is reported, not refused
    step(f"estimating the skin tone of {len(data.records)} images...")
    report = data.report
    tones = skin.dataset_tones(data.records)
    print(json.dumps({
        "root": str(data.root), "layout": data.layout, "usable": report.usable, "n_rows": report.n_rows,
        "n_usable": report.n_usable, "class_names": list(data.class_names), "counts": report.counts,
        "problems": [vars(p) for p in report.problems], "notes": [vars(p) for p in report.notes],
        "skin_tone": {"method": "ITA of the median L*, b* outside the lesion mask",
                      "groups": [*skin.GROUP_NAMES, skin.NO_MASK],
                      "distribution": skin.distribution(tones, data.class_names)},
    }, indent=2))
    return 0 if report.usable else 1


def import_zip_command(args) -> int:
    from lesion_core.data import import_zip

    step(f"extracting {args.file} into {args.dest} (every entry checked first)...")
    start = time.perf_counter()
    root = import_zip(args.file, args.dest)
    step(f"extracted in {time.perf_counter() - start:.1f} s")
    print(f"imported {args.file} into {args.dest}; dataset root: {root}")
    return _print_check(root)


def clear_cache(args) -> int:
    from lesion_core.data import clear_decoded_cache, decoded_cache_dir

    files, size = clear_decoded_cache()
    print(f"removed {files} decoded samples ({size / 1e6:.1f} MB) from {decoded_cache_dir()}")
    return 0
