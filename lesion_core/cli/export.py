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
        description="Writes FILE (input: uint8 images (N, H, W, 3) RGB; output: class probabilities) and "
                    f"FILE.json (class names, input size, temperature, threshold). Fails unless the file's "
                    f"probabilities match PyTorch's within {TOLERANCE:g} on real images.")
    p.add_argument("run", help="run folder (runs/RUN-ID)")
    p.add_argument("--format", choices=FORMATS, default="onnx")
    p.add_argument("--out", help="file to write (default: the run folder's model.onnx or model.pt)")
    p.add_argument("--images", nargs="+", default=None,
                   help="image files to check the export on (default: up to 8 of the run's own images)")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from lesion_core import data, export

    images = [data.read_image(Path(p)) for p in args.images] if args.images else None
    out = args.out or Path(args.run) / f"model{export.SUFFIXES[args.format]}"  # beside its run, not in the checkout
    step(f"exporting {args.run} to {args.format}, then checking it against PyTorch on "
         + (f"{len(images)} images..." if images else "up to 8 of its own images..."))
    sidecar = export.export_run(args.run, args.format, out, images=images)
    check = sidecar["verification"]
    print(f"wrote {out} and {export.sidecar_path(out)}")
    print(f"checked with {check['runtime']} on {check['images']} real images: "
          f"max |exported - PyTorch| probability {check['max_abs_diff']:.2e} (allowed {check['tolerance']:g}), "
          f"max |exported - predict| {check['max_abs_diff_vs_predict']:.2e} (allowed {check['tolerance_vs_predict']:g})")
    if sidecar.get("metadata_prior"):
        print(f"metadata prior {sidecar['metadata_prior']}")
    print(json.dumps({k: sidecar[k] for k in ("class_names", "input_size", "temperature", "tta", "threshold")}))
    return 0
