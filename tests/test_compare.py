"""Comparing two runs: config diff, paired deltas against a plain sklearn loop, verdicts, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from lesion_core.cli import main
from lesion_core.errors import TrainingError
from lesion_core.evaluation import bootstrap, compare
from lesion_core import inference
from lesion_core import training
from tests.test_train import tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def two_runs(demo_root, tmp_path):
    a = training.run_training(tiny_config(demo_root, epochs=1, seed=1), tmp_path / "runs")
    b = training.run_training(tiny_config(demo_root, epochs=2, seed=2, optim={"lr": 0.003}), tmp_path / "runs")
    return a, b


def test_a_run_compared_with_itself_is_not_distinguishable(two_runs, capsys):
    a, _ = two_runs
    assert main(["compare", str(a), str(a), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"split", "n", "metrics", "verdict", "same_images"}
    assert out["verdict"] == "none" and out["same_images"] is True and out["split"] == "test"
    for row in out["metrics"].values():
        assert set(row) == {"a", "b", "delta", "ci_low", "ci_high"}
        if row["a"] is not None:
            assert row["delta"] == 0 and row["ci_low"] == 0 and row["ci_high"] == 0
    assert main(["compare", str(a), str(a)]) == 0
    assert f"not distinguishable on these {out['n']} images" in capsys.readouterr().out


def test_paired_deltas_equal_a_plain_loop_over_the_prediction_files(two_runs):
    a, b = two_runs
    result = compare.compare_runs(a, b, "test", n_resamples=200, seed=4)
    assert {row["setting"] for row in result["config_diff"]} >= {"epochs", "seed", "optim.lr"}
    assert "data.root" not in {row["setting"] for row in result["config_diff"]}
    ids, labels, probs_a, _ = bootstrap.load_predictions(a, "test")
    ids_b, _, probs_b, _ = bootstrap.load_predictions(b, "test")
    probs_b = probs_b[[ids_b.index(i) for i in ids]]
    deltas = []
    for idx in bootstrap.stratified_indices(labels, 200, seed=4):
        y = labels[idx]
        def score(p, y=y, idx=idx):
            return np.mean([roc_auc_score(y == c, p[idx, c]) for c in (1, 2)])
        deltas.append(score(probs_b) - score(probs_a))
    low, high = np.percentile(deltas, [2.5, 97.5])
    row = result["metrics"]["mean_auc"]
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert result["verdict"] == compare.verdict(row)
    wrong_right = [(r["pred_a"] == r["label"], r["pred_b"] == r["label"]) for r in result["disagreements"]]
    assert all(x != y for x, y in wrong_right)
    expected = int(((probs_a.argmax(1) == labels) != (probs_b.argmax(1) == labels)).sum())
    assert len(result["disagreements"]) == expected


def test_a_perfect_run_beats_a_weak_one(two_runs, capsys):
    a, b = two_runs
    # B's predictions replaced by a perfect classifier, A's by a constant one (AUC 0.5).
    ids, labels, probs, names = bootstrap.load_predictions(b, "test")
    inference.write_predictions(b / "predictions_test.csv", ids, labels, np.eye(len(names))[labels] * 0.9 + 0.1 / 3, names)
    ids_a, labels_a, _, _ = bootstrap.load_predictions(a, "test")
    inference.write_predictions(a / "predictions_test.csv", ids_a, labels_a, np.full((len(ids_a), 3), 1 / 3), names)
    assert main(["compare", str(a), str(b), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"]["mean_auc"]["b"] == 1.0 and out["metrics"]["mean_auc"]["a"] == 0.5
    assert out["verdict"] == "b" and out["metrics"]["mean_auc"]["ci_low"] == pytest.approx(0.5)
    assert main(["compare", str(b), str(a), "--json"]) == 0
    swapped = json.loads(capsys.readouterr().out)
    assert swapped["metrics"]["mean_auc"]["delta"] == pytest.approx(-out["metrics"]["mean_auc"]["delta"])
    assert swapped["verdict"] == "a"


def test_runs_on_different_images_get_no_verdict(demo_root, tmp_path, capsys):
    a = training.run_training(tiny_config(demo_root, epochs=1), tmp_path / "runs")
    b = training.run_training(tiny_config(demo_root, epochs=1, data={"split_seed": 7}), tmp_path / "runs")
    result = compare.compare_runs(a, b)
    assert result["same_images"] is False and result["verdict"] == "none" and result["n"] is None
    assert "different test images" in result["reason"]
    assert all(row["ci_low"] is None for row in result["metrics"].values())
    assert main(["compare", str(a), str(b)]) == 0
    assert "No verdict: the runs were scored on different test images" in capsys.readouterr().out


def test_compare_without_predictions_says_what_is_missing(two_runs, tmp_path, capsys):
    a, b = two_runs
    (b / "predictions_val.csv").unlink()
    with pytest.raises(TrainingError, match="has no readable predictions_val.csv"):
        compare.compare_runs(a, b, "val")
    assert main(["compare", str(a), str(b), "--split", "val"]) == 2
    assert "error: run " in capsys.readouterr().err


def test_compare_gives_each_run_the_numbers_evaluate_prints_for_it(two_runs, capsys):
    # issue 26: one number, one answer; compare reads each run's stored predictions, which are what
    # the run's own scoring (inference) gave: evaluate re-scores and must print the same numbers
    import re

    a, b = two_runs
    assert main(["compare", str(a), str(b), "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)["metrics"]
    for side, run in (("a", a), ("b", b)):
        rescored = inference.evaluate_run(run, "test")
        assert compared["mean_auc"][side] == pytest.approx(rescored["mean_auc"], abs=1e-6)
        assert compared["balanced_accuracy"][side] == pytest.approx(rescored["balanced_accuracy"], abs=1e-6)
        assert compared["accuracy"][side] == pytest.approx(rescored["accuracy"], abs=1e-6)
        for i, name in enumerate(rescored["class_names"]):
            assert compared[f"auc_{name}"][side] == pytest.approx(rescored["auc"][i], abs=1e-6)
        assert main(["evaluate", str(run), "--split", "test"]) == 0
        printed = capsys.readouterr().out
        assert "reproduces metrics_test.json" in printed
        assert f"mean AUC {compared['mean_auc'][side]:.4f}" in printed
        assert re.search(rf"accuracy {compared['accuracy'][side]:.4f}", printed)


def test_an_overconfident_runs_compared_numbers_are_still_evaluates(two_runs, capsys):
    # Rounded to 6 decimals, a saturated run's probabilities tied at 0.000000 in predictions_test.csv:
    # compare (reading the file) gave mean AUC 0.694 where evaluate (re-scoring) gave 0.750.
    import shutil

    import torch

    from lesion_core import models, runs
    from lesion_core.evaluation import saved

    a, b = two_runs
    sharp = shutil.copytree(a, a.parent / "sharp")
    checkpoint = torch.load(sharp / "best.pt", weights_only=True)
    weights = checkpoint["model"] if "model" in checkpoint else checkpoint
    head = models.MODELS[runs.read_config(sharp)["model"]["name"]].head
    for key in [k for k in weights if k.startswith(head + ".")]:
        weights[key] = weights[key] * 200  # logits 200x apart: probabilities down to 1e-30 and below
    torch.save(checkpoint, sharp / "best.pt")
    for stale in [*sharp.glob("metrics_*.json"), *sharp.glob("predictions_*.csv")]:
        stale.unlink()
    saved.evaluate_best(sharp)  # the files a finished run writes
    assert main(["compare", str(sharp), str(b), "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)["metrics"]
    rescored = inference.evaluate_run(sharp, "test")
    assert (rescored["raw_probs"] < 5e-7).mean() > 0.1  # saturated: below the 6th decimal
    assert compared["mean_auc"]["a"] == pytest.approx(rescored["mean_auc"], abs=1e-9)
    assert compared["accuracy"]["a"] == pytest.approx(rescored["accuracy"], abs=1e-9)
    assert runs.read_metrics(sharp, "test")["mean_auc"] == pytest.approx(rescored["mean_auc"], abs=1e-9)
