"""Basics every layer uses: the classic class names."""

from __future__ import annotations



CLASS_NAMES = ("nevus", "melanoma", "seborrheic keratosis")
