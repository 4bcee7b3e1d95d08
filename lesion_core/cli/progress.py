"""How long commands show they are working: everything on stderr, so stdout stays the command's
output (a report, JSON, CSV). A phase is one line, always (a log keeps it); a loop over images or
batches is a live tqdm bar on a terminal, and its phase line elsewhere (no carriage-return
noise in a log)."""

from __future__ import annotations

import sys


def step(text: str) -> None:
    """A phase of a long command, on stderr at once."""
    print(text, file=sys.stderr, flush=True)


def live(**options):
    """A tqdm bar on stderr, shown only when stderr is a terminal (tqdm's disable=None)."""
    from tqdm import tqdm

    return tqdm(file=sys.stderr, leave=False, disable=None, **options)


def bar(iterable, desc: str, unit: str = "batch", total: int | None = None):
    """iterable, with a live bar on a terminal; elsewhere "desc: N units..." once, at the start."""
    total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    if not sys.stderr.isatty():
        step(f"{desc}: {total} {unit}{'es' if unit.endswith('ch') else 's'}..." if total is not None else f"{desc}...")
    return live(iterable=iterable, desc=desc, unit=unit, total=total)
