"""Scoring: a run plus images (and masks and metadata) in, probabilities out, as the run
itself scored its images: its evaluation pipeline, its TTA setting, its metadata prior and,
unless told otherwise, its calibration temperature."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from lesion_core import metrics, models, transforms
from lesion_core.errors import TrainingError, TransformError
from lesion_core.i18n import N_
from lesion_core.inference import prior as patient_prior
from lesion_core.inference.model import forward, inference_settings, load_run_model
from lesion_core.inference.temperature import apply_temperature, read_temperature
from lesion_core.inference.tta import mean_softmax
from lesion_core.settings import image_size, load_data, make_loader, recorded_split


def predict_loader(model: nn.Module, loader: DataLoader, device: torch.device, amp_dtype=None,
                   channels_last: bool = False, wrap: Callable | None = None,
                   tta: bool = False) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids, labels int64 (N,), softmax probabilities float32 (N, C)) of model over loader.

    wrap: optional iterable -> iterable around the loader (e.g. a tqdm progress bar);
    tta: the mean softmax over the 8 flips/90-degree rotations (inference.tta).
    """
    model.eval()
    ids, labels, probs = [], [], []
    with torch.no_grad():
        for images, targets, batch_ids in (wrap(loader) if wrap else loader):
            probs.append(softmax_batch(model, images, (device, amp_dtype, channels_last), tta).cpu())
            labels.append(targets)
            ids += batch_ids
    return ids, torch.cat(labels).numpy(), torch.cat(probs).numpy()


def softmax_batch(model: nn.Module, images: torch.Tensor, settings: tuple, tta: bool) -> torch.Tensor:
    """Softmax probabilities (B, C) of a batch of model inputs (B, 3, S, S) with settings
    (inference_settings), the mean over the 8 flips/rotations when tta."""
    if tta:
        return mean_softmax(lambda batch: forward(model, batch, *settings), images)
    return torch.softmax(forward(model, images, *settings), dim=1)


_MODEL_CACHE: dict = {}  # (run folder, best.pt mtime) -> (model, pipeline, class names, settings)


def predict_image(run_dir, image: np.ndarray, mask: np.ndarray | None = None, calibrated: bool = True,
                  tta: bool | None = None, meta: dict | None = None, prior: bool = True) -> dict:
    """{class name: probability} for one uint8 (H, W, 3) image with the run's best model;
    averaged over 8 flips/rotations when tta (None: as the run's config says); combined with
    the patient's metadata (age, sex, site as data.patient_meta has them; None: unknown) when
    the run has a patient model (unless prior is False: the image alone, as an export gives it);
    scaled by the run's calibration.json unless calibrated is False."""
    run_dir = Path(run_dir).resolve()
    key = (str(run_dir), (run_dir / "best.pt").stat().st_mtime_ns if (run_dir / "best.pt").exists() else None)
    if key not in _MODEL_CACHE:
        model, config = load_run_model(run_dir)
        entry = models.MODELS[config["model"]["name"]]
        spec = transforms.finalize_spec(config["eval_augment"], image_size(config), entry.mean, entry.std)
        if len(_MODEL_CACHE) >= 4:
            _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
        _MODEL_CACHE[key] = (model, transforms.build_pipeline(spec), config["data"]["class_names"],
                             inference_settings(config), config["tta"])
    model, pipeline, class_names, settings, run_tta = _MODEL_CACHE[key]
    tta = run_tta if tta is None else tta
    if mask is None and transforms.needs_mask(pipeline.spec):
        raise TransformError(N_("run {run} was trained on lesion crops, so it classifies an image cropped to its "
                                "lesion: give the lesion mask too (predict --mask MASK, or the mask upload)").format(
            run=run_dir.name))
    sample = pipeline({"image": np.ascontiguousarray(image, dtype=np.uint8), "mask": mask, "label": 0, "id": "image"})
    with torch.no_grad():
        probs = softmax_batch(model, sample["image"].unsqueeze(0), settings, tta).numpy()
    if prior:
        probs = patient_prior.apply_run(run_dir, probs, [meta or {}], len(class_names))
    if calibrated:
        probs = apply_temperature(probs, read_temperature(run_dir))
    return {name: float(p) for name, p in zip(class_names, probs[0])}


def evaluate_run(run_dir, split: str = "test", data_root=None, wrap: Callable | None = None,
                 allow_missing: bool = False, calibrated: bool = True, tta: bool | None = None,
                 metadata: bool = True) -> dict:
    """compute_metrics() of the run's best model on one split of its recorded data split, on the
    probabilities its metrics_<split>.json were computed on: the raw ones (after the metadata
    prior, before calibration), so that re-scoring reproduces the stored metrics (result
    "probabilities": "raw"). Also "ids", "labels", "raw_probs" (combined with the metadata as the
    run's own predictions are, unless metadata is False: the image alone), "temperature" (the
    run's, 1.0 when calibrated is False or it has none), "probs" (raw_probs scaled by it, what
    predict would show), "tta" (the setting used) and "missing": recorded ids that are missing
    or unreadable now; wrap and tta as in predict_loader.

    Refuses (TrainingError) when recorded images are missing or unreadable, unless
    allow_missing: a score over a silent subset would not be the run's score.
    """
    model, config = load_run_model(run_dir)
    if split not in ("train", "val", "test"):
        raise TrainingError(N_("unknown split {split}; use val or test").format(split=repr(split)))
    lesion = load_data(config, root_override=data_root)
    records = lesion.split(split)
    recorded = (recorded_split(config["data"]) or {}).get("splits", {}).get(split, [])
    loaded = {r.id for r in records}
    missing = [sample_id for sample_id in recorded if sample_id not in loaded]
    if missing and not allow_missing:
        raise TrainingError(N_(
            "{n} of the {total} recorded {split} images are missing or unreadable (first: {first}); restore them "
            "(or give --data where the dataset is now), or pass --allow-missing to score the other {left}").format(
            n=len(missing), total=len(recorded), split=split, first=", ".join(map(str, missing[:3])),
            left=len(records)))
    if not records:
        raise TrainingError(N_("the {split} split of this run is empty").format(split=split))
    tta = config["tta"] if tta is None else tta
    ids, labels, probs = score_records(run_dir, records, model, config, wrap=wrap, tta=tta, metadata=metadata)
    temperature = read_temperature(run_dir) if calibrated else 1.0
    result = metrics.compute_metrics(labels, probs, lesion.class_names)
    result.update(ids=ids, labels=labels, raw_probs=probs, temperature=temperature, probabilities="raw", tta=tta,
                  probs=apply_temperature(probs, temperature))
    result["missing"] = missing
    return result


def score_records(run_dir, records, model: nn.Module, config: dict, wrap: Callable | None = None,
                  tta: bool | None = None, metadata: bool = True) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids, labels, raw probabilities (N, C)) of a run's model on records (data.Record) as the
    run scores its own images: its evaluation pipeline and loader, its TTA setting (None: the
    config's), then its metadata prior unless metadata is False. The one loop behind
    evaluate_run, a stopped run's evaluation and an external test set."""
    loader = make_loader(records, config["eval_augment"], config, False)
    tta = config["tta"] if tta is None else tta
    ids, labels, probs = predict_loader(model, loader, *inference_settings(config), wrap=wrap, tta=tta)
    if metadata:
        probs = patient_prior.apply_run(run_dir, probs, patient_prior.metas_of(records, ids),
                                        len(config["data"]["class_names"]))
    return ids, labels, probs


def stored_differences(result: dict, stored: dict | None, run_tta: bool) -> list[str]:
    """What differs between an evaluate_run() result and the split's stored metrics_<split>.json
    (beyond 1e-6), each with the reasons that explain it: [] when the re-score reproduces it."""
    if not stored:
        return []
    found = []
    for key in ("mean_auc", "macro_auc", "accuracy", "balanced_accuracy"):
        now, then = result.get(key), stored.get(key)
        if isinstance(now, float) and isinstance(then, (int, float)) and np.isfinite(now) and np.isfinite(then) \
                and abs(now - then) > 1e-6:
            found.append(f"{key} {now:.6f} now, {float(then):.6f} stored")
    if len(result.get("ids", [])) != stored.get("n", len(result.get("ids", []))):
        found.append(f"{len(result['ids'])} images now, {stored['n']} stored")
    if not found:
        return []
    reasons = []
    if bool(result.get("tta")) != bool(run_tta):
        reasons.append("scored with test-time augmentation " + ("on" if result.get("tta") else "off")
                       + f", the run scored with it {'on' if run_tta else 'off'}")
    if result.get("missing"):
        reasons.append(f"{len(result['missing'])} recorded images missing")
    if not reasons:
        reasons.append("the same weights, images and settings: the images, the weights or the library versions "
                       "changed since the run scored them")
    return found + reasons
