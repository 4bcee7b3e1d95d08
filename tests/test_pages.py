"""Every page renders on the demo data and its main interactions work (Streamlit AppTest).

The app runs in-process: pages call the real engine on a small demo (60 images, 96 px)
seeded where demo_dir() looks, and training runs as a real subprocess in a tmp runs folder.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lesion_core import paths, runs
from lesion_core import settings
from lesion_core import training
from tests.e2e_helpers import REPO, seed_demo_cache




def goto(app: AppTest, page: str) -> AppTest:
    """Switch to app_pages/<page>.py, run it and check it raised nothing."""
    app.switch_page(f"app_pages/{page}.py").run()
    assert not app.exception, app.exception
    return app


def texts(app: AppTest) -> str:
    """All markdown, captions, infos, warnings and errors of the page, as one string."""
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success")
             for e in getattr(app, kind)]
    return "\n".join(str(p) for p in parts)


def test_home_shows_dataset_device_and_next_steps(app):
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Dataset"] == "demo"
    assert metrics["Usable images"] == "60"
    assert "CPU" in metrics["Device"] or "GPU" in metrics["Device"]
    assert "No runs yet" in texts(app)
    assert len(app.get("page_link")) == 7  # Dataset ... Predictions, and Compare


def test_dataset_page_reports_counts_and_shows_samples_and_a_batch(app):
    goto(app, "dataset")
    assert "Current dataset: **demo**" in texts(app)
    assert len(app.get("plotly_chart")) == 1
    assert len(app.image) == 1 + 16  # the sample viewer and a batch of 16, one image each
    app.number_input(key="keep_ds_index").set_value(4).run()
    row = app.dataframe[-1].value.iloc[4]
    assert f"**id** `{row['id']}`" in texts(app)
    assert f"**label** {row['label']} ({row['class']})" in texts(app)


def test_dataset_page_filters_the_sample_table(app):
    goto(app, "dataset")
    app.multiselect(key="keep_ds_classes").set_value(["melanoma"]).run()
    app.multiselect(key="keep_ds_splits").set_value(["val"]).run()
    table = app.dataframe[-1].value
    assert len(table) == 3 and set(table["class"]) == {"melanoma"} and set(table["split"]) == {"val"}


def test_dataset_page_opens_a_server_folder(app, demo_root, tmp_path):
    goto(app, "dataset")
    app.radio(key="keep_ds_source").set_value("folder").run()
    app.text_input(key="keep_ds_folder").set_value(str(demo_root)).run()
    app.button(key="ds_open_folder").click().run()
    assert not app.exception and not app.error
    assert f"Current dataset: **{demo_root.name}**" in texts(app)
    # The choice survives a visit to another page.
    goto(app, "home")
    assert {m.label: m.value for m in app.metric}["Dataset"] == demo_root.name


def test_dataset_page_refuses_a_folder_without_a_dataset(app, tmp_path):
    goto(app, "dataset")
    app.radio(key="keep_ds_source").set_value("folder").run()
    app.text_input(key="keep_ds_folder").set_value(str(tmp_path)).run()
    app.button(key="ds_open_folder").click().run()
    assert not app.exception
    assert "no dataset found" in app.error[0].value
    assert "Current dataset: **demo**" in texts(app)  # the demo stays current


def step_names(app: AppTest) -> list[str]:
    return [s["name"] for s in app.session_state["pipeline"]]


def test_augment_page_previews_draws_with_their_parameters(app):
    goto(app, "augment")
    captions = [c.value for c in app.caption]
    assert any(c.startswith("8 draws of a 96x96 image") for c in captions)
    assert sum("RandomRotate90: k=" in c for c in captions) == 8
    assert len(app.image) == 1 + 8 + 16  # original, draws, a batch of 16
    before = [c for c in captions if "RandomRotate90" in c]
    app.button(key="aug_new").click().run()
    assert app.number_input(key="keep_aug_seed").value == 1
    assert [c.value for c in app.caption if "RandomRotate90" in c.value] != before


def test_augment_page_edits_the_pipeline(app):
    goto(app, "augment")
    assert step_names(app) == ["RandomResizedCrop", "RandomRotate90", "RandomHorizontalFlip", "RandomVerticalFlip"]
    app.selectbox(key="keep_aug_preset").set_value("notebook_train")
    app.button(key="aug_load_preset").click().run()
    assert step_names(app)[:2] == ["CropByMask", "RandomRotation"]
    assert "ToTensor" not in step_names(app)  # training adds the tensor steps for the model
    app.button(key="aug_down_1_0").click().run()  # move CropByMask below RandomRotation
    assert step_names(app)[:2] == ["RandomRotation", "CropByMask"]
    app.button(key="aug_rm_2_1").click().run()
    assert "CropByMask" not in step_names(app)
    app.selectbox(key="aug_add_name").set_value("ColorJitter")
    app.button(key="aug_add").click().run()
    assert step_names(app)[-1] == "ColorJitter"
    version = app.session_state["aug_edit_version"]
    app.number_input(key=f"aug_p_{version}_0_degrees").set_value(30.0).run()
    assert app.session_state["pipeline"][0]["params"]["degrees"] == 30.0
    assert not app.exception and not app.error
    assert '"degrees": 30.0' in app.code[0].value


def test_augment_page_adds_shades_of_grey_and_shows_each_draws_correction(app):
    goto(app, "augment")
    app.selectbox(key="aug_add_name").set_value("ShadesOfGrey")
    app.button(key="aug_add").click().run()
    assert step_names(app)[-1] == "ShadesOfGrey" and app.session_state["pipeline"][-1]["params"] == {"p": 6}
    version = app.session_state["aug_edit_version"]
    app.number_input(key=f"aug_p_{version}_4_p").set_value(2).run()
    assert app.session_state["pipeline"][-1]["params"] == {"p": 2}
    assert not app.exception and not app.error
    assert sum("ShadesOfGrey: gain=" in c.value for c in app.caption) == 8  # every draw says what it did


def test_augment_page_names_a_bad_parameter(app):
    goto(app, "augment")
    app.text_input(key="aug_p_0_0_size").set_value("[224, 0]").run()
    assert not app.exception
    assert "step 1 (RandomResizedCrop)" in app.error[0].value


def test_model_page_summarises_the_default_model_on_a_real_batch(app):
    goto(app, "model")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Output per image"] == "3 values"
    assert int(metrics["Parameters"].replace(",", "")) > 1_000_000
    assert "output (4, 3)" in app.success[0].value
    assert len(app.dataframe) == 2  # layers and parameters


def test_model_page_freezing_leaves_only_the_head_trainable(app):
    goto(app, "model")
    app.selectbox(key="keep_model_name").set_value("lenet").run()
    app.checkbox(key="keep_model_freeze").check().run()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Trainable"] == f"{84 * 3 + 3:,}"  # fc3 only
    assert app.session_state["model"] == {"name": "lenet", "weights": "default", "weights_path": None,
                                          "freeze_backbone": True}


def test_model_page_says_when_torchvision_weights_cannot_be_had(app, tmp_path, monkeypatch):
    from lesion_core.net import reachable

    if reachable("download.pytorch.org", 443, 3):
        pytest.skip("download.pytorch.org is reachable; this test is about the offline message")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty weights cache
    goto(app, "model")
    app.selectbox(key="keep_model_name").set_value("resnet18").run()
    app.radio(key="keep_model_weights").set_value("torchvision").run()
    assert not app.exception
    assert "resnet18" in app.error[0].value and "random" in app.error[0].value


LENET = {"name": "lenet", "weights": "random", "weights_path": None, "freeze_backbone": False}


def wait_for_state(states: tuple, timeout: float = 180):
    """Poll the runs folder until the newest run reaches one of states; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = runs.list_runs(paths.runs_dir())
        if listed and listed[0].state in states:
            return listed[0]
        time.sleep(0.5)
    raise AssertionError(f"no run reached {states} in {timeout}s: {listed[0].status if listed else 'no run'}")


def launch_tiny_run(app: AppTest, epochs: int) -> None:
    """Set a LeNet run on the demo (fast) and press Launch on the Train page."""
    app.session_state["model"] = LENET
    goto(app, "train")
    app.number_input(key="keep_tr_size").set_value(32)
    app.number_input(key="keep_tr_epochs").set_value(epochs)
    app.number_input(key="keep_tr_batch").set_value(16)
    device = app.selectbox(key="keep_tr_device")
    assert device.options[:2] == ["auto (a GPU when there is one, else the CPU)", "CPU"]
    device.set_value("cpu")
    app.button(key="tr_launch").click().run()
    assert not app.exception


def test_pages_without_runs_say_where_to_start(app):
    for page in ("results", "predictions"):
        goto(app, page)
        assert "No runs yet: launch one on the **Train** page." in texts(app)
    goto(app, "train")
    assert "Press **Launch**" in texts(app)


def test_train_launch_refuse_second_follow_then_results_and_predictions(app):
    launch_tiny_run(app, epochs=5)  # long enough that the second launch surely meets it active
    assert not app.error, app.error
    launched = app.session_state["keep_run"]
    assert app.sidebar.selectbox(key="keep_run").value == launched  # the picker shows the new run
    app.button(key="tr_launch").click().run()  # a second launch while the first is active
    assert "one training at a time" in app.error[0].value

    run = wait_for_state(("finished", "failed"))
    assert run.state == "finished", run.status
    assert run.config["model"]["name"] == "lenet" and run.config["epochs"] == 5
    assert (run.config["device"], run.config["processes"]) == ("cpu", 1)
    app.run()
    assert "**finished**" in texts(app)
    assert len(app.get("plotly_chart")) == 2  # loss and AUC curves
    assert app.sidebar.selectbox(key="keep_run").value == run.id  # the sidebar's run picker

    goto(app, "results")
    assert app.dataframe[0].value["run"].tolist() == [run.id]
    assert {m.label for m in app.metric} >= {"Accuracy", "Images"}
    charts = app.get("plotly_chart")
    # comparison overlays; confusion raw and %, PR, ROC; review: reliability, ROC and PR at the threshold
    assert len(charts) == 2 + 4 + 3
    assert len(app.get("download_button")) == 3

    goto(app, "predictions")
    frame_size = int(next(c.value for c in app.caption if " of " in c.value).split(" of ")[1].split()[0])
    assert len(app.image) == min(12, frame_size)
    app.radio(key="keep_pred_outcome").set_value("wrong").run()
    assert all(c.value.startswith("✗") for c in app.caption if c.value[:1] in "✓✗")
    app.radio(key="keep_pred_outcome").set_value("all").run()
    opened = next(b.key for b in app.button if b.key.startswith("pred_open_"))
    app.button(key=opened).click().run()
    assert not app.exception
    assert app.subheader[0].value.startswith(opened.removeprefix("pred_open_") + ": true ")
    assert len(app.get("plotly_chart")) == 1  # its probability bars

    # A new session (another browser tab) finds the run in the sidebar's picker.
    fresh = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    assert fresh.sidebar.selectbox(key="keep_run").value == run.id
    assert fresh.dataframe[-1].value["run"].tolist() == [run.id]  # Home's recent runs

    # Picking a run in the sidebar decides what Results shows.
    copy = f"{run.id}-copy"  # sorts first: the newest-looking run
    shutil.copytree(run.path, paths.runs_dir() / copy)
    fresh.run()
    assert fresh.sidebar.selectbox(key="keep_run").value == run.id  # a choice is kept
    fresh.sidebar.selectbox(key="keep_run").set_value(copy).run()
    goto(fresh, "results")
    assert f"Run {copy}" in [h.value for h in fresh.subheader]


def test_stop_button_stops_the_active_run(app):
    launch_tiny_run(app, epochs=200)
    wait_for_state(("running",))
    app.run()
    app.button(key="tr_stop").click().run()
    assert not app.exception
    run = wait_for_state(("stopped", "finished", "failed"))
    assert run.state == "stopped", run.status


def test_resume_button_continues_a_stopped_run_to_its_end(app):
    launch_tiny_run(app, epochs=30)
    wait_for_state(("running",))
    app.run()
    app.button(key="tr_stop").click().run()
    stopped = wait_for_state(("stopped", "finished", "failed"))
    assert stopped.state == "stopped", stopped.status
    app.run()
    app.button(key="tr_resume").click().run()
    assert not app.exception and not app.error
    run = wait_for_state(("finished", "failed", "stopped"))
    assert run.id == stopped.id and run.state == "finished", run.status
    epochs = [row["epoch"] for row in runs.read_history(run.path) if row["phase"] == "val"]
    assert epochs == list(range(1, 31))


def zip_bytes(entries: dict) -> bytes:
    """A ZIP archive in memory: arcname -> bytes."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def upload_zip(app: AppTest, name: str, content: bytes) -> None:
    goto(app, "dataset")
    app.radio(key="keep_ds_source").set_value("upload").run()
    app.get("file_uploader")[0].set_value((name, content, "application/zip")).run()
    app.button(key="ds_import").click().run()
    assert not app.exception


def test_dataset_page_imports_an_uploaded_zip(app, demo_root):
    files = {f"mydata/{p.relative_to(demo_root)}": p.read_bytes() for p in demo_root.rglob("*") if p.is_file()}
    upload_zip(app, "mydata.zip", zip_bytes(files))
    assert not app.error, app.error
    assert "Current dataset: **mydata**" in texts(app)
    assert app.session_state["dataset"]["source"] == "upload"
    assert (paths.cache_dir() / "uploads").is_dir()


def test_dataset_page_refuses_an_unsafe_zip(app):
    upload_zip(app, "evil.zip", zip_bytes({"../evil.txt": b"x", "labels.csv": b"id,label\n"}))
    assert "evil.txt" in app.error[0].value
    assert "Current dataset: **demo**" in texts(app)
    assert not (paths.cache_dir() / "evil.txt").exists()


def test_dataset_page_refuses_a_zip_without_a_dataset(app):
    upload_zip(app, "notes.zip", zip_bytes({"notes/readme.txt": b"hello"}))
    assert "no dataset found" in app.error[0].value


def test_augment_page_previews_an_uploaded_image_and_mask(app, demo_root):
    goto(app, "augment")
    app.radio(key="keep_aug_source").set_value("upload").run()
    image = (demo_root / "images" / "demo_0001.jpg").read_bytes()
    mask = (demo_root / "masks" / "demo_0001.png").read_bytes()
    app.get("file_uploader")[0].set_value(("lesion.jpg", image, "image/jpeg"))
    app.get("file_uploader")[1].set_value(("lesion.png", mask, "image/png")).run()
    assert not app.exception and not app.error
    assert any(c.value.startswith("8 draws of a 96x96 image") for c in app.caption)


def test_augment_page_says_which_step_needs_a_mask(app, demo_root):
    goto(app, "augment")
    app.radio(key="keep_aug_source").set_value("upload").run()
    image = (demo_root / "images" / "demo_0001.jpg").read_bytes()
    app.get("file_uploader")[0].set_value(("lesion.jpg", image, "image/jpeg")).run()
    app.selectbox(key="keep_aug_preset").set_value("notebook_train")
    app.button(key="aug_load_preset").click().run()
    assert not app.exception
    assert "needs a lesion mask" in app.error[0].value and "CropByMask" in app.error[0].value


def test_train_page_refuses_bad_class_weights_with_a_clear_message(app):
    app.session_state["model"] = LENET
    goto(app, "train")
    app.selectbox(key="keep_tr_weights").set_value("custom").run()
    app.text_input(key="keep_tr_custom_weights").set_value("1, heavy, 2").run()
    app.button(key="tr_launch").click().run()
    assert not app.exception
    assert "class_weights" in app.error[0].value
    assert runs.list_runs(paths.runs_dir()) == []  # nothing was started


def test_dataset_viewer_index_follows_a_shrinking_filter(app):
    goto(app, "dataset")
    app.number_input(key="keep_ds_index").set_value(50).run()
    app.multiselect(key="keep_ds_splits").set_value(["test"]).run()  # 9 rows left
    assert not app.exception
    assert app.number_input(key="keep_ds_index").value == 8


def test_dataset_and_augment_pages_on_the_real_isic_sample(app, isic_dev_root):
    goto(app, "dataset")
    app.radio(key="keep_ds_source").set_value("folder").run()
    app.text_input(key="keep_ds_folder").set_value(str(isic_dev_root)).run()
    app.button(key="ds_open_folder").click().run()
    assert not app.exception and not app.error
    assert app.session_state["dataset"] == {"source": "folder", "root": str(isic_dev_root)}
    assert app.dataframe[0].value["total"].sum() == 300
    goto(app, "augment")
    assert not app.error
    assert app.selectbox(key="keep_aug_id").value.startswith("ISIC_")


def test_augment_page_draws_8_of_an_uploaded_1024x768_image_and_says_how_long(app):
    """The speed itself is measured in bench/augment.py (0.12 s), never asserted in a test."""
    import io

    import numpy as np
    from PIL import Image

    from lesion_core.data.demo import make_sample

    image, mask = make_sample(1, 1024, np.random.default_rng(0))
    files = []
    for array, name, kind in ((image[:768], "big.jpg", "JPEG"), (mask[:768] * 255, "big.png", "PNG")):
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array)).save(buffer, kind)
        files.append((name, buffer.getvalue()))
    goto(app, "augment")
    app.radio(key="keep_aug_source").set_value("upload").run()
    app.get("file_uploader")[0].set_value((files[0][0], files[0][1], "image/jpeg"))
    app.get("file_uploader")[1].set_value((files[1][0], files[1][1], "image/png")).run()
    for preset in ("default_train", "notebook_train"):
        app.selectbox(key="keep_aug_preset").set_value(preset)
        app.button(key="aug_load_preset").click().run()
        app.button(key="aug_new").click().run()
        draws = next(c.value for c in app.caption if " draws of a " in c.value)
        assert draws.startswith("8 draws of a 1024x768 image in "), draws
        assert not app.error


def test_predictions_page_of_a_run_whose_data_folder_is_gone(app, demo_root, tmp_path):
    """A run outlives its data (a deleted upload, a moved folder): the page says so and still
    lists the predictions and classifies new images, with no traceback."""

    data_copy = shutil.copytree(demo_root, tmp_path / "gone")
    config = {"data": {"root": str(data_copy)}, "model": LENET, "image_size": 32, "epochs": 1,
              "augment": [], "eval_augment": []}
    training.run_training(config, paths.runs_dir())
    shutil.rmtree(data_copy)
    goto(app, "predictions")
    assert "dataset folder not found" in app.error[0].value
    assert " of " in texts(app) and len(app.image) == 0  # the table of predictions, without images
    app.get("file_uploader")[0].set_value(("lesion.jpg", (demo_root / "images" / "demo_0001.jpg").read_bytes(),
                                            "image/jpeg")).run()
    assert not app.exception
    assert "Most likely:" in texts(app)


def isic_test_only(demo_root, root):
    """The official ISIC 2017 layout holding only the Test_v2 part (demo images): every
    image lands in the test split, the train split is empty."""
    images, masks = root / "ISIC-2017_Test_v2_Data", root / "ISIC-2017_Test_v2_Part1_GroundTruth"
    images.mkdir(parents=True)
    masks.mkdir()
    lines = ["image_id,melanoma,seborrheic_keratosis"]
    for i, line in enumerate((demo_root / "labels.csv").read_text().splitlines()[1:13]):
        sample_id, label = line.split(",")
        shutil.copy(demo_root / "images" / f"{sample_id}.jpg", images / f"ISIC_{i:07d}.jpg")
        shutil.copy(demo_root / "masks" / f"{sample_id}.png", masks / f"ISIC_{i:07d}_segmentation.png")
        lines.append(f"ISIC_{i:07d},{int(label == '1')},{int(label == '2')}")
    (root / "ISIC-2017_Test_v2_Part3_GroundTruth.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("page", ["dataset", "augment", "model"])
def test_a_dataset_without_training_images_gets_a_message_not_a_traceback(app, demo_root, tmp_path, page):
    app.session_state["model"] = LENET
    app.session_state["dataset"] = {"source": "folder", "root": str(isic_test_only(demo_root, tmp_path / "isic"))}
    goto(app, page)
    assert any("training split is empty" in e.value for e in app.error), [e.value for e in app.error]
    if page == "model":
        assert len(app.dataframe) == 2  # the layers and parameters tables still show


def test_train_page_says_when_the_followed_run_folder_was_deleted(app, demo_root):

    config = {"data": {"root": str(demo_root)}, "model": LENET, "image_size": 32, "epochs": 1,
              "augment": [], "eval_augment": []}
    run_dir = training.run_training(config, paths.runs_dir())
    app.session_state["keep_run"] = run_dir.name
    goto(app, "train")
    assert "**finished**" in texts(app)
    shutil.rmtree(run_dir)
    app.run()
    assert not app.exception
    assert f"Run {run_dir.name} no longer exists" in texts(app)


def test_model_page_uploaded_checkpoint_replaces_a_copy_cut_short(app, tmp_path):
    import hashlib
    import io

    import torch

    from lesion_core import models

    buffer = io.BytesIO()
    torch.save({"model": models.build_model("lenet", 3, weights="random").state_dict()}, buffer)
    content = buffer.getvalue()
    stale = paths.cache_dir() / "weights" / f"{hashlib.sha256(content).hexdigest()[:16]}.pt"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(content[:100])  # what a server killed mid-write left behind
    goto(app, "model")
    app.selectbox(key="keep_model_name").set_value("lenet").run()
    app.radio(key="keep_model_weights").set_value("file").run()
    app.get("file_uploader")[0].set_value(("lenet.pt", content, "application/octet-stream")).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert stale.read_bytes() == content


def test_predictions_page_keeps_numeric_looking_ids_as_text(app, demo_root, tmp_path):
    """Ids such as 0001 must stay "0001" (not the number 1), or no image is found for them."""

    root = tmp_path / "numeric"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    lines = ["id,label"]
    for line in (demo_root / "labels.csv").read_text().splitlines()[1:]:
        sample_id, label = line.split(",")
        new_id = sample_id.removeprefix("demo_")  # "0001"
        shutil.copy(demo_root / "images" / f"{sample_id}.jpg", root / "images" / f"{new_id}.jpg")
        shutil.copy(demo_root / "masks" / f"{sample_id}.png", root / "masks" / f"{new_id}.png")
        lines.append(f"{new_id},{label}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    config = {"data": {"root": str(root)}, "model": LENET, "image_size": 32, "epochs": 1,
              "augment": [], "eval_augment": []}
    training.run_training(config, paths.runs_dir())
    goto(app, "predictions")
    assert not app.error, [e.value for e in app.error]
    assert len(app.image) == 9  # the demo's 9 test images
    assert any(c.value.startswith(("✓ `0", "✗ `0")) for c in app.caption)


def test_augment_page_with_a_class_that_has_no_images(app, demo_root, tmp_path):
    root = tmp_path / "two_classes"
    shutil.copytree(demo_root / "images", root / "images")
    shutil.copytree(demo_root / "masks", root / "masks")
    rows = (demo_root / "labels.csv").read_text().splitlines()
    (root / "labels.csv").write_text("\n".join(r for r in rows if not r.endswith(",2")) + "\n")
    app.session_state["dataset"] = {"source": "folder", "root": str(root)}
    goto(app, "augment")
    app.selectbox(key="keep_aug_class").set_value("seborrheic keratosis").run()
    assert not app.exception
    assert "No seborrheic keratosis image" in texts(app)


def test_choosing_sgd_starts_from_the_notebooks_zero_weight_decay(app):
    goto(app, "train")
    assert app.number_input(key="keep_tr_decay").value == 0.01  # AdamW's own
    app.selectbox(key="keep_tr_optimizer").set_value("sgd").run()
    assert app.number_input(key="keep_tr_decay").value == 0.0
    app.selectbox(key="keep_tr_optimizer").set_value("adamw").run()
    assert app.number_input(key="keep_tr_decay").value == 0.01


def test_dataset_page_clears_the_decoded_image_cache(app):
    from lesion_core import data

    goto(app, "dataset")  # its batch grid fills the cache
    assert data.decoded_cache_usage()[0] > 0
    app.button(key="ds_clear_cache").click().run()
    assert not app.exception
    assert any(s.value.startswith("Removed ") for s in app.success)


def test_augment_page_preset_box_names_the_preset_the_starting_pipeline_is(app):
    from lesion_core import transforms

    goto(app, "augment")
    assert app.selectbox(key="keep_aug_preset").value == "default_train"
    assert app.session_state["pipeline"] == transforms.image_steps(transforms.PRESETS["default_train"])


def _finished_run(demo_root, **overrides):

    config = {"data": {"root": str(demo_root)}, "model": LENET, "image_size": 32, "epochs": 1,
              "augment": [], "eval_augment": [], **overrides}
    return training.run_training(config, paths.runs_dir())


def test_a_fresh_session_takes_its_choices_from_the_url_and_writes_them_back(demo_root):
    """A reload is a fresh session with the same URL: dataset, model, pipeline and run come back."""
    from lesion_core import links

    run_dir = _finished_run(demo_root)
    _finished_run(demo_root)  # a newer run: the link must not fall back to it
    seed_demo_cache(paths.cache_dir(), demo_root)
    st.cache_data.clear()
    st.cache_resource.clear()
    pipeline = [{"name": "RandomVerticalFlip", "params": {"p": 0.25}}]
    model = {"name": "resnet18", "weights": "random", "weights_path": None, "freeze_backbone": True}
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    app.query_params.update(links.encode({"source": "folder", "root": str(demo_root)}, model, pipeline, run_dir.name))
    app.run()
    assert not app.exception, app.exception
    assert app.session_state["dataset"] == {"source": "folder", "root": str(demo_root)}
    assert app.session_state["model"] == model
    assert app.session_state["pipeline"] == pipeline
    assert app.sidebar.selectbox(key="keep_run").value == run_dir.name
    goto(app, "model")
    assert app.selectbox(key="keep_model_name").value == "resnet18"
    assert app.checkbox(key="keep_model_freeze").value is True
    assert app.session_state["model"] == model  # the Model page did not reset it
    goto(app, "train")
    assert f"Run {run_dir.name}" in [s.value for s in app.subheader]
    assert app.query_params["run"] == run_dir.name  # written back after a page switch too
    assert links.decode(dict(app.query_params))[0]["pipeline"] == pipeline


def test_a_tampered_link_is_named_and_the_rest_of_it_kept(app, demo_root):
    bad = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    bad.query_params.update({"model": '{"name": "no_such_net"}', "pipeline": "[{", "data": "demo"})
    bad.run()
    assert not bad.exception
    warnings = " ".join(w.value for w in bad.warning)
    assert "the link's model setting was ignored: unknown model" in warnings
    assert "the link's pipeline setting was ignored" in warnings
    assert bad.session_state["dataset"]["source"] == "demo"


def test_use_this_runs_settings_fills_the_form(app, demo_root):
    run_dir = _finished_run(demo_root, epochs=2, batch_size=8, seed=7, class_weights=[1, 2, 0.5],
                            optim={"optimizer": "sgd", "lr": 0.02, "momentum": 0.8},
                            scheduler={"name": "step", "step_size": 3, "gamma": 0.5},
                            augment=[{"name": "RandomHorizontalFlip", "params": {"p": 0.5}}])
    app.session_state["keep_run"] = run_dir.name
    goto(app, "train")
    app.button(key="tr_use_settings").click().run()
    assert not app.exception and not app.error, app.error
    values = {key: app.number_input(key=key).value for key in
              ("keep_tr_size", "keep_tr_epochs", "keep_tr_batch", "keep_tr_seed", "keep_tr_lr",
               "keep_tr_momentum", "keep_tr_decay", "keep_tr_step", "keep_tr_gamma")}
    assert values == {"keep_tr_size": 32, "keep_tr_epochs": 2, "keep_tr_batch": 8, "keep_tr_seed": 7,
                      "keep_tr_lr": 0.02, "keep_tr_momentum": 0.8, "keep_tr_decay": 0.0,
                      "keep_tr_step": 3, "keep_tr_gamma": 0.5}
    assert app.selectbox(key="keep_tr_optimizer").value == "sgd"
    assert app.selectbox(key="keep_tr_scheduler").value == "step"
    assert app.text_input(key="keep_tr_custom_weights").value == "1, 2, 0.5"
    assert app.radio(key="keep_tr_aug").value == "page"
    assert app.session_state["pipeline"] == [{"name": "RandomHorizontalFlip", "params": {"p": 0.5}}]
    assert app.session_state["model"]["name"] == "lenet"
    assert app.session_state["dataset"] == {"source": "folder", "root": str(demo_root)}
    assert f"settings of run {run_dir.name}" in texts(app)

    # A run trained on GPUs this machine lacks still gives its settings; the device becomes auto.
    for device, processes, expected in (("cpu", 1, "cpu"), ("cuda:63", 1, "auto"), ("cuda", 64, "auto")):
        config = json.loads((run_dir / "config.json").read_text())
        (run_dir / "config.json").write_text(json.dumps(config | {"device": device, "processes": processes}))
        app.button(key="tr_use_settings").click().run()
        assert not app.exception and not app.error, app.error
        assert app.selectbox(key="keep_tr_device").value == expected


def test_a_failed_run_shows_its_reason_the_log_and_what_to_do(app, demo_root):

    config = settings.validate_config({"data": {"root": str(demo_root)}, "model": LENET, "image_size": 32})
    run_dir = runs.create_run(paths.runs_dir(), config)
    runs.write_status(run_dir, state="failed", message="cannot read image x.jpg: not an image")
    runs.append_line(run_dir / "train.log", "2026-11-28 10:00:00 failed: cannot read image x.jpg: not an image")
    goto(app, "train")
    assert "**failed**: cannot read image x.jpg: not an image" in [e.value for e in app.error]
    assert "**What to do**" in texts(app)
    assert any("failed: cannot read image" in c.value for c in app.code)
    assert app.button(key="tr_resume")


def test_every_run_names_its_dataset(app, demo_root):
    run_dir = _finished_run(demo_root)
    app.run()
    assert app.sidebar.selectbox(key="keep_run").options[0].startswith(f"{run_dir.name} · {demo_root.name} (finished")
    goto(app, "results")
    assert app.dataframe[0].value["data"].tolist() == [demo_root.name]
    assert f"on **{demo_root.name}** data" in texts(app)
    goto(app, "predictions")
    assert f"on **{demo_root.name}** data" in texts(app)
    goto(app, "train")
    assert f"**{demo_root.name}** data" in texts(app)


def test_train_page_starts_real_data_from_the_standard_recipe_and_says_how_long(app, demo_root):

    app.session_state["dataset"] = {"source": "folder", "root": str(demo_root)}
    goto(app, "train")
    standard = settings.recipe_config("standard")
    assert app.selectbox(key="keep_tr_recipe").value == "standard"
    assert app.number_input(key="keep_tr_epochs").value == standard["epochs"]
    assert app.number_input(key="keep_tr_warmup").value == standard["scheduler"]["warmup_epochs"]
    assert app.toggle(key="keep_tr_tta").value is True
    assert f"Recipe **standard**, {standard['epochs']} epochs on 60 images" in texts(app) and "reference speed" in texts(app)
    app.selectbox(key="keep_tr_recipe").set_value("quick").run()
    assert (app.number_input(key="keep_tr_size").value, app.number_input(key="keep_tr_epochs").value) == (96, 3)
    assert app.toggle(key="keep_tr_tta").value is False and app.radio(key="keep_tr_aug").value == "page"
    assert "Recipe **quick**, 3 epochs" in texts(app)
    # a finished run of the same model, size and device: the guess uses its measured speed
    app.session_state["model"] = LENET
    app.number_input(key="keep_tr_size").set_value(32).run()
    run_dir = training.run_training({"data": {"root": str(demo_root)}, "model": LENET, "image_size": 32,
                                  "epochs": 2, "augment": [], "eval_augment": []}, paths.runs_dir())
    app.run()
    assert f"at the speed run {run_dir.name} measured on this machine" in texts(app)


def test_train_page_says_where_the_curves_will_be_before_the_first_epoch(app, demo_root):

    config = settings.validate_config({"data": {"root": str(demo_root)}, "model": LENET, "image_size": 32, "epochs": 1,
                                    "augment": [], "eval_augment": []})
    run_dir = runs.create_run(paths.runs_dir(), config)  # queued: no epoch in its history yet
    app.session_state["keep_run"] = run_dir.name
    goto(app, "train")
    assert not app.exception, app.exception
    assert len(app.get("plotly_chart")) == 0  # no empty axes running from -1
    assert "curves appear here when the first epoch ends" in texts(app)


def test_train_page_summary_speaks_spanish_whole(app, demo_root):

    config = {"data": {"root": "demo"}, "model": LENET, "image_size": 32, "epochs": 1, "augment": [],
              "eval_augment": [], "optim": {"lr": 0.0003}}
    run_dir = training.run_training(config, paths.runs_dir())
    app.session_state["keep_run"] = run_dir.name
    app.session_state["keep_lang"] = "es"
    goto(app, "train")
    assert not app.exception, app.exception
    summary = next(c.value for c in app.caption if "semilla" in c.value)
    # a user saw "datos demo", "planificación cosine" and a decimal point; 0.0003 must not become 0.000
    assert "datos **demostración**" in summary and "0,0003" in summary and "programa de la tasa coseno" in summary
    assert "mejor AUC media ISIC 2017 (melanoma, queratosis) en validación: 0," in texts(app)
