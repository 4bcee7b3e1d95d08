"""`lesion-lab ...` (or `python -m lesion_core ...`): one sub-command per task, each registered
by its own module."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from lesion_core.errors import LesionLabError, describe_os_error


# Each module of this package (cli/<group>.py) registers its own sub-commands, in this order in --help; a new
# command group is a new module added here, not code in this file.
COMMAND_MODULES = ("data", "augment", "train", "review", "experiments", "export", "readers")


def build_parser() -> argparse.ArgumentParser:
    # Usage lines name the command as the user typed it: the console script or `python -m`.
    started = os.path.basename(sys.argv[0] or "")
    prog = "python -m lesion_core" if started in ("__main__.py", "-m", "") else started
    parser = argparse.ArgumentParser(prog=prog, description="Lesion Lab engine")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"lesion_core.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # After parsing, so --help and usage errors answer before torch loads.
    from lesion_core.transforms.kernels import use_calling_thread

    use_calling_thread()
    try:
        return int(args.func(args) or 0)
    except LesionLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only folder, a full disk, a file where a folder should be
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
