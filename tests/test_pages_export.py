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


def test_a_lesion_crop_run_is_not_offered_an_export_that_would_fail(app, demo_root):
    from lesion_core import runs

    run_dir = make_run(demo_root, paths.runs_dir(), "lenet", 64)
    config = runs.read_config(run_dir)
    runs.atomic_write_json(run_dir / "config.json", dict(config, eval_augment=[{"name": "CropByMask", "params": {"border": 10}}]))
    goto(app, "results")
    assert not app.exception, app.exception
    assert "res_export" not in [b.key for b in app.button]  # issue 26: offered, then failed
    assert "This run cannot be exported" in texts(app) and "CropByMask" in texts(app)
