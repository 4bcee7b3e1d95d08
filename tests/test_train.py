"""Training engine: learning, run folder contents, reproducibility, stop/resume, NaN, launch."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from lesion_core import data, inference, locks, models, runs
from lesion_core.errors import LesionLabError, ModelError, TrainingError
from lesion_core import settings
from lesion_core import training
from tests.e2e_helpers import wait_for

AUGMENT = [
    {"name": "RandomResizedCrop", "params": {"size": 32, "scale_min": 0.5}},
    {"name": "RandomHorizontalFlip", "params": {"p": 0.5}},
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(root, **overrides) -> dict:
    """LeNet at 32 px on the demo data: a whole epoch takes a fraction of a second."""
    config = {
        "data": {"root": str(root), "val_fraction": 0.3},
        "model": {"name": "lenet", "weights": "random"},
        "optim": {"optimizer": "adamw", "lr": 0.01},
        "image_size": 32, "epochs": 2, "batch_size": 8,
        "augment": AUGMENT, "eval_augment": [],
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    return config


def learning_rows(history: list[dict]) -> list[dict]:
    """History without wall-clock measurements, which differ between identical runs."""
    return [{k: v for k, v in row.items() if k not in training.TIMING_KEYS} for row in history]


def stop_in_epoch_2(runs_dir: Path):
    """An on_batch callback: a stop request to the one run in runs_dir at epoch 2's second batch."""
    def stop(progress):
        if progress["epoch"] == 2 and progress["phase"] == "train" and progress["iteration"] == 2:
            (run_dir,) = runs_dir.iterdir()
            runs.request_stop(run_dir)
    return stop


def test_short_training_on_demo_data_learns(demo_root, tmp_path):
    # seed 0 (the default) clears these bars with room to spare with and without bf16 autocast
    run_dir = training.run_training(tiny_config(demo_root, epochs=15), tmp_path)
    history = runs.read_history(run_dir)
    val = [row for row in history if row["phase"] == "val"]
    train_rows = [row for row in history if row["phase"] == "train"]
    assert len(val) == 15
    assert train_rows[-1]["loss"] < 0.85 * train_rows[0]["loss"]
    assert min(row["loss"] for row in val) < 0.85 * val[0]["loss"]
    assert max(row["accuracy"] for row in val) >= 0.6  # chance is 1/3
    assert runs.read_status(run_dir)["best"]["value"] > 0.85


def test_run_folder_holds_everything(demo_root, tmp_path):
    run_dir = training.run_training(tiny_config(demo_root), tmp_path)
    status = runs.read_status(run_dir)
    assert status["state"] == "finished"
    assert status["best"]["metric"] == "val_isic2017_mean_auc"  # the 2017 classes' headline
    config = runs.read_config(run_dir)
    assert config["headline_metric"] == "isic2017_mean_auc"
    assert config["resolved"]["device"] == "cpu"
    assert config["resolved"]["versions"]["torch"] == torch.__version__
    assert config["data"]["class_names"] == list(data.CLASS_NAMES)
    assert sum(len(ids) for ids in config["data"]["split"]["splits"].values()) == 60

    history = runs.read_history(run_dir)
    assert [(r["epoch"], r["phase"]) for r in history] == [(1, "train"), (1, "val"), (2, "train"), (2, "val")]
    for row in history:
        assert set(row["auc"]) == set(data.CLASS_NAMES)
        assert row["images_per_s"] > 0 and row["iter_time_s"] > 0 and row["lr"] > 0

    best = models.load_checkpoint(run_dir / "best.pt")
    last = models.load_checkpoint(run_dir / "last.pt")
    assert best["epoch"] == status["best"]["epoch"]
    assert last["epoch"] == 2 and set(last) >= {"model", "optimizer", "scheduler", "epoch", "best"}
    for split in ("val", "test"):
        with open(run_dir / f"predictions_{split}.csv") as handle:
            rows = list(csv.DictReader(handle))
        names = ["nevus", "melanoma", "seborrheic keratosis"]
        # raw and calibrated probabilities, each in named columns (the temperature of calibration.json)
        assert list(rows[0]) == ["id", "label", *(f"prob_{n}" for n in names), *(f"cal_prob_{n}" for n in names),
                                 "pred"]
        assert [r["id"] for r in rows] == config["data"]["split"]["splits"][split]
        assert json.loads((run_dir / f"metrics_{split}.json").read_text())["n"] == len(rows)
    assert "epoch 2/2" in (run_dir / "train.log").read_text()
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob(".*"))


def test_metrics_equal_sklearn_on_saved_predictions(demo_root, tmp_path):
    run_dir = training.run_training(tiny_config(demo_root), tmp_path)
    with open(run_dir / "predictions_test.csv") as handle:
        rows = list(csv.DictReader(handle))
    names = list(data.CLASS_NAMES)
    labels = np.array([names.index(r["label"]) for r in rows])
    probs = np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows])
    saved = json.loads((run_dir / "metrics_test.json").read_text())
    expected = [roc_auc_score(labels == c, probs[:, c]) for c in range(3)]
    np.testing.assert_allclose(saved["auc"], expected, atol=1e-5)
    assert saved["mean_auc"] == pytest.approx(np.mean(expected[1:]), abs=1e-5)  # melanoma, keratosis
    assert saved["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == labels))
    assert [r["pred"] for r in rows] == [names[i] for i in probs.argmax(1)]
    # evaluate_run reproduces the same predictions from best.pt and the recorded split (the
    # CSV keeps the raw softmax; evaluate applies calibration.json unless told not to)
    result = inference.evaluate_run(run_dir, "test", calibrated=False)
    assert result["ids"] == [r["id"] for r in rows]
    np.testing.assert_allclose(result["confidence"], probs.max(1), atol=2e-6)  # CSV keeps 6 decimals
    np.testing.assert_allclose(result["auc"], expected, atol=1e-5)


def test_same_config_and_seed_give_the_same_history(demo_root, tmp_path):
    first = training.run_training(tiny_config(demo_root, seed=3), tmp_path / "a")
    second = training.run_training(tiny_config(demo_root, seed=3), tmp_path / "b")
    other = training.run_training(tiny_config(demo_root, seed=4), tmp_path / "c")
    assert learning_rows(runs.read_history(first)) == learning_rows(runs.read_history(second))
    assert learning_rows(runs.read_history(first)) != learning_rows(runs.read_history(other))


def test_stop_then_resume_ends_where_an_uninterrupted_run_ends(demo_root, tmp_path):
    config = tiny_config(demo_root, epochs=3)
    straight = training.run_training(config, tmp_path / "straight")

    runs_dir = tmp_path / "stopped"

    run_dir = training.run_training(config, runs_dir, on_batch=stop_in_epoch_2(runs_dir))
    status = runs.read_status(run_dir)
    assert status["state"] == "stopped"
    assert "--resume" in status["message"]
    assert models.load_checkpoint(run_dir / "last.pt")["epoch"] == 1
    assert models.load_checkpoint(run_dir / "best.pt")["epoch"] == 1
    assert not runs.stop_requested(run_dir)

    training.run_training(resume=run_dir)
    assert runs.read_status(run_dir)["state"] == "finished"
    assert learning_rows(runs.read_history(run_dir)) == learning_rows(runs.read_history(straight))
    for name in ("best.pt", "last.pt"):
        a = models.load_checkpoint(straight / name)["model"]
        b = models.load_checkpoint(run_dir / name)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_weight_average_ramps_its_decay_up_and_copies_buffers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    average = training.WeightAverage(model, decay=0.5)
    expected = [p.detach().clone() for p in model.parameters()]
    for step in (1, 2, 3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model[1].running_mean.fill_(step)
        average.update(model)
        decay = min(0.5, (1 + step) / (10 + step))  # 0.18, 0.25, 0.31: the ramp, not 0.5 yet
        expected = [decay * e + (1 - decay) * p.detach() for e, p in zip(expected, model.parameters())]
        for mine, want in zip(average.module.parameters(), expected):
            torch.testing.assert_close(mine, want)
        assert torch.equal(average.module[1].running_mean, torch.full((2,), float(step)))
    assert average.steps == 3


def test_with_ema_the_averaged_weights_are_validated_kept_and_resumed(demo_root, tmp_path):
    config = tiny_config(demo_root, epochs=3, ema=0.9)
    straight = training.run_training(config, tmp_path / "straight")
    last = models.load_checkpoint(straight / "last.pt")
    n_train = len(runs.read_config(straight)["data"]["split"]["splits"]["train"])
    assert last["ema"]["steps"] == 3 * (n_train // 8 + (n_train % 8 > 1))  # one update per optimiser step
    averaged = last["ema"]["model"]
    assert any(not torch.equal(averaged[k], last["model"][k]) for k in averaged)  # an average, not the weights

    runs_dir = tmp_path / "stopped"
    run_dir = training.run_training(config, runs_dir, on_batch=stop_in_epoch_2(runs_dir))
    last, best = (models.load_checkpoint(run_dir / name) for name in ("last.pt", "best.pt"))
    assert last["epoch"] == best["epoch"] == 1  # best.pt holds the average the epoch was validated with
    assert all(torch.equal(last["ema"]["model"][k], best["model"][k]) for k in best["model"])
    training.run_training(resume=run_dir)
    assert learning_rows(runs.read_history(run_dir)) == learning_rows(runs.read_history(straight))
    resumed = models.load_checkpoint(run_dir / "last.pt")["ema"]["model"]
    assert all(torch.equal(averaged[k], resumed[k]) for k in averaged)


def test_a_run_with_ema_refuses_to_resume_from_a_checkpoint_without_an_average(demo_root, tmp_path):
    run_dir = training.run_training(tiny_config(demo_root, epochs=2), tmp_path)
    checkpoint = models.load_checkpoint(run_dir / "last.pt")
    config = runs.read_config(run_dir)
    config["ema"] = 0.9
    runs.atomic_write_json(run_dir / "config.json", config)
    checkpoint["epoch"] = 1
    torch.save(checkpoint, run_dir / "last.pt")
    status = runs.read_status(run_dir)
    runs.atomic_write_json(run_dir / "status.json", dict(status, state="stopped"))
    with pytest.raises(TrainingError, match="has no weight average"):
        training.run_training(resume=run_dir)


def test_diverging_loss_fails_with_learning_rate_advice_and_keeps_best(demo_root, tmp_path):
    # epoch 1 trains at lr 0.01; StepLR then multiplies it by 1e8, so epoch 2 diverges
    config = tiny_config(demo_root, epochs=3, optim={"optimizer": "sgd", "lr": 0.01},
                         scheduler={"name": "step", "step_size": 1, "gamma": 1e8})
    with pytest.raises(TrainingError, match="learning rate"):
        training.run_training(config, tmp_path)
    (run_dir,) = tmp_path.iterdir()
    status = runs.read_status(run_dir)
    assert status["state"] == "failed"
    assert "learning rate" in status["message"]
    best = models.load_checkpoint(run_dir / "best.pt")
    assert best["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in best["model"].values() if t.is_floating_point())
    model, _ = inference.load_run_model(run_dir)
    assert isinstance(model, torch.nn.Module)


@pytest.mark.parametrize("override, message", [
    ({"model": {"name": "resnet9000"}}, "unknown model 'resnet9000'; choose one of: efficientnet_lite0"),
    ({"optim": {"lr": 0}}, "optim.lr must be a number from 1e-07 to 10, got 0"),
    ({"optim": {"lr": -0.1}}, "optim.lr must be a number from 1e-07 to 10, got -0.1"),
    ({"optim": {"optimizer": "rmsprop"}}, "unknown optim.optimizer 'rmsprop'; use one of: sgd, adam, adamw"),
    ({"scheduler": {"name": "plateau"}}, "unknown scheduler.name 'plateau'"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"data": {"root": "/no/such/folder"}}, "dataset folder not found"),
    ({"image_size": 8}, "image_size must be an integer from 16 to 4096, got 8"),
    ({"image_size": 20, "model": {"name": "resnet18"}}, "image_size must be an integer from 32 to 4096 for resnet18"),
    ({"class_weights": [1, -1, 1]}, "class_weights must be"),
    ({"class_weights": [1, 2], "data": {"class_names": ["a", "b", "c"]}}, "class_weights has 2 values for 3 classes"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
    ({"device": "cuda:x"}, "unknown device 'cuda:x'"),
    ({"device": "cuda:64"}, "device 'cuda:64' is not available here"),
    ({"processes": 0}, "processes must be an integer from 1 to 64"),
    ({"processes": "2"}, "processes must be an integer from 1 to 64"),
    ({"processes": 2, "batch_size": 7}, "batch_size 7 must be a multiple of the number of processes"),
    ({"processes": 65}, "processes must be an integer from 1 to 64"),
    ({"processes": 2, "device": "cpu"}, "start it with torchrun --nproc_per_node=2"),
    ({"seed": 2**64}, "seed must be an integer from 0 to 2\\*\\*63 - 1"),
    ({"seed": -1}, "seed must be an integer from 0"),
    ({"lr": 0.1}, "unknown config key 'lr'"),
    ({"model": {"weights": "file", "weights_path": "/no/such.pt"}}, "weights file not found"),
    ({"freeze_epochs": -1}, "freeze_epochs must be an integer >= 0"),
    ({"ema": 1}, "ema must be a decay in \\[0, 1\\)"),
    ({"ema": "0.99"}, "ema must be a decay"),
])
def test_bad_config_is_refused_before_a_run_folder_exists(demo_root, tmp_path, override, message):
    with pytest.raises(TrainingError, match=message.replace("(", r"\(")):
        training.run_training(tiny_config(demo_root, **override), tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_a_copied_config_keeps_its_split_unless_the_data_settings_change(demo_root, tmp_path):
    first = training.run_training(tiny_config(demo_root, epochs=1), tmp_path / "a")
    copied = runs.read_config(first)
    same = settings.load_data(copied)
    assert [r.id for r in same.split("val")] == copied["data"]["split"]["splits"]["val"]
    changed = dict(copied, data=dict(copied["data"], max_size=30))
    assert len(settings.load_data(changed).records) == 30


def test_relative_paths_are_made_absolute(demo_root, monkeypatch):
    monkeypatch.chdir(demo_root.parent.parent)
    config = settings.validate_config(tiny_config(Path(demo_root.parent.name) / demo_root.name))
    assert config["data"]["root"] == str(demo_root.resolve())


def test_default_config_is_the_documented_recipe_and_json():
    config = settings.default_config()
    json.dumps(config)
    assert config["model"]["name"] == "efficientnet_lite0" and config["model"]["weights"] == "default"
    assert config["optim"]["optimizer"] == "adamw" and config["optim"]["lr"] == 1e-3
    assert config["scheduler"]["name"] == "cosine" and config["class_weights"] == "auto"
    assert settings.validate_config({})["batch_size"] == 32


def test_batchnorm_recalibration_gives_exact_averages_and_restores_momentum():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, momentum=0.01)).eval()
    batches = [(torch.randn(8, 3, 10, 10) * 2 + 1, torch.zeros(8, dtype=torch.int64), ["x"] * 8) for _ in range(4)]
    assert training.recalibrate_batchnorm(model, batches, torch.device("cpu")) == 1
    with torch.no_grad():
        features = torch.cat([model[0](images) for images, _, _ in batches])
    norm = model[1]
    torch.testing.assert_close(norm.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5, rtol=1e-5)
    assert norm.momentum == 0.01 and not model.training
    assert training.recalibrate_batchnorm(torch.nn.Linear(2, 2), batches, torch.device("cpu")) == 0


@pytest.mark.parametrize("optimizer, expected", [("sgd", 0.0), ("adam", 0.0), ("adamw", 0.01)])
def test_weight_decay_defaults_to_the_optimizers_own(optimizer, expected):
    config = settings.validate_config({"optim": {"optimizer": optimizer}})
    made = training.make_optimizer(config, [torch.nn.Parameter(torch.zeros(2))])
    assert made.param_groups[0]["weight_decay"] == expected


def test_auto_class_weights_are_inverse_frequency():
    weights = settings.class_weights({"class_weights": "auto"}, [0] * 1372 + [1] * 374 + [2] * 254, 3)
    counts = np.array([1372, 374, 254])
    np.testing.assert_allclose(weights.numpy(), counts.sum() / (3 * counts), rtol=1e-6)


def _hostile_checkpoint(path: Path, marker: Path) -> None:
    """A .pt that would create `marker` if it were unpickled without weights_only."""

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"model": Payload(), "epoch": 1}, path)


def test_evaluate_and_predict_refuse_a_checkpoint_that_runs_code(demo_root, tmp_path):
    run_dir = training.run_training(tiny_config(demo_root, epochs=1), tmp_path)
    marker = tmp_path / "pwned"
    _hostile_checkpoint(run_dir / "best.pt", marker)
    with pytest.raises(ModelError, match="untrusted checkpoint"):
        inference.evaluate_run(run_dir)
    with pytest.raises(ModelError, match="untrusted checkpoint"):
        inference.predict_image(run_dir, np.zeros((40, 40, 3), np.uint8))
    assert not marker.exists()


def test_resume_refuses_a_last_checkpoint_that_runs_code(demo_root, tmp_path):
    run_dir = training.run_training(tiny_config(demo_root, epochs=1), tmp_path)
    runs.write_status(run_dir, state="stopped")
    marker = tmp_path / "pwned"
    _hostile_checkpoint(run_dir / "last.pt", marker)
    with pytest.raises(ModelError, match="untrusted checkpoint"):
        training.run_training(resume=run_dir)
    assert not marker.exists()
    assert runs.read_status(run_dir)["state"] == "failed"


def test_resume_refuses_a_finished_run(demo_root, tmp_path):
    run_dir = training.run_training(tiny_config(demo_root, epochs=1), tmp_path)
    with pytest.raises(TrainingError, match="already finished"):
        training.run_training(resume=run_dir)


def test_predict_image_gives_probabilities_per_class(demo_root, tmp_path):
    run_dir = training.run_training(tiny_config(demo_root, epochs=1), tmp_path)
    image = data.read_image(next((demo_root / "images").glob("*.jpg")))
    probs = inference.predict_image(run_dir, image)
    assert list(probs) == list(data.CLASS_NAMES)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert inference.predict_image(run_dir, image) == probs  # cached model, same answer


def _status_shows_training(run_dir):
    status = runs.read_status(run_dir)
    return status.get("state") == "running" and status.get("iteration", 0) > 0


def test_sigterm_leaves_a_consistent_resumable_run(demo_root, tmp_path):
    run_dir = training.launch(tiny_config(demo_root, epochs=40), tmp_path)
    wait_for(lambda: _status_shows_training(run_dir), "the trainer to report a batch")
    status = runs.read_status(run_dir)
    assert status["phase"] in ("train", "val") and status["n_iters"] >= status["iteration"]
    assert status["eta_s"] >= 0 and status["images_per_s"] > 0 and status["epochs"] == 40
    pid = status["pid"]
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not locks.pid_alive(pid) or runs.read_status(run_dir)["state"] == "stopped", "the trainer to exit")
    wait_for(lambda: runs.read_status(run_dir)["state"] == "stopped", "state stopped")
    assert runs.run_info(run_dir).state == "stopped"
    history = runs.read_history(run_dir)
    done = models.load_checkpoint(run_dir / "last.pt")["epoch"] if (run_dir / "last.pt").exists() else 0
    assert all(row["epoch"] <= done + 1 for row in history)

    training.run_training(resume=run_dir)
    history = runs.read_history(run_dir)
    assert [(r["epoch"], r["phase"]) for r in history] == [(e, p) for e in range(1, 41) for p in ("train", "val")]
    assert runs.read_status(run_dir)["state"] == "finished"


def test_launch_refuses_a_second_run_while_one_is_active(demo_root, tmp_path):
    first = training.launch(tiny_config(demo_root, epochs=200), tmp_path)
    try:
        wait_for(lambda: _status_shows_training(first), "the first run to train")
        assert runs.active_run(tmp_path).path == first
        with pytest.raises(TrainingError, match=first.name):
            training.launch(tiny_config(demo_root), tmp_path)
        with pytest.raises(TrainingError, match="still running"):
            training.run_training(resume=first)
    finally:
        runs.request_stop(first)
        wait_for(lambda: runs.read_status(first).get("state") in ("stopped", "finished", "failed"), "stop")
    assert runs.read_status(first)["state"] == "stopped"
    assert len(runs.list_runs(tmp_path)) == 1


def test_launch_resume_continues_a_stopped_run_in_the_background(demo_root, tmp_path):
    run_dir = runs.create_run(tmp_path, settings.validate_config(tiny_config(demo_root, epochs=3)))
    runs.request_stop(run_dir)
    training.run_training(run_dir=run_dir)
    assert runs.read_status(run_dir)["state"] == "stopped"
    training.launch_resume(run_dir)
    assert runs.is_active(run_dir) or runs.read_status(run_dir)["state"] == "finished"
    wait_for(lambda: runs.read_status(run_dir).get("state") == "finished", "the resumed run to finish")
    assert len(runs.read_history(run_dir)) == 6
    with pytest.raises(TrainingError, match="already finished"):
        training.launch_resume(run_dir)


def test_a_stop_pressed_while_a_resume_is_queued_stops_the_resumed_trainer(demo_root, tmp_path):
    run_dir = runs.create_run(tmp_path, settings.validate_config(tiny_config(demo_root, epochs=3)))
    runs.request_stop(run_dir)
    training.run_training(run_dir=run_dir)
    training.launch_resume(run_dir)
    runs.request_stop(run_dir)  # at once: the child is still starting Python (queued)
    wait_for(lambda: runs.read_status(run_dir).get("state") == "stopped"
             and not runs.is_active(run_dir), "the resumed run to stop")
    assert len(runs.read_history(run_dir)) < 6  # it did not train to the end


def test_killed_trainer_shows_as_interrupted_and_resumes(demo_root, tmp_path):
    run_dir = training.launch(tiny_config(demo_root, epochs=20), tmp_path)
    wait_for(lambda: _status_shows_training(run_dir), "the trainer to report a batch")
    pid = runs.read_status(run_dir)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not locks.pid_alive(pid), "the trainer to die")
    assert runs.run_info(run_dir).state == "interrupted"
    assert runs.active_run(tmp_path) is None
    training.run_training(resume=run_dir)
    assert runs.read_status(run_dir)["state"] == "finished"
    assert len(runs.read_history(run_dir)) == 40


@pytest.mark.slow
def test_real_isic_short_fine_tune_of_the_offline_model(isic_dev_root, tmp_path):
    config = {
        "data": {"root": str(isic_dev_root), "max_size": 60},
        "model": {"name": "efficientnet_lite0", "weights": "offline"},
        "epochs": 1, "batch_size": 16, "image_size": 64,
    }
    run_dir = training.run_training(config, tmp_path)
    status = runs.read_status(run_dir)
    assert status["state"] == "finished", status
    assert runs.read_config(run_dir)["resolved"]["weights"]["source"] == "offline"
    assert (run_dir / "predictions_test.csv").is_file()
    assert isinstance(runs.read_history(run_dir)[-1]["loss"], float)



@pytest.mark.slow
@pytest.mark.parametrize("name", list(models.MODELS))
def test_every_zoo_model_trains_an_epoch(name, demo_root, tmp_path):
    size = max(models.MODELS[name].min_input_size, 32)
    # plain SGD keeps no optimiser state, so vgg16's last.pt stays at its 0.5 GB of weights
    config = tiny_config(demo_root, model={"name": name, "weights": "random"}, image_size=size, epochs=1,
                         optim={"optimizer": "sgd", "momentum": 0.0},
                         batch_size=4, augment=[], data={"max_size": 15, "val_fraction": 0.2, "test_fraction": 0.2})
    run_dir = training.run_training(config, tmp_path)
    assert runs.read_status(run_dir)["state"] == "finished"
    assert len(runs.read_history(run_dir)) == 2


def test_a_launched_run_whose_data_vanished_says_failed(demo_root, tmp_path):
    config = settings.validate_config(tiny_config(demo_root))
    config["data"]["root"] = str(tmp_path / "gone")
    run_dir = runs.create_run(tmp_path / "runs", config)
    with pytest.raises(TrainingError, match="dataset folder not found"):
        training.run_training(run_dir=run_dir)
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and "dataset folder not found" in status["message"]


def test_preset_names_become_that_preset_at_the_run_image_size():
    """A 96 px run must not crop 224 px and resize again (work wasted, detail lost)."""
    config = settings.validate_config({"image_size": 96})
    assert config["augment"][0] == {"name": "RandomResizedCrop", "params": {
        "size": 96, "scale_min": 0.35, "scale_max": 1.0, "ratio_min": 0.75, "ratio_max": 4 / 3}}
    assert [s["name"] for s in config["eval_augment"]] == ["Rescale", "CenterCrop", "ToTensor", "Normalize"]
    assert config["eval_augment"][1]["params"]["size"] == 96
    with pytest.raises(LesionLabError, match="unknown preset"):
        settings.validate_config({"augment": "fancy"})


@pytest.mark.parametrize("frozen", [{"freeze_backbone": True}, {"freeze_epochs": 1}])
def test_a_frozen_backbone_keeps_its_batchnorm_statistics(demo_root, tmp_path, frozen):
    """freeze_backbone = "train the head only" (freeze_epochs = for the first epochs): the
    backbone, running statistics included, must come out exactly as loaded, while the head learns."""
    torch.manual_seed(0)
    start = models.build_model("mobilenet_v3_small", 3, weights="random").state_dict()
    torch.save({"model": start}, tmp_path / "start.pt")
    model = {"name": "mobilenet_v3_small", "weights": "file", "weights_path": str(tmp_path / "start.pt")}
    config = tiny_config(demo_root, model=model | {"freeze_backbone": frozen.get("freeze_backbone", False)},
                         epochs=2, freeze_epochs=frozen.get("freeze_epochs", 0))
    run_dir = training.run_training(config, tmp_path / "runs", on_batch=stop_in_epoch_2(tmp_path / "runs"))
    if "freeze_backbone" in frozen:
        assert "backbone frozen (head only)" in (run_dir / "train.log").read_text()
    trained = torch.load(run_dir / "last.pt", weights_only=True)
    assert trained["epoch"] == 1
    backbone = [k for k in start if not k.startswith("classifier.3.")]
    assert any(k.endswith("running_mean") for k in backbone)
    for key in backbone:
        torch.testing.assert_close(trained["model"][key], start[key], msg=key)
    assert not torch.equal(trained["model"]["classifier.3.weight"], start["classifier.3.weight"])
    training.run_training(resume=run_dir)  # epoch 2: the whole net trains, unless freeze_backbone
    final = torch.load(run_dir / "last.pt", weights_only=True)["model"]
    changed = [k for k in backbone if not torch.equal(final[k], start[k])]
    assert bool(changed) == ("freeze_epochs" in frozen), changed[:3]


def test_set_train_mode_leaves_only_frozen_batchnorm_in_eval_mode():
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(2), torch.nn.BatchNorm2d(2))
    model[0].requires_grad_(False)
    training.set_train_mode(model, True)
    assert model.training and not model[0].training and model[1].training
    training.set_train_mode(model, False)
    assert not model[1].training


def test_eta_counts_recalibration_and_the_final_evaluation(tmp_path):
    """Time left = batches left at the measured speeds + each epoch's BatchNorm recalibration +
    the best model's final pass over val and test; at the last val batch only the latter is left."""
    trainer = training.Trainer(tmp_path, {"epochs": 3})
    trainer.loaders = {"train": [None] * 10, "val": [None] * 4, "calibration": [None] * 2}
    trainer.n_test_batches = 3
    trainer.iter_time = {"train": 1.0, "val": 0.5}
    final = (4 + 3) * 0.5
    assert trainer._eta("val", 3, 4) == pytest.approx(final)
    calibrate_guess = 2 * 0.5
    assert trainer._eta("train", 3, 10) == pytest.approx(calibrate_guess + 4 * 0.5 + final)
    trainer.calibration_s = 7.0  # measured: replaces the guess
    assert trainer._eta("calibrate", 2, 0) == pytest.approx(7.0 + 2.0 + (10 + 7.0 + 2.0) + final)
    assert trainer._eta("train", 1, 4) == pytest.approx(6 + 9.0 + 2 * 19.0 + final)


def test_a_dataset_without_training_images_fails_with_a_clear_message(demo_root, tmp_path):
    root = tmp_path / "val_only"
    shutil.copytree(demo_root / "images", root / "images")
    shutil.copytree(demo_root / "masks", root / "masks")
    rows = (demo_root / "labels.csv").read_text().splitlines()
    (root / "DBtrain.csv").write_text(rows[0] + "\n")
    (root / "DBval.csv").write_text("\n".join(rows[:31]) + "\n")
    (root / "DBtest.csv").write_text("\n".join(rows[:1] + rows[31:]) + "\n")
    with pytest.raises(TrainingError, match="the training split is empty"):
        training.run_training(tiny_config(root), tmp_path / "runs")


def test_a_launch_waits_while_another_launch_holds_the_runs_folder(demo_root, tmp_path):
    """Check-then-start is atomic: a launch beside another one (two browser tabs) waits for
    it to mark its run active, then is refused, instead of both passing the check."""
    import subprocess
    import sys
    import threading
    from contextlib import ExitStack

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    trainer_lock = ExitStack()
    holder = subprocess.Popen(  # another launcher, between its check and its start
        [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.readline()", str(runs_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        outcome = []

        def second_launch():
            try:
                outcome.append(training.launch(tiny_config(demo_root, epochs=200), runs_dir))
            except TrainingError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=second_launch)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive() and outcome == []  # it waits for the lock
        # Meanwhile the holder starts its run (a live pid: this test process).
        first = runs.create_run(runs_dir, settings.validate_config(tiny_config(demo_root)))
        runs.write_status(first, state="running", pid=os.getpid())
        trainer_lock.enter_context(locks.run(first))  # held as the trainer holds it
        holder.communicate("\n", timeout=30)
        thread.join(60)
        assert len(outcome) == 1 and isinstance(outcome[0], TrainingError), outcome
        assert first.name in str(outcome[0])
    finally:
        holder.kill()
        holder.wait()
        for run in runs.list_runs(runs_dir):  # a second trainer that should not exist
            if run.status.get("pid") != os.getpid() and runs.is_active(run):
                runs.request_stop(run.path)
        trainer_lock.close()
    assert runs.list_runs(runs_dir)[0].path == first and len(runs.list_runs(runs_dir)) == 1


def test_read_predictions_keeps_text_ids_and_adds_confidence_loss_correct(tmp_path):
    names = ["nevus", "melanoma", "seborrheic keratosis"]
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    path = tmp_path / "predictions_test.csv"
    inference.write_predictions(path, ["0001", "0002"], [0, 1], probs, names)
    frame = inference.read_predictions(path)
    assert frame["id"].tolist() == ["0001", "0002"]
    assert frame.attrs["class_names"] == names
    np.testing.assert_allclose(frame["confidence"], [0.7, 0.6], atol=1e-6)
    np.testing.assert_allclose(frame["loss"], [-np.log(0.7), -np.log(0.3)], atol=1e-5)
    assert frame["correct"].tolist() == [True, False]


def test_launch_into_a_relative_runs_folder_trains(demo_root, tmp_path, monkeypatch):
    """The bug a fresh clone met: launch(config, "runs") started the trainer in the run folder
    with the relative path runs/<id>, so it wrote to runs/<id>/runs/<id> and never trained."""
    monkeypatch.chdir(tmp_path)
    run_dir = training.launch(tiny_config(demo_root, epochs=1), Path("runs"))
    assert run_dir.is_absolute() and run_dir.parent == tmp_path / "runs"
    wait_for(lambda: runs.run_info(run_dir).state not in runs.ACTIVE_STATES, "the launched run to end", 120)
    info = runs.run_info(run_dir)
    assert info.state == "finished", (info.status, runs.log_tail(run_dir))
    assert not (run_dir / "runs").exists()
    assert runs.read_config(run_dir)["data"]["root"] == str(demo_root)


def test_run_training_resolves_relative_folders_once(demo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = training.run_training(tiny_config(Path(os.path.relpath(demo_root, tmp_path)), epochs=1), "runs")
    assert run_dir.is_absolute() and run_dir.parent == tmp_path / "runs"
    assert Path(runs.read_config(run_dir)["data"]["root"]).is_absolute()
    monkeypatch.chdir(tmp_path / "runs")  # resume a relative run folder from elsewhere
    runs.write_status(run_dir, state="stopped")
    (run_dir / "last.pt").unlink()
    assert training.run_training(resume=run_dir.name) == run_dir


def test_a_trainer_that_dies_before_its_first_status_says_failed_with_its_reason(demo_root, tmp_path):
    """A trainer process that crashes at start (here: a real process that exits with an
    error before writing anything) leaves 'queued'; readers must say failed, and why."""
    run_dir = runs.create_run(tmp_path, settings.validate_config(tiny_config(demo_root)))
    with open(run_dir / runs.CONSOLE_LOG, "wb") as console:
        # It dies when told (its stdin closes): alive until then, so the first check is not a race.
        process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read(); "
                                    "raise ImportError('No module named torchvision')"],
                                   stdin=subprocess.PIPE, stdout=console, stderr=subprocess.STDOUT)
    runs.write_status(run_dir, pid=process.pid)
    assert runs.run_info(run_dir).state in runs.ACTIVE_STATES
    process.stdin.close()
    process.wait()
    info = runs.run_info(run_dir)
    assert info.state == "failed"
    assert info.status["message"] == ("the trainer process ended before it started: "
                                      "ImportError: No module named torchvision")
    assert runs.active_run(tmp_path) is None
    assert "ImportError" in runs.log_tail(run_dir)


def test_a_launched_trainer_whose_data_becomes_unreadable_says_failed(demo_root, tmp_path):
    """The launched process (not this one) fails: status says failed with the reason, and
    the run no longer counts as active."""
    data_copy = Path(shutil.copytree(demo_root, tmp_path / "data"))
    run_dir = training.launch(tiny_config(data_copy), tmp_path / "runs")
    shutil.rmtree(data_copy)  # the child is still importing torch: it meets the loss at its start
    wait_for(lambda: runs.run_info(run_dir).state not in runs.ACTIVE_STATES, "the trainer to give up", 120)
    info = runs.run_info(run_dir)
    assert info.state == "failed"
    assert "dataset folder not found" in info.status["message"]
    assert runs.active_run(tmp_path / "runs") is None
