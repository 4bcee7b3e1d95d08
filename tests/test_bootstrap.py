"""Bootstrap intervals and paired differences, checked against a plain loop over sklearn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from lesion_core import runs
from lesion_core.data import CLASS_NAMES
from lesion_core.errors import DataError
from lesion_core.evaluation import bootstrap
from lesion_core import training


def fake_scores(n_per_class=(40, 12, 25), seed=1, skill=1.0):
    """Labels and softmax probabilities with some signal, ties included (rounded scores)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    logits = rng.normal(size=(len(labels), 3))
    logits[np.arange(len(labels)), labels] += skill
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, np.round(probs, 2)


def sklearn_loop(labels, probs, indices):
    """The same metrics, one resample at a time, with sklearn."""
    rows = []
    for idx in indices:
        y, p = labels[idx], probs[idx]
        aucs = [roc_auc_score(y == c, p[:, c]) for c in range(3)]
        rows.append({"accuracy": accuracy_score(y, p.argmax(1)),
                     "balanced_accuracy": balanced_accuracy_score(y, p.argmax(1)),
                     "auc/melanoma": aucs[1], "mean_auc": (aucs[1] + aucs[2]) / 2})
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def test_vectorised_replicates_equal_a_plain_sklearn_loop():
    labels, probs = fake_scores()
    indices = bootstrap.stratified_indices(labels, 200, seed=5)
    assert (labels[indices] == labels).all()  # stratified: class counts kept in every resample
    fast = bootstrap.replicates(labels, probs, CLASS_NAMES, indices)
    slow = sklearn_loop(labels, probs, indices)
    for key, values in slow.items():
        np.testing.assert_allclose(fast[key], values, atol=1e-12, err_msg=key)


def test_intervals_are_the_percentiles_of_the_sklearn_loop_and_seeded():
    labels, probs = fake_scores()
    result = bootstrap.metric_intervals(labels, probs, CLASS_NAMES, n_resamples=300, seed=7)
    slow = sklearn_loop(labels, probs, bootstrap.stratified_indices(labels, 300, seed=7))
    low, high = np.percentile(slow["mean_auc"], [2.5, 97.5])
    assert result["mean_auc"]["ci_low"] == pytest.approx(low)
    assert result["mean_auc"]["ci_high"] == pytest.approx(high)
    point = (roc_auc_score(labels == 1, probs[:, 1]) + roc_auc_score(labels == 2, probs[:, 2])) / 2
    assert result["mean_auc"]["value"] == pytest.approx(point)
    assert result["mean_auc"]["ci_low"] < point < result["mean_auc"]["ci_high"]
    assert result["accuracy"]["n"] == len(labels) and result["auc"]["melanoma"]["n_class"] == 12
    assert bootstrap.metric_intervals(labels, probs, CLASS_NAMES, n_resamples=300, seed=7) == result
    other = bootstrap.metric_intervals(labels, probs, CLASS_NAMES, n_resamples=300, seed=8)
    assert other["mean_auc"]["ci_low"] != result["mean_auc"]["ci_low"]


def test_fewer_images_give_wider_intervals_and_a_warning():
    small = bootstrap.metric_intervals(*fake_scores((8, 7, 8)), CLASS_NAMES)
    large = bootstrap.metric_intervals(*fake_scores((400, 120, 250)), CLASS_NAMES)
    def width(r):
        return r["mean_auc"]["ci_high"] - r["mean_auc"]["ci_low"]
    assert width(small) > 2 * width(large)
    warnings = bootstrap.small_class_warnings(small, "test")
    assert len(warnings) == 3 and warnings[1].startswith("melanoma: 7 test images; AUC differences below ~")
    assert bootstrap.small_class_warnings(large, "test") == []
    # Three perfectly ranked melanomas: every resample scores 1.0, yet 3 images prove nothing.
    perfect = {"auc": {"melanoma": {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 9, "n_class": 3}}}
    assert bootstrap.small_class_warnings(perfect, "test") == [
        "melanoma: 3 test images; AUC differences below ~0.60 are noise here"]


def test_paired_differences_equal_a_plain_loop_and_a_run_against_itself_is_zero():
    labels, probs_a = fake_scores(skill=0.5)
    _, probs_b = fake_scores(seed=2, skill=1.5)
    paired = bootstrap.paired_differences(labels, probs_a, probs_b, CLASS_NAMES, n_resamples=200, seed=3)
    indices = bootstrap.stratified_indices(labels, 200, seed=3)
    slow_a, slow_b = sklearn_loop(labels, probs_a, indices), sklearn_loop(labels, probs_b, indices)
    low, high = np.percentile(slow_b["mean_auc"] - slow_a["mean_auc"], [2.5, 97.5])
    row = paired["mean_auc"]
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert row["delta"] == pytest.approx(row["b"] - row["a"]) and row["ci_low"] > 0  # B clearly better
    same = bootstrap.paired_differences(labels, probs_a, probs_a, CLASS_NAMES)
    assert all(r["delta"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0 for r in same.values())
    assert bootstrap.format_delta(row).startswith("+")


def test_format_interval():
    assert bootstrap.format_interval({"value": 0.8594, "ci_low": 0.7991, "ci_high": 0.909, "n": 150}) \
        == "0.859 [0.799, 0.909]"
    assert bootstrap.format_interval({"value": None, "ci_low": None, "ci_high": None, "n": 3}) == "n/a"
    assert bootstrap.format_interval(None) == "n/a"


def test_a_finished_run_stores_intervals_matching_its_predictions(demo_root, tmp_path, one_torch_thread):
    from tests.test_train import tiny_config

    run_dir = training.run_training(tiny_config(demo_root, epochs=1), tmp_path)
    stored = runs.read_metrics(run_dir, "test")
    assert set(stored["intervals"]["mean_auc"]) >= {"value", "ci_low", "ci_high", "n"}
    assert stored["intervals"]["mean_auc"]["value"] == pytest.approx(stored["mean_auc"])
    assert stored["intervals"]["accuracy"]["value"] == pytest.approx(stored["accuracy"])
    # Runs from before intervals: the same numbers from predictions_test.csv.
    recomputed = bootstrap.metric_intervals(*bootstrap.load_predictions(run_dir, "test")[1:])
    assert recomputed["mean_auc"]["ci_low"] == pytest.approx(stored["intervals"]["mean_auc"]["ci_low"], abs=1e-5)
    del stored["intervals"]
    (run_dir / "metrics_test.json").write_text(json.dumps(stored))
    assert bootstrap.run_intervals(run_dir, "test")["mean_auc"]["ci_high"] == pytest.approx(
        recomputed["mean_auc"]["ci_high"])
    assert bootstrap.run_intervals(run_dir, "test", compute=False) is None
    (run_dir / "predictions_test.csv").write_text("garbage,\n\x00\x01")
    with pytest.raises(DataError, match="predictions_test.csv is damaged"):  # named, never silently no interval
        bootstrap.run_intervals(run_dir, "test")
    (run_dir / "predictions_test.csv").unlink()
    assert bootstrap.run_intervals(run_dir, "test") is None
