"""The Results page exports the selected run's best model, checked, as a download."""

from __future__ import annotations

import json

from lesion_core import paths
from tests.test_export import make_run
from tests.test_pages import goto, texts


def test_results_page_exports_the_run_and_offers_model_and_sidecar(app, demo_root):
    run_dir = make_run(demo_root, paths.runs_dir(), "lenet", 64)
    goto(app, "results")
    assert not [b for b in app.get("download_button") if "model" in b.proto.label]
    app.radio(key="keep_res_export_format").set_value("torchscript").run()
    app.button(key="res_export").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert "Checked on" in texts(app) and "torch.jit.load" in texts(app)
    labels = [b.proto.label for b in app.get("download_button")]
    assert "Download model.pt" in labels and "Download model.pt.json" in labels
    assert app.session_state["res_exported"][0] == run_dir.name
    assert json.loads(json.dumps(app.session_state["res_exported"][3]))["model"] == "lenet"
    # Switching the format hides the other format's file until it is exported too.
    app.radio(key="keep_res_export_format").set_value("onnx").run()
    assert "Download model.pt" not in [b.proto.label for b in app.get("download_button")]


def test_a_lesion_crop_run_exports_with_its_mask_input(app, demo_root):
    # issue 26: a lesion-crop run was refused ("the run's evaluation pipeline has a CropByMask step")
    from lesion_core import runs

    run_dir = make_run(demo_root, paths.runs_dir(), "lenet", 64)
    config = runs.read_config(run_dir)
    runs.atomic_write_json(run_dir / "config.json", dict(config, eval_augment=[{"name": "CropByMask", "params": {"border": 10}}]))
    goto(app, "results")
    assert not app.exception, app.exception
    assert "also takes each image's lesion mask" in texts(app)
    app.radio(key="keep_res_export_format").set_value("torchscript").run()
    app.button(key="res_export").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    sidecar = app.session_state["res_exported"][3]
    assert [i["name"] for i in sidecar["inputs"]] == ["image", "mask"] and "Checked on" in texts(app)


def test_a_pipeline_that_cannot_be_exported_is_not_offered_and_the_page_says_why(app, demo_root):
    from lesion_core import runs

    run_dir = make_run(demo_root, paths.runs_dir(), "lenet", 64)
    config = runs.read_config(run_dir)
    crop_after_resize = [{"name": "Rescale", "params": {"size": 80}}, {"name": "CropByMask", "params": {"border": 10}}]
    runs.atomic_write_json(run_dir / "config.json", dict(config, eval_augment=crop_after_resize))
    goto(app, "results")
    assert not app.exception, app.exception
    assert "res_export" not in [b.key for b in app.button]  # issue 26: offered, then failed
    assert "This run cannot be exported" in texts(app) and "crops to the lesion after other steps" in texts(app)
