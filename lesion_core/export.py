"""Export a run's best model to ONNX or TorchScript, preprocessing inside, verified on export.

The exported graph takes what an image library hands over, so no Lesion Lab code is needed
to use it:

  input  "images": uint8, shape (N, H, W, 3), RGB, channels last; any N >= 1 and any H, W
         >= 16, the same H, W for every image of one batch (stack images of one size, or
         call once per image);
  output "probabilities": float32, shape (N, number of classes), rows sum to 1, in the
         order of the sidecar's "class_names"; calibrated (softmax(logits / temperature))
         when the run has a fitted calibration temperature.

A run trained on lesion crops (its evaluation pipeline starts CropByMask) takes two inputs,
"image" (as "images" above) and "mask", uint8 (N, H, W), and crops to the lesion inside the
graph (export_crop), then as below.

Inside the graph, in this order: to float in [0, 1], the run's evaluation resizes and crops
(e.g. shorter side to 256 bilinear with antialias, central 224x224), the model's
normalisation (x - mean) / std, the network, softmax. A JSON sidecar (FILE.json) says all
of this with the class names, input size, temperature and decision threshold.

Export fails loudly (ModelError, no file left behind) unless the exported file, run by
onnxruntime or torch.jit.load, gives the probabilities of the same model in PyTorch within
TOLERANCE on a batch of real images.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lesion_core import data, models, runs, transforms
from lesion_core.errors import LesionLabError, ModelError
from lesion_core.export_crop import CROP_TOLERANCE, LesionWindow, lesion_window
from lesion_core.i18n import N_
from lesion_core.paths import new_temp_file
from lesion_core.inference.decision import read_threshold, withheld_reason
from lesion_core import settings
from lesion_core.inference.prior import FILE as prior_file
from lesion_core.inference.temperature import LOG_FLOOR, read_calibration

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
TOLERANCE = 1e-4  # largest allowed |exported - PyTorch| of any probability
# Largest allowed |exported - predict|: predict resizes the image's uint8 pixels (rounded), the
# graph resizes floats; a missing TTA or temperature differs by far more (0.32 seen).
PREDICT_TOLERANCE = 1e-2
VERIFY_IMAGES = 8  # real images the check runs on
MIN_SIDE = 16  # smallest input side the exported graph accepts
ONNX_OPSET = 18  # the first opset whose Resize has antialias, which the run's resizes use


# ---------------------------------------------------------------- preprocessing as modules


class ResizeShorter(nn.Module):
    """Shorter side to `side`, aspect ratio kept (torchvision's rounding), bilinear + antialias."""

    def __init__(self, side: int):
        super().__init__()
        self.side = side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        if torch.jit.is_scripting():
            short = min(h, w)
        else:
            short = torch.sym_min(h, w)  # no Python branch, so torch.export keeps H, W dynamic
        size = [(self.side * h) // short, (self.side * w) // short]
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


class ResizeExact(nn.Module):
    """To exactly (h, w), bilinear + antialias."""

    def __init__(self, h: int, w: int):
        super().__init__()
        self.h, self.w = h, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=[self.h, self.w], mode="bilinear", align_corners=False, antialias=True)


def _centre_offset(extra: int) -> int:
    """torchvision's round(extra / 2) with Python's half-to-even rounding, in integers."""
    half = extra // 2
    return half + (extra % 2) * (half % 2)


class CentreCrop(nn.Module):
    """The central (h, w) window of an image at least that large (after a resize)."""

    def __init__(self, h: int, w: int):
        super().__init__()
        self.h, self.w = h, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = _centre_offset(x.shape[2] - self.h)
        left = _centre_offset(x.shape[3] - self.w)
        # index_select rather than slicing: its output size is static, which torch.export needs
        rows = torch.arange(self.h, device=x.device) + top
        cols = torch.arange(self.w, device=x.device) + left
        return x.index_select(2, rows).index_select(3, cols)


class ExportedClassifier(nn.Module):
    """uint8 (N, H, W, 3) RGB -> float32 (N, classes) probabilities, as predict computes them:
    preprocessing, the net, softmax, the mean over the 8 flips/rotations when tta (the run's
    setting), then the temperature the way inference applies it (softmax(log p / T))."""

    def __init__(self, net: nn.Module, steps: nn.Sequential, mean, std, temperature: float = 1.0, tta: bool = False):
        super().__init__()
        self.net = net
        self.steps = steps
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.temperature = float(temperature)
        self.tta = bool(tta)
        self.log_floor = float(LOG_FLOOR)  # an attribute: TorchScript reads no module globals

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.steps(images.permute(0, 3, 1, 2).float() / 255.0))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities of preprocessed float images (N, 3, size, size) in [0, 1]."""
        x = (x - self.mean) / self.std
        if self.tta:  # inference.tta's 8 views, one batch through the net
            mirrored = x.flip(-1)
            views = torch.cat([x, x.rot90(1, [2, 3]), x.rot90(2, [2, 3]), x.rot90(3, [2, 3]), mirrored,
                               mirrored.rot90(1, [2, 3]), mirrored.rot90(2, [2, 3]), mirrored.rot90(3, [2, 3])])
            probs = torch.softmax(self.net(views), dim=1).reshape(8, x.shape[0], -1).mean(dim=0)
        else:
            probs = torch.softmax(self.net(x), dim=1)
        if self.temperature != 1.0:
            probs = torch.softmax(torch.log(probs.clamp_min(self.log_floor)) / self.temperature, dim=1)
        return probs


class ExportedCropClassifier(ExportedClassifier):
    """(uint8 image (N, H, W, 3) RGB, uint8 mask (N, H, W)) -> float32 (N, classes): the crop
    to the lesion (export_crop.LesionWindow), the steps after it, then as ExportedClassifier."""

    def __init__(self, net: nn.Module, window: LesionWindow, steps: nn.Sequential, mean, std,
                 temperature: float = 1.0, tta: bool = False):
        super().__init__(net, steps, mean, std, temperature, tta)
        self.window = window

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = self.window(image.permute(0, 3, 1, 2).float(), mask) / 255.0
        return self.classify(self.steps(x))


def preprocessing_modules(spec, size: int, mean, std) -> tuple[LesionWindow | None, nn.Sequential, list[dict]]:
    """The run's evaluation crops and resizes (finalize_spec: what the lab itself runs) as graph
    modules: (the crop to the lesion with what it absorbs, or None; the other steps; all the
    steps as JSON). ModelError for a step that cannot run inside an exported graph (random, or
    a crop to the lesion that export_crop cannot reproduce)."""
    steps = transforms.image_steps(transforms.finalize_spec(spec, size, mean, std))
    window, rest = lesion_window(steps)
    modules = []
    for step in rest:
        name, value = step["name"], step["params"].get("size")
        if name == "Rescale" and isinstance(value, int):
            modules.append(ResizeShorter(value))
        elif name == "Rescale":
            modules.append(ResizeExact(*value))
        elif name == "CenterCrop" and (modules or window):  # after a resize or the lesion crop: large enough
            modules.append(CentreCrop(*((value, value) if isinstance(value, int) else value)))
        else:
            raise ModelError(N_(
                "the run's evaluation pipeline has a {step} step, which cannot be exported "
                "(export supports a leading CropByMask, Rescale, and CenterCrop after a Rescale)"
            ).format(step=name))
    return window, nn.Sequential(*modules), steps


# ---------------------------------------------------------------- what the run knows


def export_problem(config: dict) -> str | None:
    """Why a run (its config.json) cannot be exported, or None: a step of its evaluation
    pipeline that cannot run inside a graph (such as a lesion crop, which needs the mask).
    Pages ask before offering Export, so the button is not offered where it would fail."""
    try:
        entry = models.MODELS[config["model"]["name"]]
        size = int(config.get("image_size") or entry.input_size)
        preprocessing_modules(config["eval_augment"], size, entry.mean, entry.std)
    except ModelError as err:
        return str(err)
    except (LesionLabError, KeyError, TypeError, ValueError):
        return None  # a damaged config: export itself names the problem
    return None


def takes_mask(config: dict) -> bool:
    """Whether a run's exported model takes the lesion mask beside each image (its evaluation
    pipeline crops to the lesion)."""
    return transforms.run_crops_to_lesion(config)


def build_exportable(run_dir) -> tuple[ExportedClassifier, dict]:
    """(the run's best model wrapped with its preprocessing, fp32 eval mode; the sidecar dict)."""
    from lesion_core import inference, settings  # they import much; keep `import lesion_core.export` light

    model, config = inference.load_run_model(run_dir)
    entry = models.MODELS[config["model"]["name"]]
    size = settings.image_size(config)
    # the pipeline predict runs (inference.predict_image), an empty one included
    window, steps, described = preprocessing_modules(config["eval_augment"], size, entry.mean, entry.std)
    calibration = read_calibration(run_dir)  # the reader predict and the pages use: one meaning of a bad file
    # predict's default: the temperature only where cross-fitting on validation showed it helps
    temperature = calibration.default_temperature if calibration.default_temperature != 1.0 else None
    class_names = list(config["data"]["class_names"])
    tta = bool(config.get("tta"))
    if window is None:
        wrapper = ExportedClassifier(model.float(), steps, entry.mean, entry.std, temperature or 1.0, tta).eval()
        inputs = [{"name": "images", "dtype": "uint8", "shape": ["N", "H", "W", 3], "channels": "RGB",
                   "note": f"channels last; any N >= 1, H and W >= {MIN_SIDE}, one H x W per batch"}]
    else:
        wrapper = ExportedCropClassifier(model.float(), window, steps, entry.mean, entry.std, temperature or 1.0,
                                         tta).eval()
        inputs = [{"name": "image", "dtype": "uint8", "shape": ["N", "H", "W", 3], "channels": "RGB",
                   "note": f"channels last; any N >= 1, H and W >= {MIN_SIDE}, one H x W per batch"},
                  {"name": "mask", "dtype": "uint8", "shape": ["N", "H", "W"],
                   "note": "the lesion's segmentation mask of each image, the image's H x W: any non-zero value "
                           "is lesion. The graph crops the image to the mask's bounding box grown by the "
                           "CropByMask border (clamped to the image; an empty mask keeps the whole image), as "
                           "the run was trained and evaluated"}]
    sidecar = {
        "run": Path(run_dir).name,
        "model": entry.name,
        "class_names": class_names,
        "input_size": size,
        "inputs": inputs,  # every input by name; "input" (the one input) too where there is one, as before
        "output": {"name": "probabilities", "dtype": "float32", "shape": ["N", len(class_names)],
                   "note": "softmax of the logits (averaged over the 8 flips and 90-degree rotations when "
                           "tta), then scaled by the temperature: softmax(log p / temperature); columns in "
                           "class_names order"},
        "tta": tta,
        "metadata_prior": (N_("not included: predict combines this run's image probabilities with the patient's "
                              "age, sex and site (patient_model.json); the exported model gives the image alone")
                           if (Path(run_dir) / prior_file).exists() else None),
        "preprocessing": described + [{"name": "Normalize",
                                       "params": {"mean": list(entry.mean), "std": list(entry.std)}}],
        "temperature": temperature,
        "threshold": read_threshold(run_dir),
    }
    if window is None:
        sidecar["input"] = inputs[0]
    else:
        sidecar["lesion_crop"] = N_(
            "the graph crops each image to its mask's bounding box (grown by the CropByMask border, clamped; an "
            "empty mask keeps the whole image) and resizes it as predict does, torch's uint8 fixed-point resize "
            "included; where torch resizes otherwise (not an x86 CPU with AVX2) a pixel may differ by one level, "
            "so the check allows {tolerance} against predict").format(tolerance=f"{CROP_TOLERANCE:g}")
    if calibration.problem:
        sidecar["calibration_ignored"] = calibration.problem
    elif calibration.scaled and not calibration.by_default:
        sidecar["calibration_not_applied"] = calibration.note
    if sidecar["threshold"] is not None:  # the fitness gate: a weak model's rule refers nobody
        sidecar["decision_withheld"] = withheld_reason(run_dir, sidecar["threshold"]["class"])
    return wrapper, sidecar


# ---------------------------------------------------------------- writing and checking


def input_names(wrapper: nn.Module) -> list[str]:
    """The exported graph's input names: image and mask for a lesion-crop run, else images."""
    return ["image", "mask"] if isinstance(wrapper, ExportedCropClassifier) else ["images"]


def _write_onnx(wrapper: nn.Module, example: tuple, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    height, width = torch.export.Dim("height", min=MIN_SIDE), torch.export.Dim("width", min=MIN_SIDE)
    names = input_names(wrapper)
    shapes = {"images": {0: batch, 1: height, 2: width}} if names == ["images"] else \
        {"image": {0: batch, 1: height, 2: width}, "mask": {0: batch, 1: height, 2: width}}
    with warnings.catch_warnings():  # image and mask share their Dims, which is the point; no notice needed
        warnings.filterwarnings("ignore", message=".*The axis name: .* will not be used", category=UserWarning)
        torch.onnx.export(wrapper, example, str(path), dynamo=True, opset_version=ONNX_OPSET,
                          input_names=names, output_names=["probabilities"], external_data=False,
                          dynamic_shapes=shapes, verbose=False)


def _write_torchscript(wrapper: ExportedClassifier, path: Path, size: int) -> None:
    # The network is traced (its input is always size x size, and some zoo nets are not
    # scriptable); the preprocessing is scripted, so H and W stay free.
    with warnings.catch_warnings():
        # TorchScript is what was asked for; torch's "deprecated" notice would only alarm users.
        warnings.filterwarnings("ignore", message=".*is deprecated", category=FutureWarning)
        traced = torch.jit.trace(wrapper.net, torch.zeros(1, 3, size, size))
        common = (wrapper.mean.flatten().tolist(), wrapper.std.flatten().tolist(), wrapper.temperature, wrapper.tta)
        if isinstance(wrapper, ExportedCropClassifier):
            scripted = torch.jit.script(ExportedCropClassifier(traced, wrapper.window, wrapper.steps, *common))
        else:
            scripted = torch.jit.script(ExportedClassifier(traced, wrapper.steps, *common))
        torch.jit.save(scripted, str(path))


def _runner(fmt: str, path: Path, names: list[str]):
    """A function (uint8 (N, H, W, 3) numpy[, its masks (N, H, W)]) -> probabilities numpy,
    reading the exported file."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda *arrays: session.run(["probabilities"], dict(zip(names, arrays)))[0]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is deprecated", category=FutureWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")

    def run(*arrays):
        with torch.no_grad():
            return loaded(*map(torch.from_numpy, arrays)).numpy()

    return run


def verification_images(run_dir, limit: int = VERIFY_IMAGES, masks: bool = False) -> list:
    """Up to `limit` real images of the run's own dataset (validation split first); with masks,
    (image, mask) pairs of the images that have one (a lesion-crop run's export needs both)."""

    config = runs.read_config(run_dir)
    try:
        lesion = settings.load_data(config)
    except LesionLabError as err:
        raise ModelError(N_("export checks the model on the run's images, which cannot be read ({error}); "
                            "pass images to check with (--images)").format(error=err)) from None
    records = lesion.split("val") + lesion.split("test") + lesion.split("train")
    if not masks:
        return [data.read_image(r.image_path) for r in records[:limit]]
    pairs = []
    for record in (r for r in records if r.mask_path is not None):
        image = data.read_image(record.image_path)
        pairs.append((image, data.read_mask(record.mask_path, image.shape[:2])))
        if len(pairs) == limit:
            break
    return pairs


def _batches(samples: list) -> list[tuple]:
    """Samples (images, or (image, mask) pairs) grouped by size into uint8 batches: (N, H, W, 3)
    images[, (N, H, W) masks] (the graph takes one size per batch)."""
    groups: dict[tuple, list] = {}
    for sample in samples:
        parts = sample if isinstance(sample, tuple) else (sample,)
        groups.setdefault(parts[0].shape, []).append(parts)
    return [tuple(np.stack([np.ascontiguousarray(p[i], dtype=np.uint8) for p in group]) for i in range(len(group[0])))
            for group in groups.values()]


def verify(wrapper: nn.Module, fmt: str, path: Path, images: list, run_dir=None) -> dict:
    """Largest |exported - PyTorch| probability over the images (for a lesion-crop run, (image,
    mask) pairs); ModelError above TOLERANCE. With run_dir, also the largest |exported - predict|
    (inference.predict_image with the run's TTA and temperature, the image alone): ModelError
    above the allowed difference (PREDICT_TOLERANCE, CROP_TOLERANCE for a lesion crop), so the
    file is the model predict runs, not only the bare network."""
    if not images:
        raise ModelError(N_("export needs at least one real image to check the exported model on"))
    run = _runner(fmt, path, input_names(wrapper))
    crop = isinstance(wrapper, ExportedCropClassifier)
    allowed = CROP_TOLERANCE if crop else PREDICT_TOLERANCE
    worst, worst_predict, n = 0.0, 0.0, 0
    for batch in _batches(images):
        with torch.no_grad():
            expected = wrapper(*map(torch.from_numpy, batch)).numpy()
        got = np.asarray(run(*batch))
        if got.shape != expected.shape:
            raise ModelError(N_("the exported {format} model returned shape {shape}, PyTorch {expected}").format(
                format=fmt, shape=got.shape, expected=expected.shape))
        worst = max(worst, float(np.abs(got - expected).max()))
        if run_dir is not None:
            from lesion_core.inference import predict_image

            # predict's default: the temperature only where cross-fitting showed it helps, as in the graph
            calibrated = read_calibration(run_dir).by_default
            for i, row in enumerate(got):
                lab = predict_image(run_dir, batch[0][i], mask=batch[1][i] if crop else None, tta=wrapper.tta,
                                    prior=False, calibrated=calibrated)
                worst_predict = max(worst_predict, float(np.abs(row - np.array(list(lab.values()))).max()))
        n += len(batch[0])
    if not worst <= TOLERANCE:  # also catches NaN
        raise ModelError(N_(
            "the exported {format} model disagrees with PyTorch: probabilities differ by up to {worst} "
            "(allowed {tolerance}) on {n} real images; the file was not written"
        ).format(format=fmt, worst=f"{worst:.3g}", tolerance=f"{TOLERANCE:g}", n=n))
    if not worst_predict <= allowed:
        raise ModelError(N_(
            "the exported {format} model disagrees with predict: probabilities differ by up to {worst} "
            "(allowed {tolerance}) on {n} real images; the file was not written"
        ).format(format=fmt, worst=f"{worst_predict:.3g}", tolerance=f"{allowed:g}", n=n))
    out = {"images": n, "batches": len(_batches(images)), "max_abs_diff": worst, "tolerance": TOLERANCE,
           "runtime": _runtime_name(fmt)}
    if run_dir is not None:
        out |= {"max_abs_diff_vs_predict": worst_predict, "tolerance_vs_predict": allowed}
    return out


def _runtime_name(fmt: str) -> str:
    if fmt == "onnx":
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"
    return f"torch.jit.load (torch {torch.__version__})"


def sidecar_path(out) -> Path:
    """Where the JSON sidecar of an exported file goes: FILE.json beside it."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def export_run(run_dir, fmt: str, out, images: list[np.ndarray] | None = None,
               masks: list[np.ndarray] | None = None) -> dict:
    """Export run_dir's best model to `out` (format "onnx" or "torchscript") with its sidecar
    FILE.json, after checking it on real images (the run's own unless given; with their masks
    for a lesion-crop run); returns the sidecar. Nothing is left at `out` when anything fails."""
    if fmt not in FORMATS:
        raise ModelError(N_("unknown export format {format}; choose one of: {formats}").format(
            format=repr(fmt), formats=", ".join(FORMATS)))
    out = Path(out)
    if not out.parent.is_dir():
        raise ModelError(N_("folder {folder} does not exist; create it or choose another --out").format(
            folder=out.parent))
    wrapper, sidecar = build_exportable(run_dir)
    crop = isinstance(wrapper, ExportedCropClassifier)
    if images is None:
        images = verification_images(run_dir, masks=crop)
    elif crop:
        if masks is None or len(masks) != len(images):
            raise ModelError(N_("this run crops to the lesion, so its export is checked on images with their "
                                "masks: give one mask per image (--masks)"))
        images = list(zip(images, masks))
    # Write next to the target and rename only once verified, so a failed export leaves nothing.
    fd, tmp = new_temp_file(out.parent, out.name, SUFFIXES[fmt])
    os.close(fd)
    try:
        example = tuple(map(torch.from_numpy, _batches(images)[0])) if images else \
            (torch.zeros(1, 64, 64, 3, dtype=torch.uint8),) + ((torch.ones(1, 64, 64, dtype=torch.uint8),) if crop else ())
        try:
            with torch.no_grad():
                if fmt == "onnx":
                    _write_onnx(wrapper, example, tmp)
                else:
                    _write_torchscript(wrapper, tmp, sidecar["input_size"])
        except ImportError as err:
            raise ModelError(N_("{format} export needs {package} (pip install -r requirements.txt)").format(
                format=fmt, package=err.name)) from None
        except LesionLabError:
            raise
        except Exception as err:  # exporters raise many types; the user needs the first line
            raise ModelError(N_("{model} could not be exported to {format}: {error}").format(
                model=sidecar["model"], format=fmt, error=models.first_line(err))) from None
        sidecar["format"] = fmt
        sidecar["verification"] = verify(wrapper, fmt, tmp, images, run_dir)
        sidecar["torch"] = torch.__version__
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    runs.atomic_write_text(sidecar_path(out), json.dumps(sidecar, indent=2) + "\n")
    return sidecar


def export_bytes(run_dir, fmt: str) -> tuple[bytes, dict]:
    """(the exported file's bytes, its sidecar) through export_run in a temporary folder (downloads)."""
    with tempfile.TemporaryDirectory(prefix="lesion_export_") as folder:
        out = Path(folder) / f"model{SUFFIXES[fmt] if fmt in SUFFIXES else ''}"
        sidecar = export_run(run_dir, fmt, out)
        return out.read_bytes(), sidecar
