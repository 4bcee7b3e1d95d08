"""A pipeline: validated steps applied to a sample ({"image", "mask", ...} as numpy) in the
state the kernels share, and the draws the Augmentations page previews."""

from __future__ import annotations

import json
import warnings

import numpy as np
import torch

from lesion_core.errors import TransformError
from lesion_core.i18n import N_
from lesion_core.transforms.kernels import State, apply_orient, binary, state_size
from lesion_core.transforms.lazy import materialize
from lesion_core.transforms.presets import image_steps
from lesion_core.transforms.schema import REGISTRY, validate_spec
from lesion_core.transforms.steps import (
    ChangeSkin,
    ColorJitter,
    Normalize,
    RandomChangeSkin,
    RandomFlip,
    RandomRotation,
    Rescale,
    ToTensor,
    Transform,
)


def _to_state(sample: dict) -> State:
    """A sample's numpy image/mask as uint8 CHW tensors sharing their memory, format checked."""
    sid, image, mask = sample.get("id", "?"), sample.get("image"), sample.get("mask")
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        raise TransformError(N_("sample {id}: image must be a uint8 HxWx3 RGB array, got {got}").format(id=sid, got=got))
    state = dict(sample)
    # Shared, never copied unless strided (torch refuses negative strides): no step writes in
    # place, so a read-only array (np.asarray of a PIL image) is safe to share, whatever
    # torch's warning says. A full-size copy costs more than the whole default_train chain.
    state["image"] = _shared_tensor(image).permute(2, 0, 1)
    if mask is not None:
        if not (isinstance(mask, np.ndarray) and mask.shape == image.shape[:2]):
            raise TransformError(N_("sample {id}: mask must be an HxW array matching the image {shape}, got {got}")
                                 .format(id=sid, shape=image.shape[:2], got=getattr(mask, "shape", type(mask).__name__)))
        # Any non-zero value is lesion (0/255 masks work too). Steps only move values or test
        # them against zero, so a uint8 or bool mask is shared as is and made 0/1 at the end,
        # on the small output instead of the full-size input.
        if mask.dtype == np.bool_:
            mask = mask.view(np.uint8)
        elif mask.dtype != np.uint8:
            mask = (mask != 0).astype(np.uint8)
        state["mask"] = _shared_tensor(mask).unsqueeze(0)
    return state


def _shared_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing the array's memory (a copy only when it is not C-contiguous)."""
    global _READ_ONLY_WARNED
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    if array.flags.writeable or _READ_ONLY_WARNED:
        return torch.from_numpy(array)
    # torch warns about read-only arrays once per process; silenced that once, later calls skip
    # catch_warnings, which cost more than a 224-px default_train chain's flips.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        tensor = torch.from_numpy(array)
    _READ_ONLY_WARNED = True
    return tensor


_READ_ONLY_WARNED = False


def _from_state(state: State) -> dict:
    """Back to the sample format: numpy uint8 HxWx3 / HxW, or plain tensors after ToTensor."""
    sample = dict(state)
    image, mask = state["image"], state["mask"]
    if image.dtype == torch.uint8:
        # copy(), so the output never aliases the caller's input arrays.
        sample["image"] = image.permute(1, 2, 0).numpy().copy()
        sample["mask"] = None if mask is None else binary(mask)[0].numpy()
    return sample


class Pipeline:
    """A validated spec turned into transforms. pipeline(sample) -> sample."""

    # False applies every deferred warp at once (each step on a plain image): the reference
    # the deferred path is tested against.
    defer = True

    def __init__(self, spec):
        self.spec = validate_spec(spec)
        self.steps = [REGISTRY[s["name"]].cls(**s["params"]) for s in self.spec]
        for index, step in enumerate(self.steps):
            if isinstance(step, RandomRotation):
                step.shrink_to = _later_shorter_side(self.steps[index + 1:])
            if isinstance(step, Normalize) and index and isinstance(self.steps[index - 1], ToTensor):
                step.fuse_into(self.steps[index - 1])

    def __call__(self, sample: dict) -> dict:
        return self.apply_with_params(sample)[0]

    def apply_with_params(self, sample: dict, lesion_kept: bool = False) -> tuple[dict, list[dict]]:
        """(transformed sample, one dict per step of what it drew: angle, flipped, box, size, tone...).

        lesion_kept: the sample also holds "lesion_kept", the share of the input's lesion that
        the output still shows (crops cut it; resizing does not count), None without a lesion."""
        state, drawn, scale = _to_state(sample), [], 1.0
        for index, (step_spec, step) in enumerate(zip(self.spec, self.steps), start=1):
            if step.needs_mask and state["mask"] is None:
                raise TransformError(N_("step {index} ({name}) needs a lesion mask; sample {id} has none").format(
                    index=index, name=step_spec["name"], id=state.get("id", "?")))
            if not step.takes_warp:
                state = materialize(state)
            elif not step.takes_orient:
                state = apply_orient(state)
            before = state_size(state)
            state, params = step.run(state)
            if lesion_kept:
                scale *= step.area_scale(before, state_size(state), params)
            if not self.defer:
                state = materialize(state)
            drawn.append(params)
        out = _from_state(materialize(state))
        if lesion_kept:
            out["lesion_kept"] = _lesion_kept(sample.get("mask"), out["mask"], scale)
        return out, drawn

    def __repr__(self) -> str:
        return f"Pipeline({json.dumps(self.spec)})"


def _lesion_kept(before: np.ndarray | None, after: np.ndarray | None, scale: float) -> float | None:
    """The share of the lesion pixels before that the mask after still holds, at its scale
    (capped at 1: nearest-neighbour resizing rounds a lesion's area by a few percent)."""
    if before is None or after is None:
        return None
    area = float(np.count_nonzero(before)) * scale
    return None if area == 0 else min(1.0, float(np.count_nonzero(after)) / area)


def _later_shorter_side(steps: list[Transform]) -> int | None:
    """The side of the Rescale(int) that ends a run of steps which work at any size (flips,
    colours), or None: what a step before them may shrink its image to without losing detail."""
    for step in steps:
        if isinstance(step, Rescale):
            return step.size[0] if len(step.size) == 1 else None
        if not isinstance(step, _SIZE_FREE):
            return None
    return None


_SIZE_FREE = (RandomFlip, ChangeSkin, RandomChangeSkin, ColorJitter)


def build_pipeline(spec) -> Pipeline:
    """Validate a spec (list of {"name", "params"}) and build it; TransformError names the bad step."""
    return Pipeline(spec)


def preview_draws(sample: dict, spec, n: int = 8, seed: int = 0) -> list[tuple[dict, list[dict]]]:
    """n draws of the spec's image steps on one sample: [(numpy sample, per-step params)];
    each sample holds "lesion_kept" (see Pipeline.apply_with_params).

    Seeded inside a forked RNG, so the same seed gives the same draws and the caller's
    global torch RNG is left untouched."""
    pipeline = build_pipeline(image_steps(spec))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [pipeline.apply_with_params(sample, lesion_kept=True) for _ in range(n)]
