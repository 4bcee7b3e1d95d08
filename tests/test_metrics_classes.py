"""Metrics for any number of classes: macro AUC, balanced accuracy, the ISIC 2017 mean AUC only
where its classes are, and the headline metric, checked against scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from lesion_core.data import CLASS_NAMES
from lesion_core.metrics import compute_metrics, headline_metric

SEVEN = ("melanoma", "nevus", "basal cell carcinoma", "actinic keratosis", "benign keratosis",
         "dermatofibroma", "vascular lesion")


def _predictions(n: int, n_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), labels] += 1.0
    return labels, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


@pytest.mark.parametrize("n_classes", [3, 7, 10])
def test_macro_auc_and_balanced_accuracy_match_sklearn(n_classes):
    names = SEVEN if n_classes == 7 else tuple(f"c{i}" for i in range(n_classes))
    labels, probs = _predictions(400, n_classes, seed=n_classes)
    m = compute_metrics(labels, probs, names)
    assert m["macro_auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, probs.argmax(axis=1)))
    assert m["headline"] == "macro_auc"
    assert "isic2017_mean_auc" not in m  # no seborrheic keratosis among these classes


def test_binary_has_one_auc_the_positive_class():
    labels, probs = _predictions(300, 2, seed=1)
    m = compute_metrics(labels, probs, ("benign", "melanoma"))
    assert m["macro_auc"] == pytest.approx(roc_auc_score(labels, probs[:, 1]))
    assert m["headline"] == "macro_auc"


def test_balanced_accuracy_ignores_absent_classes():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    m = compute_metrics(labels, probs, ("a", "b", "c"))
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 0.5) / 2)  # class c has no sample


def test_isic2017_mean_auc_when_its_classes_are_present():
    labels, probs = _predictions(300, 3, seed=2)
    m = compute_metrics(labels, probs, CLASS_NAMES)
    assert m["isic2017_mean_auc"] == pytest.approx(np.mean(m["auc"][[1, 2]]))
    assert m["isic2017_mean_auc"] == pytest.approx(m["mean_auc"])  # mean_auc keeps its meaning
    assert m["headline"] == "isic2017_mean_auc"
    assert m["macro_auc"] == pytest.approx(np.mean(m["auc"]))


def test_headline_can_be_chosen_and_is_checked():
    assert headline_metric(SEVEN, "balanced_accuracy") == "balanced_accuracy"
    assert compute_metrics(*_predictions(50, 7), SEVEN, headline="balanced_accuracy")["headline"] == "balanced_accuracy"
    with pytest.raises(ValueError, match="unknown headline"):
        headline_metric(SEVEN, "f1")
    with pytest.raises(ValueError, match="needs the classes"):
        headline_metric(SEVEN, "isic2017_mean_auc")
