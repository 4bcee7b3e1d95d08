"""Temperature scaling, ECE, Brier and reliability bins against sklearn and direct computation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss

from lesion_core.evaluation import calibration
from lesion_core.inference import temperature as scaling


def overconfident(n=600, classes=3, sharpen=3.0, seed=0):
    """Labels drawn from softmax(z) (calibrated by construction) and probs softmax(sharpen * z)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.2, size=(n, classes))
    true_p = torch.softmax(torch.tensor(logits), 1).numpy()
    labels = np.array([rng.choice(classes, p=p) for p in true_p])
    return torch.softmax(torch.tensor(sharpen * logits), 1).numpy(), labels, logits


def test_fitted_temperature_undoes_overconfidence_and_minimises_nll():
    probs, labels, _ = overconfident()
    t, note = calibration.fit_temperature(probs, labels)
    assert t == pytest.approx(3.0, rel=0.2) and note is None
    # the NLL minimum found independently by scipy on the same objective
    def objective(x):
        return log_loss(labels, scaling.apply_temperature(probs, x), labels=[0, 1, 2])
    reference = minimize_scalar(objective, bounds=(0.1, 10), method="bounded").x
    assert t == pytest.approx(reference, rel=1e-3)
    assert calibration.nll(scaling.apply_temperature(probs, t), labels) < calibration.nll(probs, labels)
    assert calibration.ece(scaling.apply_temperature(probs, t), labels) < calibration.ece(probs, labels)


def test_a_validation_split_without_errors_is_not_sharpened_towards_certainty(tmp_path):
    # Every top class right: the NLL falls all the way to T -> 0 (a demo run fitted T = 0.05
    # and called any photograph 100% certain). T stays 1, and the file says why.
    probs, labels, _ = overconfident(n=45, seed=2)
    labels = probs.argmax(1)
    t, note = calibration.fit_temperature(probs, labels)
    assert t == 1.0 and note.startswith("not fitted: all 45 validation images are already classified correctly")
    assert calibration.nll(scaling.apply_temperature(probs, 0.3), labels) < calibration.nll(probs, labels)
    record = calibration.fit_and_save(tmp_path, probs, labels)
    assert record["temperature"] == 1.0 and scaling.read_note(tmp_path) == note
    assert scaling.read_temperature(tmp_path) == 1.0


def test_a_fit_beyond_the_trusted_range_is_limited_to_it_and_says_so():
    # One wrong image among many confident right ones: the NLL's minimum is a very sharp T.
    probs, labels, _ = overconfident(n=60, seed=3, sharpen=0.3)
    labels = probs.argmax(1)
    labels[0] = (labels[0] + 1) % 3
    def objective(x):
        return log_loss(labels, scaling.apply_temperature(probs, x), labels=[0, 1, 2])
    unbounded = minimize_scalar(objective, bounds=(0.01, 10), method="bounded").x
    assert unbounded < calibration.FIT_RANGE[0]  # the case the guard is for
    t, note = calibration.fit_temperature(probs, labels)
    assert t == calibration.FIT_RANGE[0]
    assert note.startswith("the fit gave T = ") and "T = 0.25 is used" in note


@pytest.mark.parametrize("content", ['{"temperature": 0.8, "note": 7}', '{"temperature": 0.8, "note": ""}', "[1]"])
def test_a_calibration_note_that_is_not_text_is_no_note(tmp_path, content):
    (tmp_path / "calibration.json").write_text(content)
    assert scaling.read_note(tmp_path) is None


def test_scaling_saved_probabilities_equals_scaling_logits():
    probs, _, logits = overconfident(n=50)
    expected = torch.softmax(torch.tensor(3.0 * logits) / 2.5, 1).numpy()
    np.testing.assert_allclose(scaling.apply_temperature(probs, 2.5), expected, atol=1e-9)
    assert scaling.apply_temperature(probs, 2.5).argmax(1).tolist() == probs.argmax(1).tolist()


def test_ece_and_reliability_bins_match_a_direct_computation_and_sklearn():
    probs, labels, _ = overconfident(n=400, seed=1)
    confidence, correct = probs.max(1), probs.argmax(1) == labels
    expected = 0.0
    for lower in np.arange(15) / 15:
        upper = lower + 1 / 15
        in_bin = (confidence > lower) & (confidence <= upper) if lower > 0 else confidence <= upper
        if in_bin.any():
            expected += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    assert calibration.ece(probs, labels) == pytest.approx(expected, abs=1e-9)
    bins = calibration.reliability_bins(probs, labels)
    prob_true, prob_pred = calibration_curve(correct, confidence, n_bins=15, strategy="uniform")
    filled = [i for i, n in enumerate(bins["count"]) if n]
    np.testing.assert_allclose([bins["accuracy"][i] for i in filled], prob_true, atol=1e-9)
    np.testing.assert_allclose([bins["confidence"][i] for i in filled], prob_pred, atol=1e-9)
    assert sum(bins["count"]) == 400


def test_classwise_ece_is_the_mean_of_per_class_reliability_gaps():
    probs, labels, _ = overconfident(n=300, seed=2)
    per_class = []
    for c in range(3):
        hit, p = labels == c, probs[:, c]
        edges = np.linspace(0, 1, 16)
        index = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, 14)
        per_class.append(sum((index == b).mean() * abs(hit[index == b].mean() - p[index == b].mean())
                             for b in range(15) if (index == b).any()))
    assert calibration.classwise_ece(probs, labels) == pytest.approx(np.mean(per_class), abs=1e-9)


def test_brier_score_equals_sklearns_multiclass_brier():
    probs, labels, _ = overconfident(n=200, seed=3)
    reference = brier_score_loss(labels, probs, labels=[0, 1, 2], scale_by_half=False)
    assert calibration.brier(probs, labels) == pytest.approx(reference, abs=1e-9)
    perfect = np.eye(3)[labels]
    assert calibration.brier(perfect, labels) == 0.0


@pytest.mark.parametrize("content", ['{"temperature": -1}', '{"temperature": "3"}', '{"temperature": 1e9}',
                                     '{"temperature": true}', "[1, 2]", "not json", '{"temperature": NaN}'])
def test_a_broken_calibration_file_means_no_scaling(tmp_path, content):
    (tmp_path / "calibration.json").write_text(content)
    assert scaling.read_temperature(tmp_path) == 1.0


def test_fit_and_save_writes_a_readable_calibration_file(tmp_path):
    probs, labels, _ = overconfident(n=200, seed=4)
    record = calibration.fit_and_save(tmp_path, probs, labels)
    saved = json.loads((tmp_path / "calibration.json").read_text())
    assert saved["temperature"] == pytest.approx(record["temperature"])
    assert scaling.read_temperature(tmp_path) == pytest.approx(record["temperature"])
    assert saved["nll_calibrated"] <= saved["nll"]
    assert scaling.read_temperature(tmp_path / "missing") == 1.0


def test_calibration_is_applied_by_default_only_when_it_helps_held_out_images(tmp_path):
    from lesion_core.inference.temperature import read_calibration

    # over-confident by construction: fitted on 4 folds, T lowers the 5th fold's NLL
    probs, labels, _ = overconfident(n=200, seed=5)
    record = calibration.fit_and_save(tmp_path, probs, labels)
    assert record["cross_fit"]["nll_calibrated"] < record["cross_fit"]["nll"] and record["apply_by_default"]
    assert read_calibration(tmp_path).default_temperature == pytest.approx(record["temperature"])
    # calibrated by construction: the in-sample fit still "helps" a little, held out it does not
    rng = np.random.default_rng(6)
    logits = rng.normal(0, 1.2, size=(60, 3))
    true_p = torch.softmax(torch.tensor(logits), 1).numpy()
    labels = np.array([rng.choice(3, p=p) for p in true_p])
    record = calibration.fit_and_save(tmp_path, true_p, labels)
    assert record["nll_calibrated"] <= record["nll"]  # judged on its own images, it always helps
    assert record["temperature"] != 1.0 and record["cross_fit"]["nll_calibrated"] >= record["cross_fit"]["nll"]
    assert not record["apply_by_default"] and "did not lower" in record["note"]
    assert read_calibration(tmp_path).default_temperature == 1.0
    # too few validation images to judge: raw by default, and the note says why
    probs, labels, _ = overconfident(n=20, seed=7)
    record = calibration.fit_and_save(tmp_path, probs, labels)
    assert not record["apply_by_default"] and "too few" in record["note"]
    fitted = read_calibration(tmp_path)
    assert fitted.scaled and not fitted.by_default and fitted.default_temperature == 1.0
    # a file written before cross-fitting existed keeps being applied
    (tmp_path / "calibration.json").write_text('{"temperature": 2.0}')
    assert read_calibration(tmp_path).default_temperature == 2.0
