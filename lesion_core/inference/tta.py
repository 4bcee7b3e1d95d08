"""Test-time augmentation: the mean softmax over the 8 flips and 90-degree rotations.

Dermoscopy has no up or right: a lesion photographed rotated or mirrored is the same lesion,
so averaging the model over the dihedral group removes some of its orientation noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

N_VIEWS = 8


def dihedral_views(images: torch.Tensor) -> list[torch.Tensor]:
    """The 8 rotations (0, 90, 180, 270 degrees) of images (B, C, H, W) and of their mirror images."""
    views = []
    for flipped in (images, images.flip(-1)):
        views += [torch.rot90(flipped, k, dims=(-2, -1)) for k in range(4)]
    return views


def mean_softmax(logits_of: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """Mean over the 8 dihedral views of softmax(logits_of(view)); float32 (B, C).

    The views go through the model as one batch of 8B images (one forward, not eight).
    """
    batch = torch.cat(dihedral_views(images))
    probs = torch.softmax(logits_of(batch).float(), dim=1)
    return probs.reshape(N_VIEWS, images.shape[0], -1).mean(dim=0)
