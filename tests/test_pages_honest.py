"""Pages a student can read and predictions that do not overstate themselves (AppTest)."""

from __future__ import annotations
from lesion_core import settings
from lesion_core import training

from tests.test_pages import goto, texts

LENET = {"name": "lenet", "weights": "random", "weights_path": None, "freeze_backbone": False}


def test_train_page_shows_the_evaluation_steps_of_a_lesion_cropping_pipeline(app):
    app.session_state["model"] = LENET
    goto(app, "train")
    app.radio(key="keep_tr_aug").set_value("notebook_train").run()
    caption = next(c.value for c in app.caption if c.value.startswith("Evaluation"))
    assert "Evaluation (validation, test, predictions) uses: CropByMask(border=0) → Rescale" in caption  # one crop
    assert "Flip" not in caption and "Skin" not in caption
    app.radio(key="keep_tr_aug").set_value("default_train").run()
    caption = next(c.value for c in app.caption if c.value.startswith("Evaluation"))
    assert "CropByMask" not in caption and "CenterCrop(size=96)" in caption


def _untrained_run(demo_root):
    """A LeNet run of one epoch on a few images: its predictions are close to a guess."""
    from lesion_core import paths

    config = {"data": {"root": str(demo_root), "max_size": 24}, "model": LENET, "image_size": 32, "epochs": 1,
              "batch_size": 8, "augment": []}
    return training.run_training(config, paths.runs_dir())


def test_an_uncertain_prediction_is_labelled_so_with_every_class_and_the_run_s_validation(app, demo_root):
    from lesion_core.evaluation import confidence

    _untrained_run(demo_root)
    goto(app, "predictions")
    assert confidence.DISCLAIMER in texts(app)
    app.get("file_uploader")[0].set_value(("lesion.jpg", (demo_root / "images" / "demo_0001.jpg").read_bytes(),
                                            "image/jpeg")).run()
    assert not app.exception and not app.error
    assert not app.success  # never green, whatever the answer
    assert app.warning[0].value.startswith("Uncertain. Most likely:")
    table = app.dataframe[-1].value
    assert list(table["class"]) and set(table["class"]) == {"nevus", "melanoma", "seborrheic keratosis"}
    assert "validation images: mean AUC" in texts(app)
    assert confidence.DISCLAIMER in texts(app)


def test_a_corrupt_upload_says_it_is_not_an_image(app, demo_root):
    _untrained_run(demo_root)
    goto(app, "predictions")
    app.get("file_uploader")[0].set_value(("junk.jpg", b"\x00 not a picture at all", "image/jpeg")).run()
    assert not app.exception
    message = app.error[0].value
    assert "cannot read image junk.jpg: not an image" in message
    assert "object at" not in message and "BytesIO" not in message


def test_describe_labels_low_top_probabilities_uncertain():
    from lesion_core.evaluation import confidence

    low = confidence.describe({"nevus": 0.38, "melanoma": 0.33, "seborrheic keratosis": 0.29})
    assert low["uncertain"] and low["top"] == "nevus" and "38%" in low["headline"]
    assert [name for name, _ in low["ranked"]] == ["nevus", "melanoma", "seborrheic keratosis"]
    high = confidence.describe({"nevus": 0.05, "melanoma": 0.9, "seborrheic keratosis": 0.05})
    assert not high["uncertain"] and high["headline"] == "Most likely: melanoma (90%)"


def test_dataset_batch_has_a_caption_under_each_image_and_names_its_pipeline(app):
    goto(app, "dataset")
    batch = app.image[1:]
    assert len(batch) == 16
    captions = [image.proto.imgs[0].caption for image in batch]
    classes = {"nevus", "melanoma", "seborrheic keratosis"}
    assert all(c.split(" · ")[0] in classes and c.split(" · ")[1].startswith("demo_") for c in captions)
    assert "Pipeline: the evaluation preset at 128 px" in texts(app)
    assert "Rescale(size=146) → CenterCrop(size=128)" in texts(app)


def test_a_stopped_run_with_best_weights_is_evaluated_from_the_results_page(app, demo_root):
    """Stopped after its first epoch (best.pt saved, no metrics): one button scores it."""
    from lesion_core import paths, runs

    config = settings.validate_config({"data": {"root": str(demo_root), "max_size": 24}, "model": LENET,
                                    "image_size": 32, "epochs": 3, "batch_size": 8, "augment": []})
    run_dir = runs.create_run(paths.runs_dir(), config)

    def stop_after_first_epoch(progress):
        if progress["epoch"] == 2:
            runs.request_stop(run_dir)

    training.run_training(run_dir=run_dir, on_batch=stop_after_first_epoch)
    assert runs.read_status(run_dir)["state"] == "stopped" and (run_dir / "best.pt").is_file()
    assert not (run_dir / "metrics_test.json").exists()
    goto(app, "results")
    assert "can be scored on its validation and test images" in texts(app)
    app.button(key="res_evaluate").click().run()
    assert not app.exception and not app.error
    assert {m.label for m in app.metric} >= {"Accuracy", "Images"}
    assert runs.read_metrics(run_dir, "test")["n"] == len(settings.load_data(config).split("test"))
    assert (run_dir / "predictions_val.csv").is_file()
    # scored as a finished run is: calibration fitted on val, probabilities named, intervals
    assert runs.read_metrics(run_dir, "test")["probabilities"] == "raw" and (run_dir / "calibration.json").is_file()
    assert "intervals" in runs.read_metrics(run_dir, "test")


def test_the_subset_size_reads_as_plain_words(app):
    app.session_state["model"] = LENET
    goto(app, "train")
    assert app.number_input(key="keep_tr_max_size").label == "Use at most N images (0 = all)"


def test_a_lesion_crop_run_asks_for_the_mask_and_says_so_when_it_is_missing(app, demo_root):
    from lesion_core import paths

    config = {"data": {"root": str(demo_root), "max_size": 24}, "model": LENET, "image_size": 32, "epochs": 1,
              "batch_size": 8, "augment": [{"name": "CropByMask", "params": {"border": 4}}]}
    training.run_training(config, paths.runs_dir())
    goto(app, "predictions")
    assert app.get("file_uploader")[1].proto.label.startswith("Lesion mask (needed")
    app.get("file_uploader")[0].set_value(("lesion.jpg", (demo_root / "images" / "demo_0001.jpg").read_bytes(),
                                            "image/jpeg")).run()
    assert not app.exception
    assert "trained on lesion crops" in app.error[0].value and "give the lesion mask" in app.error[0].value
    app.get("file_uploader")[1].set_value(("mask.png", (demo_root / "masks" / "demo_0001.png").read_bytes(),
                                            "image/png")).run()
    assert not app.error and "Most likely:" in texts(app)
