"""Basics every layer uses: the classic class names, and the checks of a number read from
JSON (where True is an int and NaN a float)."""

from __future__ import annotations

import math

CLASS_NAMES = ("nevus", "melanoma", "seborrheic keratosis")


def is_int(value) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
