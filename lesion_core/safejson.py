"""JSON from files the product did not necessarily write (run folders, sweep specs, pipelines,
links): every way it can fail is one ValueError with a short reason.

json.loads raises ValueError for bad JSON and bad UTF-8, but RecursionError for `[` nested a
thousand deep, and a file of gigabytes would be read whole before anything is said. Here the
size is checked before reading, the nesting after parsing (code that walks the value, repr()
included, recurses too), and every failure is a Damaged (a ValueError) naming what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

MAX_BYTES = 16 * 2**20  # no file the product writes comes near: metrics of 100,000 images are ~5 MB
MAX_DEPTH = 64  # the deepest file the product writes nests 5 levels


class Damaged(ValueError):
    """Not JSON the product can use: why, in a few words."""


def _depth(value) -> int:
    """How deeply lists and objects nest in value (iterative: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def loads(text: str | bytes):
    """The JSON value in text (bytes are decoded as UTF-8); Damaged when it is not JSON, not
    UTF-8, longer than MAX_BYTES or nested deeper than MAX_DEPTH."""
    if len(text) > MAX_BYTES:
        raise Damaged(f"too large ({len(text) / 2**20:.0f} MB; at most {MAX_BYTES // 2**20} MB)")
    try:
        value = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except RecursionError:
        raise Damaged(f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    except ValueError as exc:  # bad JSON, bad UTF-8
        raise Damaged((str(exc).splitlines() or [type(exc).__name__])[0][:80]) from None
    if _depth(value) > MAX_DEPTH:
        raise Damaged(f"nested too deeply (more than {MAX_DEPTH} levels)")
    return value


def read(path):
    """The JSON value in the file at path; OSError when it cannot be read, Damaged as loads()
    (a file over MAX_BYTES is refused before it is read)."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise Damaged(f"too large ({size / 2**20:.0f} MB; at most {MAX_BYTES // 2**20} MB)")
    with open(path, "rb") as handle:
        return loads(handle.read(MAX_BYTES + 1))
