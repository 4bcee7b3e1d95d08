"""One number, one answer: every face of one trained run gives the same numbers, and a damaged
calibration.json means the same thing (ignored, and said to be) to predict, the pages' reader,
the report and the export."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from lesion_core import data, export, inference, runs
from lesion_core.cli import main
from lesion_core.evaluation import operating, report
from lesion_core.inference.temperature import read_calibration
from lesion_core import settings
from lesion_core import training

TINY = {"model": {"name": "lenet", "weights": "random"}, "image_size": 32, "batch_size": 8, "epochs": 2,
        "augment": [], "eval_augment": [], "bn_recalibration_images": 0}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, demo_root) -> Path:
    """One small run trained for real, with a temperature that changes its probabilities."""
    run = training.run_training(dict(TINY, data={"root": str(demo_root)}), tmp_path_factory.mktemp("one") / "runs")
    runs.atomic_write_json(run / "calibration.json", {"temperature": 1.7, "fitted_on": "val"})
    return run


@pytest.fixture
def run_copy(run_dir, tmp_path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "runs" / run_dir.name))


def one_image(run: Path) -> tuple[Path, np.ndarray]:
    record = settings.load_data(runs.read_config(run)).split("test")[0]
    return record.image_path, data.read_image(record.image_path)


def test_every_face_gives_the_same_numbers(run_dir, tmp_path, capsys):
    stored = runs.read_metrics(run_dir, "test")
    # evaluate re-scores the run on the probabilities its metrics name, and says it reproduces them
    assert stored["probabilities"] == "raw"
    rescored = inference.evaluate_run(run_dir, "test")
    for key in ("mean_auc", "accuracy", "macro_auc"):
        assert rescored[key] == pytest.approx(stored[key], abs=1e-6), key
    assert main(["evaluate", str(run_dir), "--split", "test"]) == 0
    assert "(raw probabilities) reproduces metrics_test.json" in capsys.readouterr().out
    # robustness scores its unshifted baseline as the run did
    from lesion_core.evaluation import robustness

    baseline = robustness.robustness_report(run_dir, "test", conditions=[], n_resamples=20)["baseline"]
    assert baseline["mean_auc"]["value"] == pytest.approx(stored["mean_auc"], abs=1e-6)
    # the report's headline AUC table is the stored interval, and its operating points are the stored ones
    html = report.build_report(run_dir, "test", with_heatmaps=False)
    intervals = stored["intervals"]["mean_auc"]
    assert f"{intervals['value']:.3f}" in html or f"{stored['mean_auc']:.3f}" in html
    melanoma = stored["operating_points"]["melanoma"]
    assert melanoma["probabilities"] == "raw"
    row = re.search(r"<tr><td>melanoma</td>((?:<td>[^<]*</td>){4})</tr>", html).group(1)
    shown = re.findall(r"<td>([^<]*)</td>", row)[:3]
    assert shown == [f"{v:.3f}" for v in melanoma["sens_at_spec"].values()]
    # predict (function and CLI) and explain on one image: the same probabilities
    path, image = one_image(run_dir)
    predicted = inference.predict_image(run_dir, image)
    assert main(["predict", str(run_dir), str(path)]) == 0
    cli = json.loads(capsys.readouterr().out)["probabilities"]
    assert cli == pytest.approx(predicted, abs=1e-6)
    assert main(["explain", str(run_dir), str(path), "--out", str(tmp_path / "explained")]) == 0
    explained = json.loads((tmp_path / "explained" / "explain.json").read_text())["probabilities"]
    assert explained == pytest.approx(predicted, abs=1e-6)
    # the exported model (TTA off, no metadata prior: the same pipeline) gives predict's numbers
    out = tmp_path / "model.onnx"
    sidecar = export.export_run(run_dir, "onnx", out)
    assert sidecar["temperature"] == 1.7
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": image[None]})[0][0]
    expected = np.array([predicted[name] for name in sidecar["class_names"]])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert sidecar["verification"]["max_abs_diff_vs_predict"] <= 1e-4  # the export's own check is against predict


def test_a_tta_run_exports_its_tta_and_matches_predict(run_copy, tmp_path):
    # issue 26: predict averaged 8 views, the exported graph did not (0.32 apart on real images)
    config = runs.read_config(run_copy)
    runs.atomic_write_json(run_copy / "config.json", dict(config, tta=True))
    out = tmp_path / "tta.onnx"
    sidecar = export.export_run(run_copy, "onnx", out)
    assert sidecar["tta"] is True and sidecar["metadata_prior"] is None
    assert sidecar["verification"]["max_abs_diff_vs_predict"] <= 1e-4
    import onnxruntime

    _, image = one_image(run_copy)
    got = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"images": image[None]})[0][0]
    predicted = inference.predict_image(run_copy, image)
    np.testing.assert_allclose(got, [predicted[n] for n in sidecar["class_names"]], atol=1e-4)
    plain = inference.predict_image(run_copy, image, tta=False)
    assert np.abs(np.array(list(plain.values())) - np.array(list(predicted.values()))).max() > 1e-4  # TTA matters
    # robustness scores with the run's TTA too: its baseline is evaluate's number
    from lesion_core.evaluation import robustness

    baseline = robustness.robustness_report(run_copy, "test", conditions=[], n_resamples=20)["baseline"]
    evaluated = inference.evaluate_run(run_copy, "test")
    assert baseline["mean_auc"]["value"] == pytest.approx(evaluated["mean_auc"], abs=1e-6)
    assert evaluated["mean_auc"] != pytest.approx(inference.evaluate_run(run_copy, "test", tta=False)["mean_auc"],
                                                  abs=1e-6)


def test_a_lesion_crop_run_exports_with_image_and_mask_and_gives_predicts_numbers(isic_dev_root, tmp_path,
                                                                                 capsys):
    # issue 26: "A lesion-crop run cannot be exported (the run's evaluation pipeline has a CropByMask step)"
    config = dict(TINY, augment="notebook_train", eval_augment="auto", epochs=1, batch_size=16,
                  data={"root": str(isic_dev_root)})
    run = training.run_training(config, tmp_path / "runs")
    assert runs.read_config(run)["eval_augment"][0]["name"] == "CropByMask"  # the run crops to the lesion
    out = tmp_path / "crop.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert "inputs: image (N, H, W, 3) and mask (N, H, W)" in capsys.readouterr().out
    sidecar = json.loads(export.sidecar_path(out).read_text())
    assert [(i["name"], i["dtype"], i["shape"]) for i in sidecar["inputs"]] == [
        ("image", "uint8", ["N", "H", "W", 3]), ("mask", "uint8", ["N", "H", "W"])]
    assert "bounding box" in sidecar["lesion_crop"] and sidecar["preprocessing"][0]["name"] == "CropByMask"
    assert sidecar["verification"]["images"] == export.VERIFY_IMAGES
    assert sidecar["verification"]["max_abs_diff_vs_predict"] <= sidecar["verification"]["tolerance_vs_predict"]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    records = [r for r in settings.load_data(runs.read_config(run)).split("test") if r.mask_path][:6]
    images = [data.read_image(r.image_path) for r in records]
    masks = [data.read_mask(r.mask_path, image.shape[:2]) for r, image in zip(records, images)]
    got = session.run(None, {"image": np.stack(images), "mask": np.stack(masks)})[0]  # one batch, six crops
    calibrated = read_calibration(run).by_default
    expected = np.array([[inference.predict_image(run, image, mask, calibrated=calibrated)[n]
                          for n in sidecar["class_names"]] for image, mask in zip(images, masks)])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # predict and explain (CLI) on one image and its mask: the same numbers, and the view explain marks
    assert main(["predict", str(run), str(records[0].image_path), "--mask", str(records[0].mask_path)]) == 0
    printed = json.loads(capsys.readouterr().out)["probabilities"]
    assert [printed[n] for n in sidecar["class_names"]] == pytest.approx(expected[0], abs=1e-6)
    assert main(["explain", str(run), str(records[0].image_path), "--mask", str(records[0].mask_path),
                 "--out", str(tmp_path / "explained")]) == 0
    explained = json.loads((tmp_path / "explained" / "explain.json").read_text())
    assert explained["probabilities"] == pytest.approx(printed, abs=1e-6)
    assert explained["view_box"][2] * explained["view_box"][3] < masks[0].size  # the lesion's crop, not the image
    # the crop is the mask's: another mask gives other numbers, an empty one the whole image's
    shifted = session.run(None, {"image": images[0][None], "mask": np.zeros_like(masks[0])[None]})[0][0]
    whole = inference.predict_image(run, images[0], np.zeros_like(masks[0]), calibrated=calibrated)
    np.testing.assert_allclose(shifted, [whole[n] for n in sidecar["class_names"]], atol=1e-4)
    assert np.abs(shifted - got[0]).max() > 1e-4


def test_each_stored_operating_point_lies_on_the_raw_roc_of_the_predictions_csv(run_dir):
    frame = inference.read_predictions(run_dir / "predictions_test.csv")
    names = frame.attrs["class_names"]
    stored = runs.read_metrics(run_dir, "test")["operating_points"]
    for name in names:
        assert stored[name]["probabilities"] == "raw"
        scores = frame[f"prob_{name}"].to_numpy(dtype=float)
        is_class = (frame["label"] == name).to_numpy()
        for target, sens in stored[name]["sens_at_spec"].items():
            again, _ = operating.sensitivity_at_specificity(is_class, scores, float(target))
            assert again == pytest.approx(sens, abs=1e-6) or (np.isnan(again) and sens is None)


@pytest.mark.parametrize("content", ['{"temperature": -3}', '{"temperature": 1e-300}', '{"temperature": 40}',
                                     "{not json", "[1.7]"])
def test_a_damaged_calibration_file_is_ignored_and_said_so_everywhere(run_copy, content, capsys):
    (run_copy / "calibration.json").write_text(content)
    calibration = read_calibration(run_copy)
    assert calibration.temperature == 1.0 and "calibration.json" in calibration.problem
    assert "ignored" in calibration.problem
    path, image = one_image(run_copy)
    assert main(["predict", str(run_copy), str(path)]) == 0
    captured = capsys.readouterr()
    assert "calibration.json" in captured.err and "ignored" in captured.err
    assert json.loads(captured.out)["probabilities"] == pytest.approx(inference.predict_image(run_copy, image, calibrated=False),
                                                     abs=1e-6)
    # the export reads the same file the same way: nothing baked in, and the sidecar says why
    _, sidecar = export.build_exportable(run_copy)
    assert sidecar["temperature"] is None and sidecar["calibration_ignored"] == calibration.problem
    assert calibration.problem in report.build_report(run_copy, "test", with_heatmaps=False)


def test_a_near_chance_run_withholds_its_decision_in_predict_the_report_and_the_export(run_copy, capsys):
    operating.save_threshold(run_copy, "melanoma", 0.0)  # p >= 0: every image would be referred
    val = runs.read_metrics(run_copy, "val")
    val["intervals"] = dict(val["intervals"], mean_auc={"value": 0.58, "ci_low": 0.45, "ci_high": 0.70, "n": 90})
    val["counts"] = [30] * len(val["class_names"])  # enough images: the AUC alone withholds it
    runs.atomic_write_json(run_copy / "metrics_val.json", val)
    path, _ = one_image(run_copy)
    assert main(["predict", str(run_copy), str(path)]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert set(printed) == {"probabilities", "decision", "decision_withheld"} and printed["decision"] is None
    assert "0.450" in printed["decision_withheld"] and "refer:" not in captured.err
    assert captured.err.startswith("decision withheld")
    html = report.build_report(run_copy, "test", with_heatmaps=False)
    assert "decision withheld" in html and "refer when" not in html
    _, sidecar = export.build_exportable(run_copy)
    assert sidecar["decision_withheld"].startswith("decision withheld")


def test_an_unreachable_specificity_names_the_best_reachable_one(run_copy, capsys):
    with pytest.raises(SystemExit) as refused:  # argparse refuses it in one line (cli.review._fraction)
        main(["threshold", str(run_copy), "--class", "melanoma", "--specificity", "1.5"])
    assert refused.value.code == 2 and "must be a number from 0 to 1, got 1.5" in capsys.readouterr().err
    frame = inference.read_predictions(run_copy / "predictions_val.csv")
    is_class = (frame["label"] == "melanoma").to_numpy()
    best = operating.best_specificity_with_sensitivity(is_class, frame["prob_melanoma"].to_numpy(dtype=float))
    if best < 1.0:  # a target above the best is refused with the best named, and the best works
        assert main(["threshold", str(run_copy), "--class", "melanoma", "--specificity", "1.0"]) != 0
        assert f"the highest reachable is {best:.3f}" in capsys.readouterr().err
    assert main(["threshold", str(run_copy), "--class", "melanoma", "--specificity",
                 f"{np.floor(best * 100) / 100:.2f}"]) == 0


def test_predictions_csv_names_raw_and_calibrated_columns_and_old_files_still_load(run_dir, tmp_path):
    import csv

    from lesion_core.inference.temperature import apply_temperature

    path = run_dir / "predictions_test.csv"
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    names = runs.read_config(run_dir)["data"]["class_names"]
    raw = np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows])
    cal = np.array([[float(r[f"cal_prob_{n}"]) for n in names] for r in rows])
    temperature = runs.read_metrics(run_dir, "test")["calibration"]["temperature"]  # the T they were written with
    np.testing.assert_allclose(cal, apply_temperature(raw, temperature), atol=2e-6)
    frame = inference.read_predictions(path)
    assert frame.attrs["class_names"] == names  # cal_prob_ columns are not classes
    # a run folder from before: the same file without the calibrated columns reads the same
    old = tmp_path / "predictions_test.csv"
    with open(old, "w", newline="") as handle:
        writer = csv.DictWriter(handle, [c for c in rows[0] if not c.startswith("cal_prob_")], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    before = inference.read_predictions(old)
    assert before.attrs["class_names"] == names
    np.testing.assert_allclose(before[[f"prob_{n}" for n in names]].to_numpy(float), raw)


@pytest.mark.slow
def test_the_readme_threshold_example_works_on_the_readme_example_run(demo_root, tmp_path, monkeypatch, capsys):
    # issue 26: "`threshold RUN --class melanoma --specificity 0.89`, the README's own example, failed"
    import shlex

    from lesion_core import paths
    from tests.e2e_helpers import REPO, seed_demo_cache

    lines = [line.split("#")[0].strip() for line in (REPO / "README.md").read_text().splitlines()]
    train = next(line for line in lines if line.startswith("python -m lesion_core train --data DIR|demo"))
    threshold = next(line for line in lines if line.startswith("python -m lesion_core threshold RUN --class"))
    assert "--specificity 0.89" in threshold
    seed_demo_cache(paths.cache_dir(), demo_root)  # the demo, 60 images instead of 300
    monkeypatch.chdir(tmp_path)
    assert main([arg.replace("DIR|demo", "demo") for arg in shlex.split(train)[3:]]) == 0  # the quick recipe
    run = next((tmp_path / "runs").iterdir())
    capsys.readouterr()
    assert main([str(run) if arg == "RUN" else arg for arg in shlex.split(threshold)[3:]]) == 0
    printed = capsys.readouterr().out
    assert "specificity >= 0.89 on val: threshold" in printed and "saved: refer when p(melanoma) >=" in printed
    rule = json.loads((run / "threshold.json").read_text())
    assert rule["split"] == "val" and rule["specificity"] >= 0.89 and rule["sensitivity"] > 0
