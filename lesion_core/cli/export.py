"""Command line: export a run's best model to ONNX or TorchScript (thin wrapper over lesion_core.export)."""

from __future__ import annotations

import json
from pathlib import Path

from lesion_core.cli.progress import step


def register(subparsers) -> None:
    """Add the export sub-command."""
    from lesion_core.cli.names import EXPORT_FORMATS as FORMATS, EXPORT_TOLERANCE as TOLERANCE

    p = subparsers.add_parser(
        "export", help="the run's best model with its preprocessing as ONNX or TorchScript, checked on real images",
        description="Writes FILE (input: uint8 images (N, H, W, 3) RGB, and for a run trained on lesion crops "
                    "their uint8 masks (N, H, W), cropped to inside the graph; output: class probabilities) and "
                    f"FILE.json (inputs, class names, input size, temperature, threshold). Fails unless the file's "
                    f"probabilities match PyTorch's within {TOLERANCE:g} on real images.")
    p.add_argument("run", help="run folder (runs/RUN-ID)")
    p.add_argument("--format", choices=FORMATS, default="onnx")
    p.add_argument("--out", help="file to write (default: the run folder's model.onnx or model.pt)")
    p.add_argument("--images", nargs="+", default=None,
                   help="image files to check the export on (default: up to 8 of the run's own images)")
    p.add_argument("--masks", nargs="+", default=None,
                   help="the lesion masks of --images, in their order (a run trained on lesion crops needs them)")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from lesion_core import data, export

    images = [data.read_image(Path(p)) for p in args.images] if args.images else None
    masks = [data.read_mask(Path(p), image.shape[:2]) for p, image in zip(args.masks, images)] \
        if args.masks and images and len(args.masks) == len(images) else None
    out = args.out or Path(args.run) / f"model{export.SUFFIXES[args.format]}"  # beside its run, not in the checkout
    step(f"exporting {args.run} to {args.format}, then checking it against PyTorch and predict on "
         + (f"{len(images)} images..." if images else "up to 8 of its own images..."))
    sidecar = export.export_run(args.run, args.format, out, images=images, masks=masks)
    check = sidecar["verification"]
    print(f"wrote {out} and {export.sidecar_path(out)}")
    print(f"checked with {check['runtime']} on {check['images']} real images: "
          f"max |exported - PyTorch| probability {check['max_abs_diff']:.2e} (allowed {check['tolerance']:g}), "
          f"max |exported - predict| {check['max_abs_diff_vs_predict']:.2e} (allowed {check['tolerance_vs_predict']:g})")
    if sidecar.get("metadata_prior"):
        print(f"metadata prior {sidecar['metadata_prior']}")
    if sidecar.get("lesion_crop"):
        print(f"inputs: image (N, H, W, 3) and mask (N, H, W), uint8; {sidecar['lesion_crop']}")
    print(json.dumps({k: sidecar[k] for k in ("class_names", "input_size", "temperature", "tta", "threshold")}))
    return 0
