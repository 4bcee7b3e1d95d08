"""Joint image+mask augmentations: transforms, skin tones, registry, spec <-> pipeline.

A pipeline is data: a JSON list of steps ``{"name": ..., "params": {...}}``. ``REGISTRY``
describes every step and its parameters (type, default, range, help) so the page can draw
widgets, the CLI can read a pipeline from a file and a run can store the exact pipeline.

Each step draws its random parameters once (from torch's global RNG, so ``torch.manual_seed``
and DataLoader worker seeding reproduce them) and applies them to the image and its mask
alike. Inside a pipeline the image is a uint8 3xHxW tensor and the mask a uint8 1xHxW tensor
(non-zero = lesion; {0, 1} again on the way out); each step calls torchvision v2's kernels by
kind, ``*_image`` for the image and ``*_mask`` for the mask
(nearest interpolation, so masks stay binary). Calling the kernels directly, rather than
dispatching on ``tv_tensors`` wrappers, saves about a third of the time of a 224-px chain.
A rotation defers its resampling: the flips, skin tone, rescale and crop after it compose with
it, and the image is sampled once, at the final size, by OpenCV's warpAffine (see "deferred
warps"); quarter turns and
flips are applied in one copy (see "deferred turns"). Samples enter and leave as numpy (image
uint8 (H, W, 3), mask uint8 (H, W) in {0, 1} or None) unless the pipeline ends in
ToTensor(+Normalize).

The package, one module a job: kernels (the joint image+mask operations on a pipeline
state), lazy (the deferred warp), steps (draw parameters, then apply), schema (the registry and
spec checks), presets (named pipelines and the derived evaluation pipeline), pipeline, display.
"""

from __future__ import annotations

from lesion_core.transforms.display import batch_grid, denormalize, mask_outline, overlay
from lesion_core.transforms.kernels import IMAGENET_MEAN, IMAGENET_STD, SKIN_TONES, TENSOR_STEPS, use_calling_thread
from lesion_core.transforms.pipeline import Pipeline, build_pipeline, preview_draws
from lesion_core.transforms.presets import (
    EVAL_HELP,
    PRESET_NAMES,
    PRESETS,
    crops_to_lesion,
    run_crops_to_lesion,
    describe_steps,
    eval_mismatch,
    eval_spec,
    finalize_spec,
    image_steps,
    needs_mask,
    preset,
)
from lesion_core.transforms.schema import REGISTRY, ParamInfo, TransformInfo, dump_spec, load_spec, validate_spec
from lesion_core.transforms.steps import (
    CenterCrop,
    ChangeSkin,
    ColorJitter,
    CropByMask,
    Normalize,
    RandomCenterCrop,
    RandomChangeSkin,
    RandomCrop,
    RandomFlip,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotate90,
    RandomRotation,
    RandomVerticalFlip,
    Rescale,
    ShadesOfGrey,
    ToTensor,
    Transform,
)

__all__ = [
    "CenterCrop",
    "ChangeSkin",
    "ColorJitter",
    "CropByMask",
    "EVAL_HELP",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Normalize",
    "PRESETS",
    "PRESET_NAMES",
    "ParamInfo",
    "Pipeline",
    "REGISTRY",
    "RandomCenterCrop",
    "RandomChangeSkin",
    "RandomCrop",
    "RandomFlip",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomRotate90",
    "RandomRotation",
    "RandomVerticalFlip",
    "Rescale",
    "SKIN_TONES",
    "ShadesOfGrey",
    "TENSOR_STEPS",
    "ToTensor",
    "Transform",
    "TransformInfo",
    "batch_grid",
    "build_pipeline",
    "crops_to_lesion",
    "run_crops_to_lesion",
    "denormalize",
    "describe_steps",
    "dump_spec",
    "eval_mismatch",
    "eval_spec",
    "finalize_spec",
    "image_steps",
    "load_spec",
    "mask_outline",
    "needs_mask",
    "overlay",
    "use_calling_thread",
    "preset",
    "preview_draws",
    "validate_spec",
]
