"""Short runs on the public layouts: a 7-class HAM10000 run and a binary ISIC 2020 run train,
name their headline metric, write metadata into predictions, and their pages render."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from lesion_core import paths, plots, runs
from lesion_core.evaluation import subgroups
from lesion_core import inference
from lesion_core import settings
from lesion_core import training

import layout_fixtures as fx
from test_pages import goto, texts

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_run(root, runs_dir, **overrides):
    """LeNet at 32 px, 2 epochs: a few seconds on these tiny sets."""
    config = {"data": {"root": str(root), "val_fraction": 0.25, "test_fraction": 0.25},
              "model": {"name": "lenet", "weights": "random"}, "image_size": 32, "epochs": 2,
              "batch_size": 8, "augment": [], "eval_augment": [], "bn_recalibration_images": 0}
    config.update(overrides)
    return training.run_training(config, runs_dir)


def _predictions(run_dir, split="test"):
    with open(run_dir / f"predictions_{split}.csv") as handle:
        return list(csv.DictReader(handle))


def test_seven_class_run_ranks_epochs_by_macro_auc_and_keeps_metadata(tmp_path):
    root = fx.make_ham10000(tmp_path / "ham", n_lesions_per_class=4, with_masks=False)
    run_dir = tiny_run(root, tmp_path / "runs")
    config = runs.read_config(run_dir)
    assert config["headline_metric"] == "macro_auc"
    assert len(config["data"]["class_names"]) == 7
    status = runs.read_status(run_dir)
    assert status["state"] == "finished" and status["best"]["metric"] == "val_macro_auc"
    val = [r for r in runs.read_history(run_dir) if r["phase"] == "val"]
    assert status["best"]["value"] == max(r["macro_auc"] for r in val)
    assert all(r["headline"] == "macro_auc" and "balanced_accuracy" in r for r in val)

    rows = _predictions(run_dir)
    names = config["data"]["class_names"]
    assert list(rows[0])[-5:] == ["pred", "group", "age", "sex", "site"]
    labels = np.array([names.index(r["label"]) for r in rows])
    probs = np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows])
    saved = json.loads((run_dir / "metrics_test.json").read_text())
    assert saved["headline"] == "macro_auc" and "isic2017_mean_auc" not in saved
    assert saved["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, probs.argmax(1)))
    # No lesion of the test split was seen in training.
    train_groups = {r.group for r in settings.load_data(config).split("train")}
    assert not train_groups & {r["group"] for r in rows}


def test_binary_run_has_one_roc_and_subgroup_metrics(tmp_path):
    root = fx.make_isic2020(tmp_path / "isic2020", n_patients=16)
    run_dir = tiny_run(root, tmp_path / "runs")
    saved = json.loads((run_dir / "metrics_val.json").read_text())
    assert saved["class_names"] == ["benign", "melanoma"] and saved["headline"] == "macro_auc"
    frame = inference.read_predictions(run_dir / "predictions_val.csv")
    labels = (frame["label"] == "melanoma").to_numpy()
    assert saved["macro_auc"] == pytest.approx(roc_auc_score(labels, frame["prob_melanoma"]), abs=1e-5)
    figure = plots.roc_curves(saved["roc"], saved["auc"], saved["class_names"])
    assert [t.name.split(" (")[0] for t in figure.data] == ["chance", "melanoma"]
    curves = plots.auc_curves(runs.read_history(run_dir), saved["class_names"])
    assert [t.name for t in curves.data] == ["melanoma AUC", "mean AUC"]

    table = subgroups.subgroup_table(frame, n_boot=50)
    sexes = {r["group"]: r for r in table if r["attribute"] == "sex"}
    assert set(sexes) <= {"male", "female"} and sum(r["images"] for r in sexes.values()) == len(frame)
    for row in sexes.values():
        chosen = (frame["sex"] == row["group"]).to_numpy()
        if 0 < labels[chosen].sum() < chosen.sum():
            assert row["AUC"] == pytest.approx(roc_auc_score(labels[chosen], frame["prob_melanoma"][chosen]))


def test_rank_auc_matches_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    probs = rng.dirichlet(np.ones(4), 300)
    probs[np.arange(300), labels] += 0.3
    expected = np.mean([roc_auc_score(labels == c, probs[:, c]) for c in range(4)])
    assert subgroups.macro_auc(labels, probs) == pytest.approx(expected)
    for c in range(4):  # per class, the rank formula is sklearn's AUC exactly
        one = subgroups.macro_auc((labels == c).astype(int), np.column_stack([1 - probs[:, c], probs[:, c]]))
        assert one == pytest.approx(roc_auc_score(labels == c, probs[:, c]))


@pytest.mark.slow
@pytest.mark.parametrize("make", [fx.make_ham10000, fx.make_isic2020])
def test_pages_show_a_seven_class_and_a_binary_run(app, tmp_path, make):
    root = make(tmp_path / "data")
    tiny_run(root, paths.runs_dir())
    goto(app, "dataset")
    app.radio(key="keep_ds_source").set_value("folder").run()
    app.text_input(key="keep_ds_folder").set_value(str(root)).run()
    app.button(key="ds_open_folder").click().run()
    assert not app.exception and not app.error
    assert "split by " in texts(app) and "no " in texts(app)
    assert any(c.key == "ds_meta_sex" for c in app.get("plotly_chart"))
    app.multiselect(key="keep_ds_sex").set_value(["female"]).run()
    assert set(app.dataframe[-1].value["sex"]) == {"female"}

    goto(app, "results")
    labels = {m.label for m in app.metric}
    assert "Macro AUC (headline)" in labels and "Balanced accuracy" in labels
    assert "Subgroups" in [h.value for h in app.subheader]
    table = next(d.value for d in app.dataframe if "attribute" in d.value)
    assert set(table["attribute"]) == {"sex", "age", "site"} and "AUC 95% low" in table
    goto(app, "predictions")
    opened = next(b.key for b in app.button if b.key.startswith("pred_open_"))
    app.button(key=opened).click().run()
    assert not app.exception
    assert any(c.value.startswith("group ") and " · age " in c.value for c in app.caption)


def test_cli_train_takes_a_chosen_headline_metric(tmp_path, capsys):
    from lesion_core.cli import main

    root = fx.make_folders(tmp_path / "folders", classes=("a", "b", "c"), n_per_class=8, with_masks=False)
    assert main(["train", "--data", str(root), "--model", "lenet", "--pretrained", "random", "--epochs", "1",
                 "--image-size", "32", "--batch-size", "8", "--augment", "eval",
                 "--headline-metric", "balanced_accuracy", "--out", str(tmp_path / "runs")]) == 0
    run_dir = runs.list_runs(tmp_path / "runs")[0].path
    assert runs.read_config(run_dir)["headline_metric"] == "balanced_accuracy"
    assert runs.read_status(run_dir)["best"]["metric"] == "val_balanced_accuracy"
    assert main(["train", "--data", str(root), "--headline-metric", "isic2017_mean_auc", "--model", "lenet",
                 "--pretrained", "random", "--epochs", "1", "--image-size", "32",
                 "--out", str(tmp_path / "runs2")]) != 0
    assert "needs the classes melanoma and seborrheic keratosis" in capsys.readouterr().err


def test_isic2020_diagnosis_labels_travel_through_the_run_config(tmp_path):
    root = fx.make_isic2020(tmp_path / "isic2020", n_patients=16)
    run_dir = tiny_run(root, tmp_path / "runs", epochs=1,
                       data={"root": str(root), "val_fraction": 0.25, "test_fraction": 0.25, "labels": "diagnosis"})
    config = runs.read_config(run_dir)
    assert config["data"]["class_names"] == ["melanoma", "nevus"]
    assert config["data"]["split"]["labels"] == "diagnosis"
    assert settings.load_data(config).class_names == ("melanoma", "nevus")  # the recorded split replays
