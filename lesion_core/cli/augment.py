"""`python -m lesion_core augment`: draw an augmentation pipeline N times on one image and
write each result (image and mask PNGs) and the random parameters of every draw."""

from __future__ import annotations

import json
from pathlib import Path

from lesion_core.cli.names import PRESET_NAMES
from lesion_core.errors import DataError, TransformError


def register(subparsers) -> None:
    """Add the augment sub-command to the `python -m lesion_core` parser."""
    parser = subparsers.add_parser(
        "augment",
        help="apply a pipeline N times to one image; write the images, masks and drawn parameters",
        description="Writes OUT/<k>_image.png (RGB, before ToTensor/Normalize), OUT/<k>_mask.png "
                    "(0/255) and OUT/params.json (each draw's angle, flips, crop box, size, tone, and the share "
                    "of the lesion it kept).",
    )
    parser.add_argument("image", type=Path, help="JPEG or PNG image")
    parser.add_argument("--mask", type=Path, help="lesion mask (PNG, 0/255 or 0/1); needed by "
                        "CropByMask, ChangeSkin, RandomChangeSkin and crop_to_lesion")
    parser.add_argument("--pipeline", required=True,
                        help=f"JSON file with a list of steps, or a preset: {', '.join(PRESET_NAMES)}")
    parser.add_argument("--n", type=int, default=8, help="number of draws (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the draws (default 0)")
    # Full-size ISIC originals (up to 6688x4439) would be rotated at full resolution: seconds a
    # draw. 1024 matches the preview page; 0 keeps the original size.
    parser.add_argument("--max-side", type=int, default=1024,
                        help="shrink the image first so its longer side is at most this "
                             "(default 1024; 0 = original size)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write into (created)")
    parser.set_defaults(func=augment)


def _read_pipeline(arg: str) -> list[dict]:
    """A pipeline file, or a preset name when no such file exists."""
    from lesion_core.transforms import PRESETS, load_spec

    if arg in PRESETS and not Path(arg).exists():
        return PRESETS[arg]
    return load_spec(arg)


def _check_mask_given(spec: list[dict], has_mask: bool) -> None:
    """Say up front, naming the step, when the pipeline needs a mask that was not given."""
    if has_mask:
        return
    from lesion_core.transforms import build_pipeline

    pipeline = build_pipeline(spec)
    for index, (step, transform) in enumerate(zip(pipeline.spec, pipeline.steps), start=1):
        if transform.needs_mask:
            raise TransformError(f"step {index} ({step['name']}) needs a lesion mask: pass --mask")


def augment(args) -> int:
    if args.n < 1:
        raise TransformError(f"--n must be at least 1, got {args.n}")
    from lesion_core.data import read_image, read_mask
    from lesion_core.transforms import image_steps, preview_draws

    spec = image_steps(_read_pipeline(args.pipeline))
    _check_mask_given(spec, args.mask is not None)
    image = read_image(args.image, args.max_side or None)
    mask = read_mask(args.mask, image.shape) if args.mask else None
    sample = {"image": image, "mask": mask, "label": None, "id": args.image.stem}
    draws = preview_draws(sample, spec, args.n, args.seed)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        records = [_write_draw(args.out, k, out, params, spec) for k, (out, params) in enumerate(draws)]
        summary = {
            "image": str(args.image), "mask": None if args.mask is None else str(args.mask),
            "seed": args.seed, "n": args.n, "pipeline": spec, "draws": records,
        }
        (args.out / "params.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot write to {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {args.n} draws of {len(spec)} steps to {args.out} (params in params.json)")
    return 0


def _write_draw(out_dir: Path, k: int, sample: dict, params: list[dict], spec: list[dict]) -> dict:
    """Save draw k's image and mask PNGs; return its params.json record."""
    from PIL import Image

    Image.fromarray(sample["image"]).save(out_dir / f"{k}_image.png")
    record = {"draw": k, "image": f"{k}_image.png", "mask": None, "size": list(sample["image"].shape[:2]),
              "lesion_kept": sample.get("lesion_kept")}  # share of the lesion the draw still shows
    if sample["mask"] is not None:
        Image.fromarray(sample["mask"] * 255).save(out_dir / f"{k}_mask.png")
        record["mask"] = f"{k}_mask.png"
    record["steps"] = [{"name": step["name"], **drawn} for step, drawn in zip(spec, params)]
    return record
