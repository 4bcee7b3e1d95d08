"""Where the model looks: class-activation heatmaps (pytorch-grad-cam) and the lesion-focus score.

A heatmap is computed on the model's own view of the image (the run's evaluation pipeline:
rescale, centre crop, normalise) at the model's input resolution; the lesion mask goes
through the same pipeline with the image (nearest interpolation), so heatmap and mask are
aligned pixel for pixel.

Lesion-focus score of a heatmap H >= 0 and a binary mask M (same size):
    focus = sum(H * M) / sum(H)      (the share of the heatmap's mass inside the lesion, 0..1)
    peak_in_lesion = M[argmax H]     (the "pointing game" hit)
Both are None when there is no mask, the mask is empty, or H is all zero.

The pictures draw the heatmap back on the original image, inside a rectangle that marks what
the model saw (view_box: the crop to the lesion, the centre crop), the rest of the image
around it as it is.
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lesion_core import models, paths, transforms
from lesion_core.errors import ModelError
from lesion_core.i18n import N_
from lesion_core import settings
from lesion_core.inference import temperature as scaling

# Name -> pytorch-grad-cam class name. Score-CAM is gradient-free (one forward pass per
# channel of the target layer: slow on a CPU); EigenCAM is gradient-free and class-agnostic.
METHODS = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "scorecam": "ScoreCAM", "eigencam": "EigenCAM"}
DEFAULT_METHOD = "gradcam"
# Images per Score-CAM forward pass over the masked inputs.
SCORECAM_BATCH = 32


def focus_score(heatmap: np.ndarray, mask: np.ndarray | None) -> tuple[float | None, bool | None]:
    """(share of the heatmap's mass inside the mask, whether its peak is inside): see the module doc."""
    if mask is None:
        return None, None
    mask = np.asarray(mask) != 0
    heat = np.clip(np.asarray(heatmap, dtype=np.float64), 0, None)
    if mask.shape != heat.shape:
        raise ValueError(f"heatmap {heat.shape} and mask {mask.shape} differ in size")
    total = heat.sum()
    if not mask.any() or total <= 0:
        return None, None
    peak = np.unravel_index(np.argmax(heat), heat.shape)
    return float(heat[mask].sum() / total), bool(mask[peak])


def lesion_share(mask: np.ndarray | None) -> float | None:
    """The share of the model's view the lesion covers (None without a mask or with an empty
    one). A heatmap spread evenly over the view has this focus; focus / share is the focus
    lift: 1.0 = no preference for the lesion, whatever crop the run uses (a lesion-crop run's
    lesion fills most of its view, so its focus is high by construction)."""
    if mask is None:
        return None
    mask = np.asarray(mask) != 0
    return float(mask.mean()) if mask.any() else None


def focus_lift(focus: float | None, share: float | None) -> float | None:
    return None if focus is None or not share else float(focus / share)


def _squeeze_mask(mask) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    return (mask.reshape(mask.shape[-2:]) != 0) if mask.size else None


def make_cam(model: torch.nn.Module, model_name: str, method: str = DEFAULT_METHOD):
    """A pytorch-grad-cam object on the zoo model's last convolution (the registry's last_conv)."""
    import pytorch_grad_cam

    if method not in METHODS:
        raise ModelError(N_("unknown explanation method {method}; choose one of: {methods}").format(
            method=repr(method), methods=", ".join(METHODS)))
    layer = model.get_submodule(models.get_entry(model_name).last_conv)
    cam = getattr(pytorch_grad_cam, METHODS[method])(model=model, target_layers=[layer])
    if method == "scorecam":
        cam.batch_size = SCORECAM_BATCH
    return cam


@dataclass
class Explanation:
    """One image explained: heatmap float32 (S, S) in [0, 1], the model's view uint8 (S, S, 3),
    the aligned mask bool (S, S) or None, and what the model said."""

    heatmap: np.ndarray
    image: np.ndarray
    mask: np.ndarray | None
    method: str
    target_class: str
    probabilities: dict
    focus: float | None
    peak_in_lesion: bool | None
    lesion_share: float | None = None
    original: np.ndarray | None = None  # the image as given, uint8 (H, W, 3)
    original_mask: np.ndarray | None = None  # its mask as given, (H, W), or None
    view_box: list[float] | None = None  # [top, left, height, width] of the model's view on the original

    @property
    def focus_lift(self) -> float | None:
        return focus_lift(self.focus, self.lesion_share)

    def to_json(self) -> dict:
        """explain.json: {"method", "class", "probabilities", "focus", "peak_in_lesion",
        "lesion_share", "focus_lift", "view_box"} (view_box: [top, left, height, width] of what the
        model saw, in the original image's pixels; null where the pipeline's geometry is unknown)."""
        return {"method": self.method, "class": self.target_class, "probabilities": self.probabilities,
                "focus": self.focus, "peak_in_lesion": self.peak_in_lesion, "lesion_share": self.lesion_share,
                "focus_lift": self.focus_lift,
                "view_box": None if self.view_box is None else [round(v, 2) for v in self.view_box]}

    def overlay(self) -> np.ndarray:
        """The picture to show: the heatmap on the original image with the model's view marked
        (original_overlay), or on the model's view where its place in the original is unknown."""
        if self.original is None or self.view_box is None:
            return heatmap_overlay(self.image, self.heatmap, self.mask)
        return original_overlay(self.original, self.heatmap, self.view_box, self.original_mask)


class Explainer:
    """Heatmaps of one run's best model with one CAM method (built once, reused per image)."""

    def __init__(self, run_dir, method: str = DEFAULT_METHOD, calibrated: bool = True):
        from lesion_core import inference

        if method not in METHODS:
            raise ModelError(N_("unknown explanation method {method}; choose one of: {methods}").format(
                method=repr(method), methods=", ".join(METHODS)))
        self.method = method
        self.model, self.config = inference.load_run_model(run_dir)
        self.model.float()
        self.entry = models.MODELS[self.config["model"]["name"]]
        self.class_names = list(self.config["data"]["class_names"])
        spec = transforms.finalize_spec(self.config["eval_augment"], settings.image_size(self.config),
                                        self.entry.mean, self.entry.std)
        self.pipeline = transforms.build_pipeline(spec)
        self.temperature = scaling.read_temperature(run_dir) if calibrated else 1.0
        self.run_dir, self.calibrated = Path(run_dir), calibrated
        self.cam = self._build_cam()
        # The pages share one Explainer between sessions; CAM hooks hold per-call state.
        self._lock = threading.Lock()

    def _build_cam(self):
        return make_cam(self.model, self.entry.name, self.method)

    def class_index(self, class_name: str | None) -> int | None:
        if class_name is None:
            return None
        if class_name not in self.class_names:
            raise ModelError(N_("class {name} is not one of the run's classes ({classes})").format(
                name=repr(class_name), classes=", ".join(self.class_names)))
        return self.class_names.index(class_name)

    def heatmaps(self, images: torch.Tensor, targets: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(heatmaps float32 (B, S, S) in [0, 1], calibrated probabilities (B, C)) of a batch of
        model inputs (B, 3, S, S); targets: class per image, None for the predicted class."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


        # One forward serves both: the CAM keeps the model's outputs; with no explicit
        # targets it explains the predicted (argmax) class, which temperature never changes.
        explicit = targets is not None and any(t is not None for t in targets)
        if explicit:
            with torch.no_grad():
                logits = self.model(images)
            chosen = [int(row.argmax()) if t is None else int(t) for t, row in zip(targets, logits)]
            heat = self.cam(input_tensor=images, targets=[ClassifierOutputTarget(c) for c in chosen])
        else:
            heat = self.cam(input_tensor=images, targets=None)
            logits = self.cam.outputs
        probs = torch.softmax(logits.detach().float(), dim=1).numpy()
        probs = scaling.apply_temperature(probs, self.temperature)
        heat = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0)  # a flat CAM normalises to NaN
        return heat, probs

    def explain(self, image: np.ndarray, mask: np.ndarray | None = None, class_name: str | None = None,
                meta: dict | None = None) -> Explanation:
        """Heatmap and focus of one uint8 (H, W, 3) image (mask uint8/bool (H, W) or None).

        Its probabilities are predict's (inference.predict_image: the run's TTA setting, its
        metadata prior with meta, its temperature unless uncalibrated), so explain and predict
        never give two numbers for one image; the heatmap explains the top class of those (or
        class_name)."""
        from lesion_core import inference

        probabilities = inference.predict_image(self.run_dir, image, mask, calibrated=self.calibrated, meta=meta)
        image = np.ascontiguousarray(image, dtype=np.uint8)
        mask = None if mask is None else (np.asarray(mask) != 0).astype(np.uint8)
        sample, drawn = self.pipeline.apply_with_params({"image": image, "mask": mask, "label": 0, "id": "image"})
        target = self.class_index(class_name)
        chosen = self.class_names.index(max(probabilities, key=probabilities.get)) if target is None else target
        with self._lock:
            heat, _ = self.heatmaps(sample["image"].unsqueeze(0), [chosen])
        view_mask = _squeeze_mask(sample["mask"])
        focus, peak = focus_score(heat[0], view_mask)
        return Explanation(heatmap=heat[0], image=transforms.denormalize(sample["image"], self.entry.mean, self.entry.std),
                           mask=view_mask, method=self.method, target_class=self.class_names[chosen],
                           probabilities=probabilities, focus=focus, peak_in_lesion=peak,
                           lesion_share=lesion_share(view_mask) if focus is not None else None,
                           original=image, original_mask=mask,
                           view_box=view_box(self.pipeline.spec, drawn, image.shape[:2]))


# Steps that leave the geometry as it is (colours, tensors).
_SAME_GEOMETRY = ("ToTensor", "Normalize", "ShadesOfGrey", "ChangeSkin", "ColorJitter")


def view_box(spec: list[dict], drawn: list[dict], shape: tuple) -> list[float] | None:
    """[top, left, height, width] (float, original pixels) of the region of an image of `shape`
    (H, W) that a deterministic pipeline's output shows, from its steps and what each drew
    (Pipeline.apply_with_params); it may reach past the image where a centre crop pads. None for
    a step whose geometry this does not follow (rotations, random crops)."""
    top, left, scale_y, scale_x = 0.0, 0.0, 1.0, 1.0
    h, w = int(shape[0]), int(shape[1])
    for step, params in zip(spec, drawn):
        name = step["name"]
        if name == "CropByMask":
            if params.get("box") is not None:  # None: an empty mask keeps the whole image
                box_top, box_left, h, w = params["box"]
                top, left = top + box_top * scale_y, left + box_left * scale_x
        elif name == "Rescale":
            new_h, new_w = params["size"]
            scale_y, scale_x, h, w = scale_y * h / new_h, scale_x * w / new_w, new_h, new_w
        elif name == "CenterCrop":
            size = step["params"]["size"]
            crop_h, crop_w = (size, size) if isinstance(size, int) else size
            # torchvision: round((h - crop) / 2) where the image is larger, -((crop - h) // 2) where it pads
            off_y = int(round((h - crop_h) / 2.0)) if h >= crop_h else -((crop_h - h) // 2)
            off_x = int(round((w - crop_w) / 2.0)) if w >= crop_w else -((crop_w - w) // 2)
            top, left, h, w = top + off_y * scale_y, left + off_x * scale_x, crop_h, crop_w
        elif name not in _SAME_GEOMETRY:
            return None
    return [top, left, h * scale_y, w * scale_x]


# ---------------------------------------------------------------- pictures and files


def heatmap_overlay(image: np.ndarray, heatmap: np.ndarray, mask: np.ndarray | None = None,
                    alpha: float = 0.45) -> np.ndarray:
    """uint8 (H, W, 3): the image blended with the heatmap in the jet colour map, with the
    lesion mask's outline in white when given."""
    from matplotlib import colormaps

    colours = (colormaps["jet"](np.clip(heatmap, 0, 1))[..., :3] * 255).astype(np.float32)
    out = np.round((1 - alpha) * image.astype(np.float32) + alpha * colours).astype(np.uint8)
    if mask is not None:
        out[transforms.mask_outline(mask)] = (255, 255, 255)
    return out


VIEW_COLOUR = (255, 255, 0)  # the rectangle of the model's view: yellow, apart from the white mask outline


def original_overlay(original: np.ndarray, heatmap: np.ndarray, box: list[float], mask: np.ndarray | None = None,
                     alpha: float = 0.45) -> np.ndarray:
    """uint8, the original's size: the heatmap (S, S) of the model's view mapped back onto the
    original image inside box ([top, left, height, width], view_box), the image around it as it
    is, the box drawn in VIEW_COLOUR and the lesion mask's outline (original size) in white."""
    import cv2
    from matplotlib import colormaps

    rows, cols = original.shape[:2]
    top, left, height, width = box
    size_y, size_x = heatmap.shape
    # heat pixel (x + 0.5) lands at left + (x + 0.5) * width / size_x in the original: half-pixel centres
    matrix = np.array([[width / size_x, 0, left + 0.5 * width / size_x - 0.5],
                       [0, height / size_y, top + 0.5 * height / size_y - 0.5]])
    heat = cv2.warpAffine(np.clip(heatmap, 0, 1).astype(np.float32), matrix, (cols, rows), flags=cv2.INTER_LINEAR)
    y, x = np.ogrid[:rows, :cols]
    seen = (y + 0.5 > top) & (y + 0.5 < top + height) & (x + 0.5 > left) & (x + 0.5 < left + width)
    colours = (colormaps["jet"](heat)[..., :3] * 255).astype(np.float32)
    out = original.astype(np.float32)
    out = np.where(seen[..., None], (1 - alpha) * out + alpha * colours, out)
    out = np.round(out).astype(np.uint8)
    if mask is not None:
        out[transforms.mask_outline(np.asarray(mask) != 0)] = (255, 255, 255)
    thickness = max(1, round(min(rows, cols) / 128))
    corner = (int(round(left)), int(round(top)))
    far = (int(round(left + width)) - 1, int(round(top + height)) - 1)
    cv2.rectangle(out, corner, far, VIEW_COLOUR, thickness)
    return out


def write_explanation(explanation: Explanation, out_dir) -> Path:
    """DIR/heatmap.png (the overlay on the original, the model's view marked), DIR/heatmap.npy
    (float32 (S, S), the model's view, 0..1), DIR/explain.json."""
    from PIL import Image

    from lesion_core import runs

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = _png_bytes(Image.fromarray(explanation.overlay()))
    paths.atomic_write_bytes(out_dir / "heatmap.png", png)
    buffer = io.BytesIO()
    np.save(buffer, explanation.heatmap.astype(np.float32))
    paths.atomic_write_bytes(out_dir / "heatmap.npy", buffer.getvalue())
    runs.atomic_write_json(out_dir / "explain.json", explanation.to_json())
    return out_dir


def _png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- a whole split


def explain_split(run_dir, split: str, method: str = DEFAULT_METHOD, data_root=None, batch_size: int = 16,
                  calibrated: bool = True, wrap=None) -> dict:
    """{id: (focus, peak_in_lesion)} for every image of a run's split, heatmaps of the
    predicted class; images without a mask get (None, None)."""
    from lesion_core import data

    explainer = Explainer(run_dir, method, calibrated)
    records = settings.load_data(explainer.config, root_override=data_root).split(split)
    max_side = explainer.config["max_side"] or round(settings.image_size(explainer.config) * 8 / 7)
    dataset = data.LesionDataset(records, transform=explainer.pipeline, max_side=max_side)
    out = {}
    starts = range(0, len(dataset), batch_size)
    for start in (wrap(starts) if wrap else starts):
        samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        heat, _ = explainer.heatmaps(torch.stack([s["image"] for s in samples]))
        for sample, h in zip(samples, heat):
            view_mask = _squeeze_mask(sample["mask"])
            focus, peak = focus_score(h, view_mask)
            out[sample["id"]] = (focus, peak, lesion_share(view_mask) if focus is not None else None)
    return out


def summarize(focus_by_id: dict, labels_by_id: dict | None = None, correct_by_id: dict | None = None,
              method: str = DEFAULT_METHOD) -> dict:
    """metrics_<split>.json's "explain": mean focus, share with focus < 0.5, pointing-game hit
    rate and the mean focus per true class (right and wrong), over the n_scored images whose
    focus is defined (a mask, and a heatmap with some positive mass) of n_images."""
    scored = {i: v for i, v in focus_by_id.items() if v[0] is not None}
    focus = np.array([v[0] for v in scored.values()], dtype=float)
    hits = np.array([v[1] for v in scored.values()], dtype=bool)
    out = {"method": method, "n_images": len(focus_by_id), "n_scored": len(scored),
           "mean_focus": float(focus.mean()) if focus.size else math.nan,
           "share_focus_below_0_5": float((focus < 0.5).mean()) if focus.size else math.nan,
           "pointing_game": float(hits.mean()) if hits.size else math.nan}
    shares = np.array([v[2] if len(v) > 2 and v[2] is not None else math.nan for v in scored.values()], dtype=float)
    if shares.size and not np.isnan(shares).all():
        out["mean_lesion_share"] = float(np.nanmean(shares))
        out["focus_lift"] = float(np.nanmean(focus) / np.nanmean(shares))  # 1.0: no preference for the lesion
    if labels_by_id:
        by_class = {}
        for i, v in scored.items():
            f = v[0]
            outcome = "right" if (correct_by_id or {}).get(i, True) else "wrong"
            by_class.setdefault(labels_by_id[i], {}).setdefault(outcome, []).append(f)
        out["mean_focus_by_class"] = {c: {k: float(np.mean(v)) for k, v in d.items()} for c, d in by_class.items()}
    return out


def add_focus_columns(path, focus_by_id: dict) -> None:
    """Add (or replace) the focus and peak_in_lesion columns of a predictions CSV by id;
    empty cells where an image has no score."""
    from lesion_core import csvsafe, runs

    with open(path, newline="", encoding="utf-8") as handle:
        rows = csvsafe.read_rows(handle.read())
    header, body = rows[0], rows[1:]
    keep = [i for i, name in enumerate(header) if name not in ("focus", "peak_in_lesion", "lesion_share")]
    id_column = header.index("id")
    out = [[header[i] for i in keep] + ["focus", "peak_in_lesion", "lesion_share"]]
    for row in body:
        focus, peak, share = (tuple(focus_by_id.get(row[id_column], ())) + (None, None, None))[:3]
        out.append([row[i] for i in keep] + ["" if focus is None else f"{focus:.4f}",
                                             "" if peak is None else str(bool(peak)),
                                             "" if share is None else f"{share:.4f}"])
    runs.atomic_write_text(path, csvsafe.write_rows(out))
