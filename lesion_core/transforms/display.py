"""Pictures of samples: the mask's outline or translucent overlay, and batch grids."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.utils import make_grid

from lesion_core.errors import TransformError
from lesion_core.i18n import N_


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """bool HxW: lesion pixels with a 4-neighbour outside the lesion (or on the image edge)."""
    inside = np.asarray(mask) != 0
    padded = np.pad(inside, 1, constant_values=False)
    eroded = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return inside & ~eroded


def overlay(image: np.ndarray, mask: np.ndarray | None, mode: str = "outline",
            colour=(0, 255, 0), alpha: float = 0.3) -> np.ndarray:
    """uint8 HxWx3: the image with the mask drawn as an outline, or as a translucent fill
    (alpha of the colour: the lesion keeps 1 - alpha of its contrast beneath) edged by the outline."""
    out = np.array(image, dtype=np.uint8)
    if mask is None:
        return out
    if mode not in ("outline", "overlay"):
        raise ValueError(f'mode must be "outline" or "overlay", got {mode!r}')
    if mode == "overlay":
        inside = np.asarray(mask) != 0
        blend = (1 - alpha) * out[inside] + alpha * np.asarray(colour, dtype=np.float32)
        out[inside] = np.round(blend).astype(np.uint8)
    out[mask_outline(mask)] = colour
    return out


def _unnormalize(t: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo Normalize on (..., 3, H, W); mean/std None means the tensor is already in [0, 1]."""
    if mean is None:
        return t
    shape = (3, 1, 1)
    return t * torch.tensor(std, dtype=t.dtype).view(shape) + torch.tensor(mean, dtype=t.dtype).view(shape)


def denormalize(tensor: torch.Tensor, mean=None, std=None) -> np.ndarray:
    """float (3, H, W) or (N, 3, H, W) tensor -> uint8 (H, W, 3) or (N, H, W, 3).
    With mean/std None the tensor is taken as already in [0, 1]."""
    t = _unnormalize(tensor.detach().float().cpu(), mean, std)
    return (t.clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1).numpy()


def batch_grid(images, mean=None, std=None, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """uint8 HxWx3 grid of a batch (the notebook's show_batch, via make_grid).

    images: a (N, 3, H, W) tensor, or a list of (3, H, W) tensors, of samples whose "image" is
    such a tensor, or of uint8 HxWx3 arrays; all one size. Tensors are un-normalised with
    mean/std (None: already in [0, 1])."""
    if isinstance(images, torch.Tensor):
        batch = _unnormalize(images.detach().float().cpu(), mean, std)
    else:
        tensors = []
        for item in images:
            img = item["image"] if isinstance(item, dict) else item
            if isinstance(img, np.ndarray):
                tensors.append(torch.from_numpy(img).permute(2, 0, 1).float() / 255)
            else:
                tensors.append(_unnormalize(img.detach().float().cpu(), mean, std))
        if len({tuple(t.shape) for t in tensors}) > 1:
            raise TransformError(N_("batch_grid needs images of one size; end the pipeline with a fixed-size crop"))
        batch = torch.stack(tensors)
    return denormalize(make_grid(batch.clamp(0, 1), nrow=nrow, padding=padding))
