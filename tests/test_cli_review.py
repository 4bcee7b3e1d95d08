"""`explain`, `calibrate`, `threshold`, `evaluate --explain/--tta` and calibrated `predict` on a tiny real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score

from lesion_core import runs
from lesion_core.cli import main
from lesion_core.evaluation import calibration, operating
from lesion_core import inference
from lesion_core.inference import decision as rules
from lesion_core.inference import temperature as scaling

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--model", "lenet", "--pretrained", "random", "--image-size", "32", "--batch-size", "8", "--epochs", "1",
        "--augment", "eval"]


@pytest.fixture
def run(demo_root, tmp_path) -> Path:
    assert main(["train", "--data", str(demo_root), *TINY, "--out", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


def first_image(demo_root) -> tuple[Path, Path]:
    image = sorted((demo_root / "images").glob("*.jpg"))[0]
    return image, demo_root / "masks" / f"{image.stem}.png"


def saved(run_dir, split):
    """(labels, raw probabilities, class names) of a run's predictions CSV."""
    frame = inference.read_predictions(run_dir / f"predictions_{split}.csv")
    names = frame.attrs["class_names"]
    labels = frame["label"].map({n: i for i, n in enumerate(names)}).to_numpy()
    return labels, frame[[f"prob_{n}" for n in names]].to_numpy(dtype=float), names


def test_training_fits_calibration_on_val_and_writes_review_keys(run):
    record = json.loads((run / "calibration.json").read_text())
    labels, probs, names = saved(run, "val")
    assert record["temperature"] == pytest.approx(calibration.fit_temperature(probs, labels)[0], rel=1e-3)
    assert record["nll_calibrated"] <= record["nll"] + 1e-9
    for split in ("val", "test"):
        metrics = runs.read_metrics(run, split)
        assert {"auc", "confusion", "calibration", "operating_points"} <= set(metrics)  # old keys kept
        labels, probs, names = saved(run, split)
        scaled = scaling.apply_temperature(probs, record["temperature"])
        cal = metrics["calibration"]
        assert cal["temperature"] == pytest.approx(record["temperature"])
        assert cal["ece"] == pytest.approx(calibration.ece(probs, labels), abs=1e-5)
        assert cal["brier_calibrated"] == pytest.approx(calibration.brier(scaled, labels), abs=1e-5)
        for c, name in enumerate(names):
            ap = metrics["operating_points"][name]["average_precision"]
            assert metrics["operating_points"][name]["probabilities"] == "raw"  # as the AUC beside it
            assert ap == pytest.approx(average_precision_score(labels == c, probs[:, c]), abs=1e-4)


def fit_for_use(run) -> None:
    """Make the run's validation look like a good model's (a mean AUC of 0.9 [0.85, 0.95] on 30
    images a class) in its real metrics_val.json, so the fitness gate lets a decision through."""
    from lesion_core import runs

    val = runs.read_metrics(run, "val")
    val["intervals"] = dict(val.get("intervals") or {}, mean_auc={"value": 0.9, "ci_low": 0.85, "ci_high": 0.95,
                                                                   "n": 90})
    val["counts"] = [30] * len(val["class_names"])
    runs.atomic_write_json(run / "metrics_val.json", val)


def test_predict_is_calibrated_by_default_and_uncalibrated_on_request(run, demo_root, capsys):
    image, mask = first_image(demo_root)
    record = json.loads((run / "calibration.json").read_text())
    runs.atomic_write_json(run / "calibration.json", dict(record, temperature=1.8, apply_by_default=True))
    assert main(["predict", str(run), str(image), "--uncalibrated"]) == 0
    raw = json.loads(capsys.readouterr().out)["probabilities"]
    assert main(["predict", str(run), str(image)]) == 0
    scaled = json.loads(capsys.readouterr().out)["probabilities"]
    expected = scaling.apply_temperature(np.array([list(raw.values())]), 1.8)[0]
    np.testing.assert_allclose(list(scaled.values()), expected, atol=1e-5)


def test_predict_is_raw_by_default_where_calibration_did_not_help_and_says_so(run, demo_root, capsys):
    image, _ = first_image(demo_root)
    note = "not applied by default: 9 validation images are too few (at least 30) to show that calibration helps"
    runs.atomic_write_json(run / "calibration.json", {"temperature": 1.8, "apply_by_default": False, "note": note})
    assert main(["predict", str(run), str(image), "--uncalibrated"]) == 0
    raw = json.loads(capsys.readouterr().out)["probabilities"]
    assert main(["predict", str(run), str(image)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["probabilities"] == pytest.approx(raw, abs=1e-6)
    assert "raw probabilities: calibration not applied by default" in captured.err
    assert main(["predict", str(run), str(image), "--calibrated"]) == 0
    forced = json.loads(capsys.readouterr().out)["probabilities"]
    expected = scaling.apply_temperature(np.array([list(raw.values())]), 1.8)[0]
    np.testing.assert_allclose(list(forced.values()), expected, atol=1e-5)


def test_a_saved_threshold_makes_predict_report_a_decision(run, demo_root, capsys):
    image, _ = first_image(demo_root)
    assert main(["threshold", str(run), "--class", "melanoma", "--threshold", "0.0"]) == 0
    capsys.readouterr()
    assert main(["predict", str(run), str(image)]) == 0
    captured = capsys.readouterr()
    # this tiny run is near chance: the fitness gate withholds the decision, and says why
    assert json.loads(captured.out)["decision"] is None and "refer" not in captured.err
    assert "decision withheld" in json.loads(captured.out)["decision_withheld"] and "decision withheld" in captured.err
    fit_for_use(run)
    assert main(["predict", str(run), str(image)]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert list(printed["probabilities"]) == ["nevus", "melanoma", "seborrheic keratosis"]
    assert printed["decision"]["refer"] is True and printed["decision_withheld"] is None
    assert "decision: refer: melanoma suspected" in captured.err
    assert main(["threshold", str(run), "--class", "melanoma", "--specificity", "0.8"]) == 0
    rule = rules.read_threshold(run)
    labels, probs, names = saved(run, "val")
    assert rule["calibrated"] is False  # picked on the raw probabilities, as the ROC, and recorded so
    table = operating.table_at(labels == 1, probs[:, 1], rule["threshold"])
    assert table["specificity"] >= 0.8
    # threshold.json says where the rule was chosen and what it did there
    assert rule["split"] == "val" and (rule["sensitivity"], rule["specificity"]) == pytest.approx(
        (table["sensitivity"], table["specificity"]))


def test_calibrate_fits_an_older_run_without_calibration(run, capsys):
    (run / "calibration.json").unlink()
    assert scaling.read_temperature(run) == 1.0
    assert main(["calibrate", str(run)]) == 0
    assert "temperature" in capsys.readouterr().out
    assert (run / "calibration.json").is_file()


def test_explain_writes_overlay_heatmap_and_json(run, demo_root, tmp_path, capsys):
    image, mask = first_image(demo_root)
    out = tmp_path / "explained"
    assert main(["explain", str(run), str(image), "--mask", str(mask), "--method", "gradcam++",
                 "--class", "melanoma", "--out", str(out)]) == 0
    heat = np.load(out / "heatmap.npy")
    assert heat.dtype == np.float32 and heat.shape == (32, 32)
    assert 0.0 <= heat.min() and heat.max() <= 1.0
    assert Image.open(out / "heatmap.png").size == Image.open(image).size  # drawn on the original image
    record = json.loads((out / "explain.json").read_text())
    assert record["method"] == "gradcam++" and record["class"] == "melanoma"
    assert sum(record["probabilities"].values()) == pytest.approx(1.0)
    assert record["focus"] is not None and 0.0 <= record["focus"] <= 1.0  # a mask was given: focus is computed


def test_evaluate_explain_and_tta_add_columns_and_keys(run, capsys):
    assert main(["evaluate", str(run), "--split", "val", "--explain", "--tta"]) == 0
    out = capsys.readouterr().out
    assert "calibration: temperature" in out and "operating points" in out and "lesion focus" in out
    frame = inference.read_predictions(run / "predictions_val.csv")
    assert {"focus", "peak_in_lesion"} <= set(frame.columns)
    metrics = runs.read_metrics(run, "val")
    assert {"auc", "calibration", "operating_points", "explain", "tta"} <= set(metrics)
    assert metrics["explain"]["n_images"] == len(frame)
    focus = frame["focus"].replace("", np.nan).astype(float).dropna()
    assert metrics["explain"]["mean_focus"] == pytest.approx(focus.mean(), abs=1e-3)
    assert len(metrics["tta"]["auc_tta"]) == 3


def test_explain_refuses_an_unknown_class(run, demo_root, tmp_path, capsys):
    image, _ = first_image(demo_root)
    assert main(["explain", str(run), str(image), "--class", "wart", "--out", str(tmp_path / "x")]) == 2
    assert "not one of the run's classes" in capsys.readouterr().err


@pytest.mark.slow
def test_review_on_real_isic_images_with_masks(isic_dev_root, tmp_path, capsys):
    assert main(["train", "--data", str(isic_dev_root), *TINY[:-2], "--image-size", "64", "--max-size", "60",
                 "--out", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert main(["evaluate", str(run_dir), "--split", "test", "--explain"]) == 0
    frame = inference.read_predictions(run_dir / "predictions_test.csv")
    focus = frame["focus"].replace("", np.nan).astype(float)
    assert focus.notna().sum() >= len(frame) // 2  # every ISIC image has a mask
    assert ((focus.dropna() >= 0) & (focus.dropna() <= 1)).all()
    summary = runs.read_metrics(run_dir, "test")["explain"]
    assert summary["n_images"] == len(frame) and summary["n_scored"] == focus.notna().sum()
    assert 0 <= summary["pointing_game"] <= 1
    assert main(["report", str(run_dir), "--out", str(tmp_path / "report.html")]) == 0
    assert "Lesion focus" in (tmp_path / "report.html").read_text()
