"""`python -m lesion_core ...`: one sub-command per task, each registered by its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

from lesion_core.errors import LesionLabError, describe_os_error


# Each cli_<group> module registers its own sub-commands, in this order in --help; a new
# command group is a new module added here, not code in this file.
COMMAND_MODULES = ("cli_data", "cli_augment", "cli_train", "cli_review", "cli_experiments", "cli_export",
                   "cli_readers")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lesion_core", description="Lesion Lab engine")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"lesion_core.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
