"""`python -m lesion_core ...`: one sub-command per task, each registered by its own module."""

from __future__ import annotations

import argparse
import sys

from lesion_core.errors import LesionLabError


def build_parser() -> argparse.ArgumentParser:
    from lesion_core import cli_augment, cli_data, cli_train

    parser = argparse.ArgumentParser(prog="python -m lesion_core", description="Lesion Lab engine")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (cli_data, cli_augment, cli_train):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LesionLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
