"""Named pipelines, and the evaluation pipeline derived from a training one."""

from __future__ import annotations

import copy

from lesion_core.errors import LesionLabError, TransformError
from lesion_core.i18n import N_
from lesion_core.transforms.kernels import IMAGENET_MEAN, IMAGENET_STD, TENSOR_STEPS
from lesion_core.transforms.schema import REGISTRY, validate_spec
from lesion_core.transforms.steps import pair


def _step(name: str, **params) -> dict:
    return {"name": name, "params": params}


def preset(name: str, size: int = 224) -> list[dict]:
    """A named pipeline spec whose crops end at (size, size), so the trainer never has to
    resize a second time; the Rescale before a crop keeps the usual 256/224 margin."""
    margin = round(size * 256 / 224)
    norm = _step("Normalize", mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    if name == "notebook_train":
        # The notebook's training chain, bugs fixed: crop to the lesion, rotate and re-crop to
        # it, flips, a random skin tone, then a crop of the rescaled lesion.
        return [
            _step("CropByMask", border=10),
            _step("RandomRotation", degrees=180, expand=True, crop_to_lesion=True),
            _step("RandomHorizontalFlip", p=0.5),
            _step("RandomVerticalFlip", p=0.5),
            _step("RandomChangeSkin"),
            _step("Rescale", size=margin),
            _step("RandomCrop", size=size),
            _step("ToTensor"),
            norm,
        ]
    if name == "default_train":
        # The recipe that reached mean AUC 0.887 (MEASUREMENTS.md): crop/resize first, so the
        # rotations and flips then touch size x size pixels only; no mask needed.
        return [
            _step("RandomResizedCrop", size=size, scale_min=0.35, scale_max=1.0, ratio_min=0.75, ratio_max=4 / 3),
            _step("RandomRotate90"),
            _step("RandomHorizontalFlip", p=0.5),
            _step("RandomVerticalFlip", p=0.5),
            _step("ToTensor"),
            norm,
        ]
    if name == "eval":
        return [_step("Rescale", size=margin), _step("CenterCrop", size=size), _step("ToTensor"), norm]
    raise TransformError(N_("unknown preset {name}; known: {known}").format(name=repr(name),
                                                                            known=", ".join(PRESET_NAMES)))


PRESET_NAMES = ("notebook_train", "default_train", "eval")


PRESETS: dict[str, list[dict]] = {name: preset(name) for name in PRESET_NAMES}


def crops_to_lesion(spec) -> bool:
    """Whether a pipeline crops to the lesion (CropByMask, or RandomRotation with crop_to_lesion)."""
    return any(s["name"] == "CropByMask" or (s["name"] == "RandomRotation" and s["params"]["crop_to_lesion"])
               for s in validate_spec(spec))


def run_crops_to_lesion(config) -> bool:
    """Whether a run's evaluation pipeline crops to the lesion; False when its config.json holds
    no readable pipeline (a damaged file, named by the run's damage report, never a crash here)."""
    try:
        return crops_to_lesion(config["eval_augment"])
    except (LesionLabError, KeyError, TypeError, ValueError):
        return False


def needs_mask(spec) -> bool:
    """Whether some step of the pipeline needs the lesion mask."""
    return any(REGISTRY[s["name"]].needs_mask or (s["name"] == "RandomRotation" and s["params"]["crop_to_lesion"])
               for s in validate_spec(spec))


def _eval_step(step: dict) -> list[dict]:
    """The deterministic counterpart of one training step: its central draw (angle 0, no
    flip, factor 1, original skin), a centred window for a random one, [] when that is a no-op."""
    name, params = step["name"], step["params"]
    if name == "RandomRotation":
        # Angle 0 leaves the image as it is, but the crop to the lesion still happens.
        return [_step("CropByMask", border=0)] if params["crop_to_lesion"] else []
    if name == "RandomCrop":
        return [_step("CenterCrop", size=params["size"])]
    if name == "RandomCenterCrop":
        return [_step("CenterCrop", size=(params["min_size"] + params["max_size"]) // 2)]
    if name == "RandomResizedCrop":
        # The usual evaluation of a random-resized-crop recipe: the 256/224 margin, then the centre.
        side = min(pair(params["size"]))
        return [_step("Rescale", size=round(side * 256 / 224)), _step("CenterCrop", size=params["size"])]
    if REGISTRY[name].random:  # flips, 90-degree turns, colour jitter, random skin tones
        return []
    return [copy.deepcopy(step)]


def eval_spec(train_spec, size: int | None = None) -> list[dict]:
    """The evaluation pipeline that matches a training pipeline: every deterministic step kept
    (a crop to the lesion included, so a model trained on lesion crops is scored on lesion
    crops), every random step replaced by its deterministic counterpart or dropped. Crops to
    the lesion in a row become one: the tighter border is what the second leaves. Given the
    run's image size, a closing resize-then-centre-crop to another square side is scaled to end
    at that size, so the image is resampled once (finalize_spec then adds no second resize)."""
    steps = []
    for out in (out for step in validate_spec(train_spec) for out in _eval_step(step)):
        if out["name"] == "CropByMask" and steps and steps[-1]["name"] == "CropByMask":
            border = [min(a, b) for a, b in zip(pair(steps[-1]["params"]["border"]), pair(out["params"]["border"]))]
            out = _step("CropByMask", border=border[0] if border[0] == border[1] else border)
            steps.pop()
        steps.append(out)
    return validate_spec(_end_at(steps, size) if size else steps)


def _end_at(steps: list[dict], size: int) -> list[dict]:
    """Image steps ending in Rescale(r) -> CenterCrop(c) (shorter side r, then a c x c window,
    r >= c) or in Rescale [c, c], rewritten to end at (size, size) in that same resample:
    Rescale(r * size / c) -> CenterCrop(size) is the same window of the image. Anything else
    (and the closing ToTensor/Normalize) as it is."""
    n = len(image_steps(steps))
    if any(s["name"] in TENSOR_STEPS for s in steps[:n]):  # tensor steps elsewhere than at the end
        return steps
    head, closing = steps[:n], steps[n:]
    if [s["name"] for s in head[-2:]] == ["Rescale", "CenterCrop"]:
        rescale, (high, wide) = head[-2]["params"]["size"], pair(head[-1]["params"]["size"])
        if isinstance(rescale, int) and high == wide != size and rescale >= high:
            return [*head[:-2], _step("Rescale", size=round(rescale * size / high)), _step("CenterCrop", size=size),
                    *closing]
    if head and head[-1]["name"] == "Rescale" and not isinstance(head[-1]["params"]["size"], int):
        high, wide = head[-1]["params"]["size"]
        if high == wide != size:
            return [*head[:-1], _step("Rescale", size=[size, size]), *closing]
    return steps


EVAL_HELP = ("Derived from the training pipeline: the same crops (to the lesion too), each random step "
             "at its central draw (a centred window, no rotation, no flip, no jitter, the original skin).")


def describe_steps(spec) -> str:
    """'CropByMask(border=0) -> Rescale(size=110) -> ...': a pipeline in one readable line."""
    parts = [f"{s['name']}({', '.join(f'{k}={v}' for k, v in s['params'].items())})" for s in validate_spec(spec)]
    return " → ".join(parts) or "(no steps: the image is resized to the model's input)"


def eval_mismatch(train_spec, eval_spec_) -> str | None:
    """Why an evaluation pipeline does not see the kind of image training saw, or None."""
    if crops_to_lesion(train_spec) and not crops_to_lesion(eval_spec_):
        return ("the training pipeline crops to the lesion but the evaluation pipeline does not, so the model "
                "would be scored on whole images; use eval_augment \"auto\" (derived from the training "
                "pipeline) or add a CropByMask step to it")
    return None


def image_steps(spec) -> list[dict]:
    """The canonical spec without its closing ToTensor/Normalize: what still yields an image."""
    return [s for s in validate_spec(spec) if s["name"] not in TENSOR_STEPS]


def finalize_spec(spec, size: int, mean, std) -> list[dict]:
    """The spec followed by what makes fixed-size (size, size) float tensors normalised with
    the model's mean/std: Rescale [size, size] unless the steps already end at that size,
    then ToTensor and Normalize(mean, std). The model's normalisation replaces the spec's
    own, because the weights expect it."""
    steps = image_steps(spec)
    out_size = None
    for s in steps:
        out_size = REGISTRY[s["name"]].cls(**s["params"]).output_size(out_size)
    if out_size != (size, size):
        steps.append(_step("Rescale", size=[size, size]))
    steps += [_step("ToTensor"), _step("Normalize", mean=list(mean), std=list(std))]
    return validate_spec(steps)
