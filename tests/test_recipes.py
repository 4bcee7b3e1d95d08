"""Recipes (quick, standard), the learning-rate schedule with warm-up, label smoothing, TTA
scoring and the time estimate shown before Launch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lesion_core import inference, runs
from lesion_core.cli import main
from lesion_core.evaluation import bootstrap
from lesion_core import errors
from lesion_core import settings
from lesion_core import training
from lesion_core.training import duration

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"model": {"name": "lenet", "weights": "random"}, "image_size": 32, "batch_size": 8,
        "augment": [{"name": "RandomResizedCrop", "params": {"size": 32, "scale_min": 0.5}}], "eval_augment": []}


def config_with(**overrides) -> dict:
    return settings.merge_config(settings.default_config(), overrides)


def test_warm_up_rises_linearly_then_cosine_anneals_to_zero():
    config = config_with(epochs=5, scheduler={"name": "cosine", "warmup_epochs": 1})
    factors = [training.lr_factor(config, step, 10) for step in range(50)]
    assert factors[0] == pytest.approx(0.1) and factors[4] == pytest.approx(0.5) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)  # the cosine starts where the warm-up ends
    assert factors[30] == pytest.approx(0.5)  # half-way through the 4 annealing epochs
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert training.lr_factor(config, 50, 10) == pytest.approx(0.0)


def test_step_schedule_still_steps_once_per_step_size_epochs():
    config = config_with(epochs=6, scheduler={"name": "step", "step_size": 2, "gamma": 0.5})
    assert [training.lr_factor(config, epoch * 4, 4) for epoch in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert training.lr_factor(config, 7, 4) == 1 and training.lr_factor(config, 11, 4) == 0.5  # held within epochs


def test_the_learning_rate_is_stepped_every_batch_and_recorded_per_epoch(demo_root, tmp_path):
    config = dict(TINY, data={"root": str(demo_root), "val_fraction": 0.3}, epochs=3,
                  scheduler={"name": "cosine", "warmup_epochs": 1})
    run_dir = training.run_training(config, tmp_path)
    recorded = settings.validate_config(runs.read_config(run_dir))
    steps = len(settings.make_loader(settings.load_data(recorded).split("train"), recorded["augment"], recorded, True))
    rows = [r for r in runs.read_history(run_dir) if r["phase"] == "train"]
    lr = settings.validate_config(config)["optim"]["lr"]
    expected = [lr * training.lr_factor(settings.validate_config(config), (epoch - 1) * steps, steps) for epoch in (1, 2, 3)]
    assert [r["lr"] for r in rows] == pytest.approx(expected)
    assert rows[0]["lr"] < rows[1]["lr"] > rows[2]["lr"]  # warming up, then annealing


def test_an_old_checkpoints_per_epoch_schedule_resumes_at_the_right_rate():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    config = config_with(epochs=4)
    scheduler = training.make_scheduler(config, optimizer, 10)
    training.resume_schedule(scheduler, optimizer, 20)  # after epoch 2 of 4
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * training.lr_factor(config, 21, 10))


@pytest.mark.parametrize("override, message", [
    ({"optim": {"label_smoothing": 1.0}}, r"optim.label_smoothing must be a number from 0 to 0.99, got 1.0"),
    ({"scheduler": {"warmup_epochs": -1}}, "scheduler.warmup_epochs must be a number from 0 to 50, got -1"),
    ({"tta": "yes"}, "tta must be true or false"),
    ({"recipe": "fast"}, "unknown recipe 'fast'"),
    ({"recipe": ""}, "unknown recipe ''"),
])
def test_bad_recipe_settings_are_refused(override, message):
    with pytest.raises(errors.TrainingError, match=message):
        settings.validate_config(override)


def test_recipes_start_from_the_defaults_and_the_data_picks_one():
    assert settings.recipe_for("demo") == "quick" and settings.recipe_for("/data/isic") == "standard"
    quick, standard = settings.recipe_config("quick"), settings.recipe_config("standard")
    assert (quick["image_size"], quick["epochs"], quick["tta"], quick["recipe"]) == (96, 3, False, "quick")
    assert standard["tta"] is True and standard["recipe"] == "standard"
    assert standard["scheduler"]["warmup_epochs"] > 0 and standard["optim"]["label_smoothing"] > 0
    assert settings.validate_config(standard)["model"]["name"] == "efficientnet_lite0"


def test_cli_train_on_a_folder_starts_from_standard_and_flags_override_it(demo_root, tmp_path):
    assert main(["train", "--data", str(demo_root), "--model", "lenet", "--pretrained", "random",
                 "--image-size", "32", "--batch-size", "8", "--epochs", "1", "--label-smoothing", "0.2",
                 "--out", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    config = runs.read_config(run_dir)
    standard = settings.recipe_config("standard")
    assert config["recipe"] == "standard" and config["tta"] is True
    assert config["scheduler"]["warmup_epochs"] == standard["scheduler"]["warmup_epochs"]
    assert config["optim"]["label_smoothing"] == 0.2 and config["epochs"] == 1
    assert main(["train", "--data", str(demo_root), "--recipe", "quick", "--model", "lenet", "--pretrained",
                 "random", "--image-size", "32", "--epochs", "1", "--no-tta", "--out", str(tmp_path / "quick")]) == 0
    (quick_dir,) = (tmp_path / "quick").iterdir()
    assert runs.read_config(quick_dir)["recipe"] == "quick" and runs.read_config(quick_dir)["tta"] is False


def test_a_tta_run_scores_its_images_averaged_over_the_eight_views(demo_root, tmp_path):
    config = dict(TINY, data={"root": str(demo_root), "val_fraction": 0.3, "test_fraction": 0.2}, epochs=1,
                  tta=True, optim={"label_smoothing": 0.1})
    run_dir = training.run_training(config, tmp_path)
    ids, labels, saved, names = bootstrap.load_predictions(run_dir, "test")
    views = inference.evaluate_run(run_dir, "test", calibrated=False)  # None: as the run was scored
    plain = inference.evaluate_run(run_dir, "test", calibrated=False, tta=False)
    order = {sample_id: i for i, sample_id in enumerate(views["ids"])}
    assert np.allclose(views["raw_probs"][[order[i] for i in ids]], saved, atol=2e-6)
    assert not np.allclose(plain["raw_probs"], views["raw_probs"], atol=1e-4)


def test_the_estimate_uses_a_finished_runs_measured_speed_else_the_reference(demo_root, tmp_path):
    config = settings.validate_config(dict(TINY, data={"root": str(demo_root)}, epochs=2))
    guess = duration.estimate(config, 1000, [])
    assert guess["basis"] == "reference" and guess["seconds"] > 0
    longer = duration.estimate(dict(config, epochs=4), 1000, [])["seconds"]
    per_epoch = longer - guess["seconds"]  # two more epochs; start-up and the final scoring are once
    assert 0 < per_epoch < guess["seconds"] and guess["seconds"] - per_epoch > duration.STARTUP_S
    run_dir = training.run_training(config, tmp_path)
    listed = runs.list_runs(tmp_path)
    measured = duration.estimate(config, 1000, listed)
    assert measured["basis"] == "run" and measured["run"] == run_dir.name
    history = runs.read_history(run_dir)
    train_rate = next(r["images_per_s"] for r in history if r["phase"] == "train" and r["epoch"] == 2)
    assert measured["seconds"] > 2 * 700 / train_rate  # at least the training passes at that speed
    other_size = duration.estimate(dict(config, image_size=48), 1000, listed)
    assert other_size["basis"] == "reference"
    lite2 = duration.estimate(dict(config, image_size=48, model=dict(config["model"], name="efficientnet_lite2")),
                             1000, listed)
    assert lite2["basis"] == "reference" and lite2["seconds"] > other_size["seconds"]  # a larger net, same side
    # a one-process run says nothing of a torchrun job's speed
    assert duration.estimate(dict(config, processes=2), 1000, listed)["basis"] == "reference"
