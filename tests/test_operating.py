"""Operating points: sensitivity at specificity, average precision, the 2x2 table, saved thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, confusion_matrix

from lesion_core import runs
from lesion_core.errors import TrainingError
from lesion_core.evaluation import operating
from lesion_core.inference import decision as rules

NAMES = ["nevus", "melanoma", "seborrheic keratosis"]


def scored(n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, probs


def brute_force_sens_at_spec(is_class, scores, target):
    """Every distinct score as a threshold (plus 'flag nothing'): the best sensitivity whose specificity >= target."""
    best = 0.0
    for t in np.unique(scores):
        flagged = scores >= t
        spec = (~flagged & ~is_class).sum() / (~is_class).sum()
        if spec >= target:
            best = max(best, (flagged & is_class).sum() / is_class.sum())
    return best


def test_sensitivity_at_specificity_and_ap_match_an_exhaustive_search_and_sklearn():
    labels, probs = scored()
    points = operating.operating_points(labels, probs, NAMES)
    assert set(points) == set(NAMES)
    for c, name in enumerate(NAMES):
        for target in operating.TARGET_SPECIFICITIES:
            got = points[name]["sens_at_spec"][f"{target:.2f}"]
            assert got == pytest.approx(brute_force_sens_at_spec(labels == c, probs[:, c], target))
            table = operating.table_at(labels == c, probs[:, c], points[name]["threshold_at_spec"][f"{target:.2f}"])
            assert table["specificity"] >= target and table["sensitivity"] == pytest.approx(got)
        assert points[name]["average_precision"] == pytest.approx(average_precision_score(labels == c, probs[:, c]))


def test_table_at_a_threshold_matches_sklearns_confusion_matrix():
    labels, probs = scored(seed=1)
    is_mel, p = labels == 1, probs[:, 1]
    table = operating.table_at(is_mel, p, 0.4)
    tn, fp, fn, tp = confusion_matrix(is_mel, p >= 0.4).ravel()
    assert (table["tp"], table["fp"], table["tn"], table["fn"]) == (tp, fp, tn, fn)
    assert table["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert table["specificity"] == pytest.approx(tn / (tn + fp))
    assert table["ppv"] == pytest.approx(tp / (tp + fp)) and table["npv"] == pytest.approx(tn / (tn + fn))


def test_a_class_absent_from_the_split_has_undefined_points():
    labels = np.array([0, 0, 2, 2])
    probs = np.full((4, 3), 1 / 3)
    points = operating.operating_points(labels, probs, NAMES)
    assert np.isnan(points["melanoma"]["sens_at_spec"]["0.95"]) and np.isnan(points["melanoma"]["average_precision"])


@pytest.fixture
def run_dir(tmp_path):
    runs.atomic_write_json(tmp_path / "config.json", {"data": {"class_names": NAMES}})
    return tmp_path


def test_saved_threshold_drives_the_decision(run_dir):
    operating.save_threshold(run_dir, "melanoma", 0.3)
    rule = rules.read_threshold(run_dir)
    assert {k: rule[k] for k in ("class", "threshold", "calibrated")} == {"class": "melanoma", "threshold": 0.3,
                                                                           "calibrated": True}
    saved = json.loads((run_dir / "threshold.json").read_text())
    assert saved["split"] == "val" and saved["probabilities"] == "calibrated"
    assert saved["sensitivity"] is None  # no validation predictions in this folder to measure it on
    refer = rules.decision({"nevus": 0.6, "melanoma": 0.35, "seborrheic keratosis": 0.05}, rule)
    assert refer["refer"] and refer["text"].startswith("refer: melanoma suspected")
    calm = rules.decision({"nevus": 0.8, "melanoma": 0.15, "seborrheic keratosis": 0.05}, rule)
    assert calm["text"].startswith("not flagged")


def test_bad_thresholds_are_refused_or_ignored(run_dir):
    with pytest.raises(TrainingError, match="not one of the run's classes"):
        operating.save_threshold(run_dir, "wart", 0.5)
    with pytest.raises(TrainingError, match="between 0 and 1"):
        operating.save_threshold(run_dir, "melanoma", 1.5)
    for content in ({"class": "wart", "threshold": 0.5}, {"class": "melanoma", "threshold": "0.5"},
                    {"class": "melanoma", "threshold": -2}, ["melanoma"]):
        (run_dir / "threshold.json").write_text(json.dumps(content))
        assert rules.read_threshold(run_dir) is None


def test_a_rule_saved_on_calibrated_probabilities_converts_raw_ones_first(run_dir):
    from lesion_core.evaluation.calibration import apply_temperature

    rule = operating.save_threshold(run_dir, "melanoma", 0.5, calibrated=True)
    raw = np.array([[0.35, 0.6, 0.05]])
    scaled = apply_temperature(raw, 3.0)[0]  # T = 3 flattens 0.6 below 0.5
    assert scaled[1] < 0.5
    as_dict = dict(zip(NAMES, raw[0]))
    assert rules.decision(as_dict, rule)["refer"]  # no conversion asked: compared as given
    assert not rules.decision(as_dict, rule, calibrated=False, temperature=3.0)["refer"]
    back = rules.decision(dict(zip(NAMES, scaled)), dict(rule, calibrated=False), calibrated=True, temperature=3.0)
    assert back["refer"]  # the scaled probabilities converted back to raw 0.6
