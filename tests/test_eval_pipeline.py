"""Evaluation sees the kind of image training saw: lesion crops stay, randomness goes."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from lesion_core import data, inference, runs, transforms
from lesion_core.errors import LesionLabError, TrainingError
from lesion_core import settings
from lesion_core import training

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def names(spec) -> list[str]:
    return [s["name"] for s in spec]


def test_eval_spec_keeps_the_lesion_crop_and_drops_random_steps():
    spec = transforms.eval_spec(transforms.preset("notebook_train", 96))
    # CropByMask(10), then the rotation's crop to the lesion at angle 0: one crop, not two
    assert names(spec) == ["CropByMask", "Rescale", "CenterCrop", "ToTensor", "Normalize"]
    assert spec[0]["params"]["border"] == 0
    assert spec[2]["params"]["size"] == 96


def test_two_lesion_crops_in_a_row_become_the_one_that_gives_the_same_pixels(isic_dev_root):
    both = [{"name": "CropByMask", "params": {"border": [10, 4]}}, {"name": "CropByMask", "params": {"border": [3, 8]}}]
    merged = transforms.eval_spec(both)
    assert merged == [{"name": "CropByMask", "params": {"border": [3, 4]}}]
    for record in data.load_dataset(isic_dev_root).records[:20]:
        image = data.read_image(record.image_path, None)
        sample = {"image": image, "mask": data.read_mask(record.mask_path, image.shape[:2]), "label": 0, "id": record.id}
        twice, once = transforms.build_pipeline(both)(sample), transforms.build_pipeline(merged)(sample)
        np.testing.assert_array_equal(twice["image"], once["image"])


def test_eval_spec_of_the_default_recipe_is_the_eval_preset():
    assert transforms.eval_spec(transforms.preset("default_train", 96)) == transforms.validate_spec(
        transforms.preset("eval", 96))


@pytest.mark.parametrize("name", [n for n, info in transforms.REGISTRY.items() if info.random])
def test_eval_spec_has_no_random_step(name):
    spec = transforms.eval_spec([{"name": name}])
    assert not any(transforms.REGISTRY[s["name"]].random for s in spec)


def test_config_derives_a_lesion_cropping_eval_pipeline():
    config = settings.validate_config({"augment": "notebook_train", "image_size": 64})
    assert transforms.crops_to_lesion(config["eval_augment"])
    assert "RandomChangeSkin" not in names(config["eval_augment"])


def test_a_whole_image_eval_pipeline_under_lesion_crops_is_refused():
    with pytest.raises(TrainingError, match="crops to the lesion but the evaluation pipeline does not"):
        settings.validate_config({"augment": "notebook_train", "eval_augment": "eval"})


def _first_test_sample(run_dir):
    lesion = settings.load_data(runs.read_config(run_dir))
    record = lesion.split("test")[0]
    image = data.read_image(record.image_path)
    return record, image, data.read_mask(record.mask_path, image.shape[:2])


def test_a_cropbymask_trained_run_evaluates_on_lesion_crops(demo_root, tmp_path):
    """Cropping the image to its lesion beforehand changes nothing when evaluation crops to the
    lesion itself; it changes the prediction when evaluation looks at the whole image."""
    config = {"data": {"root": str(demo_root), "max_size": 30, "val_fraction": 0.3, "test_fraction": 0.3},
              "model": {"name": "lenet", "weights": "random"}, "image_size": 32, "epochs": 1, "batch_size": 8,
              "augment": [{"name": "CropByMask", "params": {"border": 0}},
                          {"name": "RandomHorizontalFlip", "params": {"p": 0.5}}]}
    run_dir = training.run_training(config, tmp_path / "runs")
    assert names(runs.read_config(run_dir)["eval_augment"]) == ["CropByMask"]
    record, image, mask = _first_test_sample(run_dir)
    rows = np.nonzero(mask.any(axis=1))[0]
    cols = np.nonzero(mask.any(axis=0))[0]
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    assert image[crop].shape[:2] != image.shape[:2]  # the lesion does not fill the image
    whole = inference.predict_image(run_dir, image, mask)
    cropped = inference.predict_image(run_dir, np.ascontiguousarray(image[crop]), np.ascontiguousarray(mask[crop]))
    assert whole == pytest.approx(cropped, abs=1e-6)
    with open(run_dir / "predictions_test.csv", newline="") as f:
        assert record.id in {row["id"] for row in csv.DictReader(f)}


def test_predicting_without_a_mask_under_lesion_crops_says_what_to_give(demo_root, tmp_path):
    config = {"data": {"root": str(demo_root), "max_size": 24, "val_fraction": 0.3, "test_fraction": 0.3},
              "model": {"name": "lenet", "weights": "random"}, "image_size": 32, "epochs": 1, "batch_size": 8,
              "augment": [{"name": "CropByMask", "params": {"border": 2}}]}
    run_dir = training.run_training(config, tmp_path / "runs")
    _record, image, _mask = _first_test_sample(run_dir)
    with pytest.raises(LesionLabError, match="trained on lesion crops.*give the lesion mask"):
        inference.predict_image(run_dir, image, None)


def test_the_derived_eval_pipeline_resamples_once_to_the_run_size(isic_dev_root):
    # The Augmentations page's notebook_train ends at 224 (Rescale 256 -> RandomCrop 224); a 96-px
    # run used to score through CropByMask -> Rescale(256) -> CenterCrop(224) -> Rescale [96, 96].
    config = settings.validate_config({"augment": transforms.PRESETS["notebook_train"], "image_size": 96})
    final = transforms.finalize_spec(config["eval_augment"], 96, transforms.IMAGENET_MEAN, transforms.IMAGENET_STD)
    assert names(final) == ["CropByMask", "Rescale", "CenterCrop", "ToTensor", "Normalize"]
    assert final[1]["params"]["size"] == round(256 * 96 / 224) and final[2]["params"]["size"] == 96
    # A recorded pipeline (a run already trained) is finalised as it always was, so it scores the same.
    recorded = transforms.eval_spec(transforms.PRESETS["notebook_train"])
    assert names(transforms.finalize_spec(recorded, 96, transforms.IMAGENET_MEAN, transforms.IMAGENET_STD)) == [
        "CropByMask", "Rescale", "CenterCrop", "Rescale", "ToTensor", "Normalize"]
    # The same window of the lesion, one resample instead of two: the pixels barely differ.
    once = transforms.build_pipeline(transforms.image_steps(final))
    twice = transforms.build_pipeline(transforms.image_steps(
        transforms.finalize_spec(recorded, 96, transforms.IMAGENET_MEAN, transforms.IMAGENET_STD)))
    for record in data.load_dataset(isic_dev_root).records[:10]:
        image = data.read_image(record.image_path, None)
        sample = {"image": image, "mask": data.read_mask(record.mask_path, image.shape[:2]), "label": 0, "id": record.id}
        a, b = (np.asarray(p(sample)["image"], dtype=float) for p in (once, twice))
        assert a.shape == b.shape and a.shape[:2] == (96, 96)
        assert np.abs(a - b).mean() < 6  # of 255: resampling differences, not another window


@pytest.mark.parametrize("config", [{}, {"eval_augment": [{"name": "NoSuchStep", "params": {}}]},
                                    {"eval_augment": 3}, "damaged"])
def test_a_damaged_configs_pipeline_is_no_lesion_crop_rather_than_a_crash(config):
    # Results, Predictions and the export ask this of every run, damaged ones included.
    assert transforms.run_crops_to_lesion(config) is False
    assert transforms.run_crops_to_lesion({"eval_augment": [{"name": "CropByMask", "params": {"border": 0}}]})
