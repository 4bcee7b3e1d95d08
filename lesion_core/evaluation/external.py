"""A run's best model on data it never saw: a whole external test set, or loose image files."""

from __future__ import annotations

import re
from pathlib import Path
from collections.abc import Callable

from lesion_core import csvsafe, data, inference, metrics, runs, transforms
from lesion_core.errors import DataError, LesionLabError, TransformError
from lesion_core.i18n import N_
from lesion_core.inference.score import score_records
from lesion_core.inference.temperature import read_temperature
from lesion_core.evaluation import confidence

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def external_name(data_dir) -> str:
    """A file-name-safe name for an external dataset: its folder's name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(data_dir).resolve().name).strip("._") or "data"


def evaluate_external(run_dir, data_dir, name: str | None = None, wrap: Callable | None = None) -> dict:
    """compute_metrics() of the run's best model on every usable image of another dataset (all
    its splits), written to predictions_external_<name>.csv and metrics_external_<name>.json in
    the run folder; adds ids, name, paths, n_excluded (rows the load refused) and no_mask
    (ids left out because the run's evaluation crops to the lesion and they have no mask)."""
    run_dir = Path(run_dir)
    model, config = inference.load_run_model(run_dir)
    class_names = list(config["data"]["class_names"])
    lesion = data.load_dataset(data_dir, class_names=class_names, val_fraction=0.0, test_fraction=0.0)
    records, no_mask = lesion.records, []
    if transforms.needs_mask(config["eval_augment"]):
        no_mask = [r.id for r in records if r.mask_path is None]
        records = [r for r in records if r.mask_path is not None]
    if not records:
        raise DataError(N_("no image of {folder} can be scored: this run crops to the lesion and "
                           "none of its {n} images has a mask").format(folder=data_dir, n=len(no_mask)))
    ids, labels, probs = score_records(run_dir, records, model, config, wrap=wrap)  # as the run scores its own
    result = metrics.compute_metrics(labels, probs, class_names)
    name = name or external_name(data_dir)
    predictions = run_dir / f"predictions_external_{name}.csv"
    summary = run_dir / f"metrics_external_{name}.json"
    inference.write_predictions(predictions, ids, labels, probs, class_names, temperature=read_temperature(run_dir))
    runs.atomic_write_json(summary, metrics.metrics_summary(result, ids)
                           | {"data": str(Path(data_dir).resolve()), "no_mask": no_mask})
    return result | {"ids": ids, "name": name, "predictions_path": predictions, "metrics_path": summary,
                     "n_excluded": len(lesion.report.problems), "no_mask": no_mask}


def run_needs_mask(config: dict) -> bool:
    """Whether a run's evaluation pipeline needs the lesion mask (False when config.json is unusable)."""
    try:
        return transforms.needs_mask(config.get("eval_augment") or [])
    except LesionLabError:
        return False


def collect_images(inputs) -> list[Path]:
    """Image files named by inputs: files as given; a folder's .jpg/.jpeg/.png files (its
    images/ subfolder when it has one, as a dataset does), sorted. DataError for what is missing."""
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            folder = item / "images" if (item / "images").is_dir() else item
            files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DataError(N_("no .jpg or .png images in folder {folder}").format(folder=folder))
            found += files
        elif item.is_file():
            found.append(item)
        else:
            raise DataError(N_("image not found: {file}").format(file=item))
    return found


def find_mask(image_path: Path, masks_dir=None) -> Path | None:
    """The lesion mask of an image: <stem>.png or <stem>_segmentation.png in masks_dir (default:
    the masks/ folder beside a dataset's images/ folder), or None."""
    image_path = Path(image_path)
    if masks_dir is None and image_path.parent.name == "images":
        masks_dir = image_path.parent.parent / "masks"
    if masks_dir is None:
        return None
    for candidate in (f"{image_path.stem}.png", f"{image_path.stem}_segmentation.png"):
        if (Path(masks_dir) / candidate).is_file():
            return Path(masks_dir) / candidate
    return None


def predict_files(run_dir, paths, masks_dir=None, mask=None, meta: dict | None = None,
                  calibrated: bool = True, wrap=None) -> tuple[list[dict], list[str]]:
    """(rows, problems): one row per image that could be classified ({"file", class: probability
    ..., "pred", "top_p", "uncertain"}), one message per image that could not (unreadable, or no
    mask where the run needs one). mask: one mask file for a single image; meta: the patient's
    age, sex and site (data.patient_meta), for a run trained with metadata; wrap: optional
    iterable -> iterable around the paths (a progress bar)."""
    rows, problems = [], []
    for path in (wrap(paths) if wrap else paths):
        try:
            image = data.read_image(path)
            mask_path = mask or find_mask(path, masks_dir)
            lesion = data.read_mask(mask_path, image.shape[:2]) if mask_path else None
            probs = inference.predict_image(run_dir, image, lesion, meta=meta, calibrated=calibrated)
        except (DataError, TransformError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        told = confidence.describe(probs)
        rows.append({"file": str(path), **probs, "pred": told["top"], "top_p": told["top_p"],
                     "uncertain": told["uncertain"]})
    return rows, problems


def predictions_csv(rows: list[dict], class_names) -> str:
    """CSV text: file, prob_<class> per class, pred, uncertain (as predict --out writes it)."""
    table = [["file"] + [f"prob_{name}" for name in class_names] + ["pred", "uncertain"]]
    for row in rows:
        table.append([row["file"]] + [f"{row[name]:.6f}" for name in class_names]
                     + [row["pred"], "yes" if row["uncertain"] else "no"])
    return csvsafe.write_rows(table)
