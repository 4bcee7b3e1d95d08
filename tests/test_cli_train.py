"""`python -m lesion_core train|evaluate|predict|models`: flags, outputs, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lesion_core import runs
from lesion_core.cli import main
from lesion_core import settings

TINY = ["--model", "lenet", "--pretrained", "random", "--image-size", "32", "--batch-size", "8", "--epochs", "1"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def pipeline_file(tmp_path) -> Path:
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps([{"name": "RandomResizedCrop", "params": {"size": 32}},
                                {"name": "RandomVerticalFlip", "params": {"p": 0.5}}]))
    return path


@pytest.fixture
def trained_run(demo_root, tmp_path, pipeline_file) -> Path:
    assert main(["train", "--data", str(demo_root), *TINY, "--augment", str(pipeline_file),
                 "--out", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


def test_train_flags_land_in_the_run_config(demo_root, tmp_path, pipeline_file, capsys):
    code = main(["train", "--data", str(demo_root), *TINY, "--augment", str(pipeline_file),
                 "--optimizer", "sgd", "--lr", "0.02", "--momentum", "0.8", "--scheduler", "step",
                 "--step-size", "3", "--gamma", "0.5", "--seed", "7", "--max-size", "45",
                 "--out", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert code == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert f"run folder: {run_dir}" in out
    assert "epoch 1/1" in out
    config = runs.read_config(run_dir)
    # on top of the standard recipe, which a dataset folder starts from
    assert config["optim"] == {"optimizer": "sgd", "lr": 0.02, "momentum": 0.8, "weight_decay": None,
                               "label_smoothing": 0.1}
    assert config["scheduler"] == {"name": "step", "step_size": 3, "gamma": 0.5, "warmup_epochs": 1}
    assert config["recipe"] == "standard"
    assert (config["seed"], config["epochs"], config["batch_size"], config["image_size"]) == (7, 1, 8, 32)
    assert config["augment"][1]["name"] == "RandomVerticalFlip"
    assert sum(len(ids) for ids in config["data"]["split"]["splits"].values()) == 45
    assert runs.read_status(run_dir)["state"] == "finished"


def test_augment_accepts_a_preset_name_sized_to_the_run(demo_root, tmp_path):
    from lesion_core.transforms import eval_spec, preset, validate_spec

    assert main(["train", "--data", str(demo_root), *TINY, "--augment", "notebook_train", "--max-size", "15",
                 "--out", str(tmp_path)]) == 0
    (run_dir,) = tmp_path.iterdir()
    config = runs.read_config(run_dir)
    assert config["augment"] == validate_spec(preset("notebook_train", config["image_size"]))
    # Evaluation crops to the lesion too (deterministically), since training did.
    assert config["eval_augment"] == eval_spec(config["augment"])
    assert config["eval_augment"][0]["name"] == "CropByMask"


def test_config_file_with_flags_overriding_it(demo_root, tmp_path):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"data": {"root": str(demo_root)}, "optim": {"lr": 0.5},
                                       "eval_augment": [], "augment": []}))
    assert main(["train", "--config", str(config_file), *TINY, "--lr", "0.003", "--out", str(tmp_path / "r")]) == 0
    (run_dir,) = (tmp_path / "r").iterdir()
    config = runs.read_config(run_dir)
    assert config["optim"]["lr"] == 0.003
    assert config["augment"] == []


def test_pretrained_file_starts_from_a_previous_run(trained_run, demo_root, tmp_path):
    args = [a for a in TINY if a not in ("--pretrained", "random")]
    assert main(["train", "--data", str(demo_root), *args, "--pretrained", str(trained_run / "best.pt"),
                 "--out", str(tmp_path / "second")]) == 0
    (run_dir,) = (tmp_path / "second").iterdir()
    assert runs.read_config(run_dir)["resolved"]["weights"]["source"] == "file"


def test_evaluate_prints_metrics_and_both_confusion_matrices(trained_run, capsys):
    assert main(["evaluate", str(trained_run), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("val: ")
    assert "mean AUC" in out and "melanoma: AUC" in out
    assert "confusion matrix:" in out and "confusion matrix (row %):" in out
    assert out.count("%") >= 9


def test_predict_prints_class_probabilities(trained_run, demo_root, capsys):
    image = sorted((demo_root / "images").glob("*.jpg"))[0]
    mask = demo_root / "masks" / f"{image.stem}.png"
    assert main(["predict", str(trained_run), str(image), "--mask", str(mask)]) == 0
    printed = json.loads(capsys.readouterr().out)
    probs = printed["probabilities"]
    assert list(probs) == ["nevus", "melanoma", "seborrheic keratosis"]
    assert printed["decision"] is None and printed["decision_withheld"] is None  # no rule saved
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)


def test_resume_continues_a_stopped_run(demo_root, tmp_path, capsys):
    # a run stopped in its first batch (STOP requested before it started), then resumed
    config = settings.validate_config({"data": {"root": str(demo_root)}, "model": {"name": "lenet", "weights": "random"},
                                    "image_size": 32, "epochs": 2, "batch_size": 8, "augment": [], "eval_augment": []})
    run_dir = runs.create_run(tmp_path / "runs", config)
    runs.request_stop(run_dir)
    assert main(["train", "--run-dir", str(run_dir)]) == 0
    assert runs.read_status(run_dir)["state"] == "stopped"
    assert main(["train", "--resume", str(run_dir)]) == 0
    assert runs.read_status(run_dir)["state"] == "finished"
    assert len(runs.read_history(run_dir)) == 4


def test_models_lists_the_zoo(capsys):
    from lesion_core.models import MODELS

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in MODELS:
        assert f"\n{name} " in out
    assert "offline" in out


@pytest.mark.slow
def test_train_on_the_builtin_demo_data(tmp_path):
    assert main(["train", "--data", "demo", *TINY, "--max-size", "30", "--out", str(tmp_path)]) == 0
    (run_dir,) = tmp_path.iterdir()
    assert runs.read_config(run_dir)["data"]["root"] == "demo"


BAD = [
    (["train", "--data", "{demo}", "--model", "nope", "--out", "{out}"], "unknown model 'nope'; choose one of"),
    (["train", "--data", "/no/such/data", "--out", "{out}"], "dataset folder not found"),
    (["train", "--out", "{out}"], "give --data DIR"),
    (["train", "--data", "{demo}"], "give --out RUNS_DIR"),
    (["train", "--data", "{demo}", "--pretrained", "/no/such.pt", "--out", "{out}"], "weights file not found"),
    (["train", "--data", "{demo}", "--model", "lenet", "--pretrained", "offline", "--out", "{out}"],
     "weights 'offline' are not available for lenet"),
    (["train", "--data", "{demo}", "--augment", "/no/pipeline.json", "--out", "{out}"], "cannot read pipeline file"),
    (["train", "--config", "/no/config.json", "--out", "{out}"], "cannot read config file"),
    (["train", "--resume", "/no/run"], "not a run folder"),
    (["train", "--resume", "{out}", "--lr", "0.1"], "drop --lr"),
    (["evaluate", "/no/run"], "not a run folder"),
    (["predict", "/no/run", "/no/image.jpg"], "image not found"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[m for _, m in BAD])
def test_bad_options_get_a_one_line_error(demo_root, tmp_path, capsys, argv, message):
    argv = [a.format(demo=demo_root, out=tmp_path / "runs") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_malformed_number_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "demo", "--epochs", "x", "--out", "runs"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: argument --epochs: epochs must be an integer >= 1, got 'x'\n"


def test_evaluate_refuses_a_best_checkpoint_that_runs_code(trained_run, tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"model": Payload()}, trained_run / "best.pt")
    assert main(["evaluate", str(trained_run)]) == 2
    assert "untrusted checkpoint" in capsys.readouterr().err
    assert not marker.exists()
