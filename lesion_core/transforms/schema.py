"""The registry of steps and their parameters (type, default, range, help), and the checks
that turn a JSON pipeline spec into a valid one or say exactly what is wrong."""

from __future__ import annotations

import copy
import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lesion_core.errors import TransformError
from lesion_core.i18n import N_
from lesion_core.transforms.kernels import IMAGENET_MEAN, IMAGENET_STD, TENSOR_STEPS
from lesion_core.transforms.steps import (
    CenterCrop,
    ChangeSkin,
    ColorJitter,
    CropByMask,
    Inverted,
    Normalize,
    RandomCenterCrop,
    RandomChangeSkin,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotate90,
    RandomRotation,
    RandomVerticalFlip,
    Rescale,
    ShadesOfGrey,
    ToTensor,
)


@dataclass(frozen=True)
class ParamInfo:
    """One parameter: type is "int" | "float" | "bool" | "int_or_pair" (int or [a, b]) |
    "colour" (int or [r, g, b], each taken mod 256) | "floats3" ([x, y, z]).
    min/max bound every number in the value (None: unbounded); for "colour" they are the
    widget's range, since values outside it are taken mod 256."""

    name: str
    type: str
    default: Any
    min: float | None = None
    max: float | None = None
    help: str = ""
    choices: tuple | None = None


@dataclass(frozen=True)
class TransformInfo:
    """One registry entry. kind: "geometric" (moves pixels of image and mask alike),
    "colour" (changes image colours only, mask untouched) or "tensor" (ToTensor, Normalize)."""

    name: str
    cls: type
    help: str
    params: tuple[ParamInfo, ...]
    needs_mask: bool
    random: bool
    kind: str

    def defaults(self) -> dict:
        """A fresh {name: default} dict: copied, so editing it never changes the registry."""
        return copy.deepcopy({p.name: p.default for p in self.params})


_SIZE_HELP = "int = square side in pixels, [h, w] = height and width"


def _entry(cls, kind, random, *params, help=None, needs_mask=None) -> TransformInfo:
    return TransformInfo(
        name=cls.__name__,
        cls=cls,
        help=help or " ".join(cls.__doc__.split("\n\n")[0].split()),
        params=tuple(params),
        needs_mask=cls.needs_mask if needs_mask is None else needs_mask,
        random=random,
        kind=kind,
    )


REGISTRY: dict[str, TransformInfo] = {
    info.name: info
    for info in (
        _entry(CropByMask, "geometric", False,
               ParamInfo("border", "int_or_pair", 10, 0, 10000, "pixels kept around the lesion: int, or [by, bx]")),
        _entry(RandomCrop, "geometric", True, ParamInfo("size", "int_or_pair", 224, 1, 10000, _SIZE_HELP)),
        _entry(CenterCrop, "geometric", False, ParamInfo("size", "int_or_pair", 224, 1, 10000, _SIZE_HELP)),
        _entry(Rescale, "geometric", False,
               ParamInfo("size", "int_or_pair", 256, 1, 10000,
                         "int = shorter side (aspect kept), [h, w] = exact size")),
        _entry(RandomCenterCrop, "geometric", True,
               ParamInfo("min_size", "int", 100, 1, 10000, "smallest side drawn"),
               ParamInfo("max_size", "int", 224, 1, 10000, "largest side drawn")),
        _entry(RandomRotation, "geometric", True,
               ParamInfo("degrees", "float", 180.0, 0, 180, "angle drawn in [-degrees, degrees]"),
               ParamInfo("expand", "bool", True, help="grow the canvas so no corner is cut off"),
               ParamInfo("crop_to_lesion", "bool", False, help="crop to the rotated lesion afterwards (needs a mask)"),
               help="Rotate by a random angle; optionally crop to the rotated lesion (then it needs a mask).",
               needs_mask=False),
        _entry(RandomHorizontalFlip, "geometric", True, ParamInfo("p", "float", 0.5, 0, 1, "probability of a flip")),
        _entry(RandomVerticalFlip, "geometric", True, ParamInfo("p", "float", 0.5, 0, 1, "probability of a flip")),
        _entry(RandomRotate90, "geometric", True),
        _entry(RandomResizedCrop, "geometric", True,
               ParamInfo("size", "int_or_pair", 224, 1, 10000, _SIZE_HELP),
               ParamInfo("scale_min", "float", 0.35, 0.01, 1, "smallest fraction of the area kept"),
               ParamInfo("scale_max", "float", 1.0, 0.01, 1, "largest fraction of the area kept"),
               ParamInfo("ratio_min", "float", 0.75, 0.1, 10, "smallest aspect ratio w/h of the window"),
               ParamInfo("ratio_max", "float", 4 / 3, 0.1, 10, "largest aspect ratio w/h of the window")),
        _entry(ColorJitter, "colour", True,
               ParamInfo("brightness", "float", 0.2, 0, 1, "brightness factor drawn in [1-x, 1+x]"),
               ParamInfo("contrast", "float", 0.2, 0, 1, "contrast factor drawn in [1-x, 1+x]"),
               ParamInfo("saturation", "float", 0.2, 0, 1, "saturation factor drawn in [1-x, 1+x]")),
        _entry(ShadesOfGrey, "colour", False,
               ParamInfo("p", "int", 6, 1, 16, "Minkowski norm of the light's estimate: 1 grey world, 6 usual")),
        _entry(ChangeSkin, "colour", False,
               ParamInfo("colour", "colour", [198, 134, 66], 0, 255,
                         "int (grey level) or [r, g, b], each taken mod 256")),
        _entry(RandomChangeSkin, "colour", True),
        _entry(ToTensor, "tensor", False),
        _entry(Normalize, "tensor", False,
               ParamInfo("mean", "floats3", list(IMAGENET_MEAN), -10, 10,
                         "per-channel mean (ImageNet; 0.5 for TF-Lite nets)"),
               ParamInfo("std", "floats3", list(IMAGENET_STD), 1e-6, 10,
                         "per-channel std (ImageNet; 0.5 for TF-Lite nets)")),
    )
}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _in_range(v, info: ParamInfo) -> None:
    if (info.min is not None and v < info.min) or (info.max is not None and v > info.max):
        raise ValueError(N_("must be between {min} and {max}").format(min=info.min, max=info.max))


def _ints(value, lengths: tuple[int, ...], problem: str) -> list[int]:
    """value as a list of ints (one int, or a list of one of these lengths); ValueError(problem) if not."""
    if _is_int(value):
        return [value]
    if isinstance(value, (list, tuple)) and len(value) in lengths and all(_is_int(v) for v in value):
        return list(value)
    raise ValueError(problem)


def _coerce(value, info: ParamInfo):
    """The canonical JSON value of one parameter; ValueError says what is wrong."""
    kind = info.type
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(N_("must be true or false"))
        return value
    if kind == "int":
        if not _is_int(value):
            raise ValueError(N_("must be an integer"))
        _in_range(value, info)
        return value
    if kind == "float":
        if not _is_number(value):
            raise ValueError(N_("must be a number"))
        _in_range(value, info)
        return float(value)
    if kind == "int_or_pair":
        values = _ints(value, (2,), N_("must be an integer or a list of two integers"))
        for v in values:
            _in_range(v, info)
        return value if _is_int(value) else values
    if kind == "colour":
        values = _ints(value, (3,), N_("must be an integer or a list [r, g, b] of three integers"))
        return [v % 256 for v in values] * (3 if len(values) == 1 else 1)
    if kind == "floats3":
        if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_number(v) for v in value)):
            raise ValueError(N_("must be a list of three numbers"))
        for v in value:
            _in_range(v, info)
        return [float(v) for v in value]
    raise AssertionError(f"unknown parameter type {kind}")  # a registry bug, not a user error


def _check_step(index: int, step) -> dict:
    # Whole sentences per message (not a "step {index}" prefix glued on), so each one is
    # translated as a whole on the pages.
    if not isinstance(step, dict) or not isinstance(step.get("name"), str):
        raise TransformError(N_("step {index}: expected {form}, got {step}").format(
            index=index, form='{"name": ..., "params": {...}}', step=repr(step)))
    name = step["name"]
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        if close:
            raise TransformError(N_("step {index} ({name}): unknown transform; did you mean {close}? known: {known}")
                                 .format(index=index, name=name, close=close[0], known=", ".join(REGISTRY)))
        raise TransformError(N_("step {index} ({name}): unknown transform; known: {known}").format(
            index=index, name=name, known=", ".join(REGISTRY)))
    extra = set(step) - {"name", "params"}
    if extra:
        raise TransformError(N_("step {index} ({name}): unexpected keys {keys}; a step has only name and params")
                             .format(index=index, name=name, keys=sorted(extra)))
    given = step.get("params", {})
    if not isinstance(given, dict):
        raise TransformError(N_("step {index} ({name}): params must be an object, got {params}").format(
            index=index, name=name, params=repr(given)))
    info = REGISTRY[name]
    known = {p.name: p for p in info.params}
    unknown = set(given) - set(known)
    if unknown:
        names = ", ".join(map(repr, sorted(unknown)))
        if not known:
            raise TransformError(N_("step {index} ({name}): unknown parameter {unknown}; known: none").format(
                index=index, name=name, unknown=names))
        raise TransformError(N_("step {index} ({name}): unknown parameter {unknown}; known: {known}").format(
            index=index, name=name, unknown=names, known=", ".join(known)))
    params = info.defaults()
    for key, value in given.items():
        try:
            params[key] = _coerce(value, known[key])
        except ValueError as exc:
            raise TransformError(N_("step {index} ({name}): parameter '{param}' {problem}; got {value}").format(
                index=index, name=name, param=key, problem=exc, value=repr(value))) from None
    try:
        info.cls.check(params)
    except Inverted as exc:  # one message with the step: nested, "{low} (...) is larger" would take the step for {low}
        raise TransformError(N_("step {index} ({name}): {low} ({low_value}) is larger than {high} ({high_value})")
                             .format(index=index, name=name, **exc.values)) from None
    except ValueError as exc:
        raise TransformError(N_("step {index} ({name}): {problem}").format(index=index, name=name, problem=exc)) from None
    return {"name": name, "params": params}


def _check_order(steps: list[dict]) -> None:
    names = [s["name"] for s in steps]
    for tensor_step in TENSOR_STEPS:
        if names.count(tensor_step) > 1:
            raise TransformError(N_("the pipeline has {name} more than once; keep one").format(name=tensor_step))
    if "ToTensor" in names:
        at = names.index("ToTensor")
        after = [n for n in names[at + 1:] if n != "Normalize"]
        if after:
            raise TransformError(N_(
                "step {index} ({name}) comes after ToTensor; move ToTensor (and Normalize) to the end"
            ).format(index=names.index(after[0], at) + 1, name=after[0]))
    if "Normalize" in names and ("ToTensor" not in names or names.index("Normalize") < names.index("ToTensor")):
        raise TransformError(N_("step {index} (Normalize) needs ToTensor before it; add a ToTensor step").format(
            index=names.index("Normalize") + 1))


def validate_spec(spec) -> list[dict]:
    """Check a spec and return its canonical form (every parameter filled in, JSON types).

    Raises TransformError naming the step (1-based) and parameter at fault."""
    if not isinstance(spec, (list, tuple)):
        raise TransformError(N_("a pipeline is a list of steps, got {type}").format(type=type(spec).__name__))
    steps = [_check_step(i, step) for i, step in enumerate(spec, start=1)]
    _check_order(steps)
    return steps


def load_spec(path) -> list[dict]:
    """Read and validate a pipeline JSON file (a list of steps)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TransformError(N_("cannot read pipeline file {file}: {error}").format(
            file=path, error=exc.strerror or exc)) from None
    except UnicodeDecodeError:
        raise TransformError(N_("pipeline file {file} is not a text (UTF-8 JSON) file").format(file=path)) from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TransformError(N_("pipeline file {file} is not valid JSON (line {line}, column {column}: {error})")
                             .format(file=path, line=exc.lineno, column=exc.colno, error=exc.msg)) from None
    try:
        return validate_spec(spec)
    except TransformError as exc:
        raise TransformError(N_("pipeline file {file}: {error}").format(file=path, error=exc)) from None


def dump_spec(spec, path) -> Path:
    """Validate and write a spec as indented JSON; returns the path."""
    path = Path(path)
    path.write_text(json.dumps(validate_spec(spec), indent=2) + "\n", encoding="utf-8")
    return path
