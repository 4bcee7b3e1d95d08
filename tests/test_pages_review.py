"""The review sections of the Results and Predictions pages (Streamlit AppTest, a tiny real run)."""

from __future__ import annotations

import pytest

from lesion_core import paths, runs
from lesion_core.evaluation import operating
from lesion_core import inference
from lesion_core import settings
from lesion_core import training
from lesion_core.inference import decision as rules
from tests.test_pages import LENET, goto, texts


@pytest.fixture
def tiny_run(demo_root):
    config = {"data": {"root": str(demo_root)}, "model": LENET, "image_size": 32, "epochs": 1,
              "augment": [], "eval_augment": []}
    return training.run_training(config, paths.runs_dir())


def test_results_page_shows_calibration_operating_point_and_computes_focus(app, tiny_run):
    goto(app, "results")
    assert not app.error, [e.value for e in app.error]
    labels = [m.label for m in app.metric]
    assert {"Temperature", "ECE (15 bins)", "Sensitivity", "Specificity", "PPV", "NPV"} <= set(labels)
    assert "res_op_save" not in [b.key for b in app.button]  # test is previewed, never saved from
    assert "Decision rules are chosen on the validation split" in texts(app)
    app.radio(key="keep_res_split").set_value("val").run()
    app.radio(key="keep_res_op_mode").set_value("specificity at least").run()
    app.slider(key="keep_res_op_spec").set_value(0.9).run()
    specificity = next(m.value for m in app.metric if m.label == "Specificity")
    assert specificity != "n/a", "a threshold high enough always reaches 90% specificity"
    assert float(specificity.rstrip("%")) >= 90.0
    app.button(key="res_op_save").click().run()
    rule = rules.read_threshold(tiny_run)
    assert rule is not None and rule["class"] == "melanoma" and rule["split"] == "val"
    app.button(key="res_explain_split").click().run()
    assert not app.exception, app.exception
    assert "Mean lesion focus" in [m.label for m in app.metric]
    assert "explain" in runs.read_metrics(tiny_run, "val")  # the split being viewed
    app.toggle(key="res_tta").set_value(True).run()
    assert not app.exception, app.exception
    assert "tta" in runs.read_metrics(tiny_run, "val")
    app.button(key="res_report_build").click().run()
    assert not app.exception, app.exception
    assert len(app.get("download_button")) == 3 + 1  # the run's files and report.html


def test_predictions_page_toggles_the_heatmap_and_reports_a_saved_decision(app, tiny_run, demo_root):
    operating.save_threshold(tiny_run, "melanoma", 0.0)
    goto(app, "predictions")
    app.button[0].click().run()  # "View large" of the first gallery image
    assert not app.exception, app.exception
    n_images = len(app.image)  # the gallery and the large view
    app.toggle(key="pred_heatmap").set_value(True).run()
    assert not app.exception, app.exception
    assert "Grad-CAM of" in texts(app)
    assert len(app.image) == n_images  # the large view now shows the heatmap overlay
    app.get("file_uploader")[0].set_value(("lesion.jpg", (demo_root / "images" / "demo_0001.jpg").read_bytes(),
                                            "image/jpeg")).run()
    tta = app.toggle(key=f"keep_pred_tta_{tiny_run.name}")
    assert tta.value is False  # as the run scored its own images (its config's tta)
    tta.set_value(True).run()
    assert not app.exception, app.exception
    # a near-chance tiny run with a threshold of 0: the fitness gate withholds the decision, first, in words
    assert "decision withheld" in texts(app) and "refer:" not in texts(app) and "suspected" not in texts(app)
    assert any(w.value.startswith("decision withheld") for w in app.warning)


def test_predictions_gallery_sorts_and_filters_by_lesion_focus(app, tiny_run):
    from lesion_core.cli import main

    assert main(["evaluate", str(tiny_run), "--split", "test", "--explain"]) == 0
    frame = inference.read_predictions(tiny_run / "predictions_test.csv")
    focus = frame.set_index("id")["focus"].replace("", "nan").astype(float)
    goto(app, "predictions")
    app.selectbox(key="keep_pred_sort").set_value("lesion focus (lowest first)").run()
    assert not app.exception, app.exception
    shown = [b.key.removeprefix("pred_open_") for b in app.button if b.key and b.key.startswith("pred_open_")]
    values = [focus[i] for i in shown]
    defined = [v for v in values if v == v]
    assert defined == sorted(defined) and values[:len(defined)] == defined  # lowest first, unscored last
    app.checkbox(key="keep_pred_low_focus").check().run()
    shown = [b.key.removeprefix("pred_open_") for b in app.button if b.key and b.key.startswith("pred_open_")]
    assert all(focus[i] < 0.5 for i in shown)


def test_predictions_gallery_and_large_view_show_the_same_probabilities(app, tiny_run):
    # A new user saw "predicted melanoma (41%)" under an image whose large view said 98.6%: the
    # caption was raw, the view calibrated. One switch now drives both, and the loss with them.
    from lesion_core.evaluation import review
    from lesion_core.i18n import number

    runs.atomic_write_json(tiny_run / "calibration.json", {"temperature": 0.3})
    raw = inference.read_predictions(tiny_run / "predictions_test.csv")
    scaled = review.scaled_frame(raw, 0.3).set_index("id")
    raw = raw.set_index("id")
    goto(app, "predictions")
    app.selectbox(key="keep_pred_sort").set_value("confidence (highest first)").run()
    first = next(b.key.removeprefix("pred_open_") for b in app.button if b.key and b.key.startswith("pred_open_"))
    assert first == scaled["confidence"].idxmax()

    def shown(frame, column, digits, percent=False):
        return number(float(frame.loc[first, column]), digits, "en", percent=percent)

    assert shown(scaled, "confidence", 0, True) != shown(raw, "confidence", 0, True)  # the test can tell them apart
    caption = next(c.value for c in app.caption if f"`{first}`" in c.value)
    assert f"({shown(scaled, 'confidence', 0, True)})" in caption
    app.button(key=f"pred_open_{first}").click().run()
    assert f"Cross-entropy loss {shown(scaled, 'loss', 3)}" in texts(app)
    app.toggle(key="keep_pred_calibrated").set_value(False).run()
    caption = next(c.value for c in app.caption if f"`{first}`" in c.value)
    assert f"({shown(raw, 'confidence', 0, True)})" in caption
    assert f"Cross-entropy loss {shown(raw, 'loss', 3)}" in texts(app)
    assert not app.exception, app.exception


def test_predictions_page_warns_that_a_demo_run_knows_nothing_of_real_lesions(app, demo_root):
    config = {"data": {"root": "demo"}, "model": LENET, "image_size": 32, "epochs": 1, "augment": [],
              "eval_augment": []}
    training.run_training(config, paths.runs_dir())
    goto(app, "predictions")
    assert "learned from the synthetic demo images" in texts(app)


def test_predictions_page_offers_no_upload_for_a_run_without_weights(app, demo_root):
    config = settings.validate_config({"data": {"root": str(demo_root)}, "model": LENET, "image_size": 32, "epochs": 1,
                                    "augment": [], "eval_augment": []})
    run_dir = runs.create_run(paths.runs_dir(), config)  # stopped before its first epoch ended: no best.pt
    app.session_state["keep_run"] = run_dir.name
    goto(app, "predictions")
    assert not app.exception, app.exception
    assert f"run {run_dir.name} has no best.pt yet" in texts(app)
    assert len(app.get("file_uploader")) == 0


def test_a_damaged_calibration_file_is_named_on_results_and_predictions(app, tiny_run):
    # {"temperature": -3} was ignored without a word: the pages showed raw probabilities under
    # a switch that said "calibrated".
    (tiny_run / "calibration.json").write_text('{"temperature": -3}')
    for page in ("results", "predictions"):
        goto(app, page)
        assert not app.exception, app.exception
        warnings = [w.value for w in app.warning]
        assert any("calibration.json: temperature -3" in w and "ignored" in w for w in warnings), (page, warnings)


def test_a_saved_rule_is_shown_after_a_reload_and_replacing_it_asks_first(app, tiny_run):
    operating.save_threshold(tiny_run, "melanoma", 0.38, calibrated=False)
    goto(app, "results")
    app.radio(key="keep_res_split").set_value("val").run()
    app.toggle(key="keep_res_calibrated").set_value(False).run()  # the probabilities the rule was saved on
    assert app.slider(key="keep_res_op_threshold").value == pytest.approx(0.38)  # not back at 0.50
    assert "Saved decision rule: refer when p(melanoma) >= 0.380" in texts(app)
    assert "res_op_save" not in [b.key for b in app.button]  # the saved rule is what the slider shows
    app.slider(key="keep_res_op_threshold").set_value(0.6).run()
    app.button(key="res_op_save").click().run()
    assert rules.read_threshold(tiny_run)["threshold"] == pytest.approx(0.38)  # one click overwrites nothing
    assert "This replaces the saved rule" in texts(app)
    app.button(key="res_op_replace").click().run()
    assert not app.exception, app.exception
    assert rules.read_threshold(tiny_run)["threshold"] == pytest.approx(0.6)


def test_a_lesion_crop_runs_heatmap_marks_its_view_and_says_why_its_focus_is_high(app, demo_root):
    # issue 26: "Lesion focus on a lesion-crop run was 0.92 ... No caveat; the heatmap is a blurry 96 px crop"
    crop = [{"name": "CropByMask", "params": {"border": 4}}]
    config = {"data": {"root": str(demo_root)}, "model": LENET, "image_size": 32, "epochs": 1,
              "augment": crop, "eval_augment": crop}
    training.run_training(config, paths.runs_dir())
    goto(app, "predictions")
    app.button[0].click().run()  # "View large" of the first gallery image
    app.toggle(key="pred_heatmap").set_value(True).run()
    assert not app.exception, app.exception
    assert "the yellow box marks what the model saw" in texts(app)
    assert "This run crops each image to its lesion" in texts(app) and "focus lift" in texts(app)
