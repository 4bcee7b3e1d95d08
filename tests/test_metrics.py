"""Metrics checked against scikit-learn on random and hand-made predictions."""

import json
import math

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score, roc_curve

from lesion_core.data import CLASS_NAMES
from lesion_core.metrics import compute_metrics, scored_classes, to_jsonable

FOUR = ("a", "b", "c", "d")


def _predictions(n: int, n_classes: int, seed: int = 0, class_weights=None):
    rng = np.random.default_rng(seed)
    labels = rng.choice(n_classes, size=n, p=class_weights)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), labels] += 1.0  # better than chance, not perfect
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs


def test_matches_sklearn():
    labels, probs = _predictions(200, 4)
    m = compute_metrics(labels, probs, FOUR)
    predicted = probs.argmax(axis=1)

    np.testing.assert_array_equal(m["confusion"], confusion_matrix(labels, predicted, labels=range(4)))
    precision, recall, _, support = precision_recall_fscore_support(
        labels, predicted, labels=range(4), zero_division=0
    )
    np.testing.assert_allclose(m["precision"], precision)
    np.testing.assert_allclose(m["recall"], recall)
    np.testing.assert_array_equal(m["counts"], support)
    assert m["accuracy"] == pytest.approx(np.mean(predicted == labels))
    for c in range(4):
        assert m["auc"][c] == pytest.approx(roc_auc_score(labels == c, probs[:, c]))
        fpr, tpr, thresholds = roc_curve(labels == c, probs[:, c])
        np.testing.assert_allclose(m["roc"][c]["fpr"], fpr)
        np.testing.assert_allclose(m["roc"][c]["tpr"], tpr)
        np.testing.assert_allclose(m["roc"][c]["thresholds"], thresholds)
    assert m["mean_auc"] == pytest.approx(np.mean(m["auc"]))  # not ISIC: all classes scored
    np.testing.assert_array_equal(m["predicted"], predicted)
    np.testing.assert_allclose(m["confidence"], probs.max(axis=1))
    np.testing.assert_allclose(m["loss"], -np.log(probs[np.arange(200), labels]))


def test_isic_mean_auc_is_melanoma_and_keratosis():
    labels, probs = _predictions(150, 3, seed=1)
    m = compute_metrics(labels, probs, CLASS_NAMES)
    expected = np.mean([roc_auc_score(labels == 1, probs[:, 1]), roc_auc_score(labels == 2, probs[:, 2])])
    assert m["scored_classes"] == [1, 2]
    assert m["mean_auc"] == pytest.approx(expected)
    assert m["mean_auc"] != pytest.approx(np.mean(m["auc"]))


def test_scored_classes():
    assert scored_classes(CLASS_NAMES) == [1, 2]
    assert scored_classes(["Nevus", "Melanoma", "Seborrheic Keratosis"]) == [1, 2]
    assert scored_classes(["cat", "dog", "bird"]) == [0, 1, 2]
    assert scored_classes(["nevus", "melanoma"]) == [0, 1]


def test_confusion_rows_sum_to_100_with_unbalanced_classes():
    # 80/15/5: dividing by cm.sum(axis=1) without keepdims (the notebook) scales columns
    # and these rows would not sum to 100.
    labels, probs = _predictions(300, 3, seed=2, class_weights=[0.8, 0.15, 0.05])
    m = compute_metrics(labels, probs, CLASS_NAMES)
    np.testing.assert_allclose(m["confusion_pct"].sum(axis=1), 100.0)
    np.testing.assert_allclose(m["confusion_pct"], 100 * m["confusion"] / m["confusion"].sum(axis=1, keepdims=True))


def test_absent_class_has_nan_auc_and_zero_rows():
    labels = np.array([0, 0, 1, 1, 0, 1])
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1],
                      [0.5, 0.4, 0.1], [0.3, 0.6, 0.1], [0.1, 0.3, 0.6]])
    m = compute_metrics(labels, probs, CLASS_NAMES)

    assert math.isnan(m["auc"][2])
    assert m["roc"][2] == {"fpr": [], "tpr": [], "thresholds": []}
    assert m["auc"][1] == pytest.approx(roc_auc_score(labels == 1, probs[:, 1]))
    # keratosis absent: the score is undefined and says why, not melanoma's AUC alone
    assert math.isnan(m["mean_auc"]) and m["undefined_auc"] == [CLASS_NAMES[2]]
    np.testing.assert_array_equal(m["confusion_pct"][2], [0, 0, 0])
    assert m["recall"][2] == 0 and m["precision"][2] == 0  # one false "keratosis" prediction
    assert not np.isnan(m["confusion_pct"]).any()


def test_single_class_has_all_aucs_nan():
    labels = np.zeros(4, dtype=int)
    probs = np.full((4, 3), 1 / 3)
    m = compute_metrics(labels, probs, CLASS_NAMES)
    assert np.isnan(m["auc"]).all()
    assert math.isnan(m["mean_auc"])


def test_confidently_wrong_sample_has_large_finite_loss():
    m = compute_metrics(np.array([0, 1]), np.array([[0.0, 1.0], [0.0, 1.0]]), ["x", "y"])
    assert np.isfinite(m["loss"]).all()
    assert m["loss"][0] > 20 and m["loss"][1] == pytest.approx(0)


def test_to_jsonable_gives_strict_json():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.3, 0.7, 0.0], [0.2, 0.8, 0.0]])
    m = compute_metrics(labels, probs, CLASS_NAMES)

    text = json.dumps(to_jsonable(m), allow_nan=False)
    back = json.loads(text)

    assert back["auc"][2] is None  # NaN becomes null
    assert back["roc"][0]["thresholds"][0] is None  # sklearn's leading +inf threshold
    assert back["confusion"] == m["confusion"].tolist()
    assert back["class_names"] == list(CLASS_NAMES)


def test_labels_and_probs_of_different_length():
    with pytest.raises(ValueError, match=r"labels must be \(N,\)"):
        compute_metrics(np.array([0, 1, 2]), np.full((2, 3), 1 / 3), CLASS_NAMES)


def test_probs_columns_do_not_match_class_names():
    with pytest.raises(ValueError, match="2 columns but there are 3 class names"):
        compute_metrics(np.array([0, 1]), np.full((2, 2), 0.5), CLASS_NAMES)


def test_label_out_of_range():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        compute_metrics(np.array([0, 3]), np.full((2, 3), 1 / 3), CLASS_NAMES)


def test_float_labels():
    with pytest.raises(ValueError, match="labels must be integers"):
        compute_metrics(np.array([0.0, 1.0]), np.full((2, 3), 1 / 3), CLASS_NAMES)
