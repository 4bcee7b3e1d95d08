"""Every page renders beside run folders holding every kind of damage (Streamlit AppTest).

One damaged file must never take a page down: the damaged run is listed with what is
wrong, and every other run and page keeps working.
"""

from __future__ import annotations

import json
import os
import shutil

from lesion_core import paths, runs
from lesion_core import training
from tests.test_pages import LENET, goto, texts

# file name -> content, per damaged run folder (several damages that do not hide each other)
DAMAGE = {
    "files": {"metrics_test.json": '{"accuracy": 0.5}', "predictions_test.csv": bytes(range(256)) * 8,
              "train.log": b"\xff\xfe\x00 not text \x80\x81", "predictions_val.csv": "id,label\n1,2\n",
              "patient_model.json": '{"weight": "heavy"}'},
    "status-types": {"status.json": '{"state": "finished", "started": "x", "updated": 5.0, "best": [1],'
                                    ' "final": {"test": "high"}, "message": 3, "epoch": "2"}'},
    "status-list": {"status.json": '["finished"]', "history.jsonl": b'{"epoch": "x", "phase": "val"}\n\xff\n[3]\n'},
    "config-optim": {"config.json": '{"optim": "fast", "model": "lenet", "augment": 5}'},
    "config-json": {"config.json": b"{ bad \xff"},
    "config-names": {"config.json": None, "best.pt": os.urandom(2048)},  # None: edited below
}


def damaged_runs(demo_root, runs_dir=None) -> dict:
    """A finished tiny run in runs_dir (default: the app's) copied once per DAMAGE entry and
    damaged; {entry: run id}, the sound run under "sound"."""
    config = {"data": {"root": str(demo_root)}, "model": LENET, "image_size": 32, "epochs": 1,
              "batch_size": 8, "augment": [], "eval_augment": []}
    sound = training.run_training(config, runs_dir or paths.runs_dir())
    ids = {"sound": sound.name}
    for n, (kind, files) in enumerate(DAMAGE.items()):
        run_dir = shutil.copytree(sound, sound.parent / f"{sound.name[:-4]}{n:04d}")
        for name, content in files.items():
            if content is None:
                edited = json.loads((run_dir / name).read_text())
                edited["data"]["class_names"] = 3
                edited["data"]["split"] = {"root": 5}
                content = json.dumps(edited)
            (run_dir / name).write_bytes(content if isinstance(content, bytes) else content.encode())
        ids[kind] = run_dir.name
    return ids


def test_every_page_renders_beside_every_kind_of_damaged_run(app, demo_root):
    ids = damaged_runs(demo_root)
    listed = {r.id: r for r in runs.list_runs(paths.runs_dir())}
    assert listed[ids["sound"]].damage == []
    assert all(listed[i].damage for kind, i in ids.items() if kind != "sound")
    for page in ("home", "dataset", "augment", "model"):
        goto(app, page)
    goto(app, "home")
    assert "damaged: config.json: not valid JSON" in " ".join(app.dataframe[-1].value["state"])
    for kind, run_id in ids.items():
        app.session_state["keep_run"] = run_id
        app.session_state["tr_run"] = run_id
        for page in ("train", "results", "predictions", "readers"):
            goto(app, page)
            if kind != "sound" and page == "train":
                assert "damaged" in texts(app).lower() or "Damaged" in texts(app), (kind, texts(app))
    app.session_state["keep_run"] = ids["files"]
    goto(app, "results")
    assert any("metrics_test.json: class_names is None" in e.value for e in app.error)
    # Sound metrics without stored intervals beside the damaged CSV: the CSV is named, not an
    # interval silently missing.
    sound, files = paths.runs_dir() / ids["sound"], paths.runs_dir() / ids["files"]
    metrics_test = json.loads((sound / "metrics_test.json").read_text())
    metrics_test.pop("intervals", None)
    (files / "metrics_test.json").write_text(json.dumps(metrics_test))
    goto(app, "results")
    assert any("No 95% intervals: predictions_test.csv is damaged" in w.value for w in app.warning)
    assert not app.exception
    goto(app, "predictions")
    assert any("predictions_test.csv is damaged" in e.value for e in app.error)
    app.radio(key="keep_pred_split").set_value("val").run()
    assert not app.exception
    assert any("predictions_val.csv is damaged" in e.value for e in app.error)
    goto(app, "readers")
    assert any("predictions_test.csv is damaged" in e.value for e in app.error)


def test_a_failed_zip_import_leaves_nothing_in_the_uploads_folder(app):
    from tests.test_pages import upload_zip, zip_bytes

    # a ZIP that unpacks fine but holds no usable sample: the label file names missing images
    upload_zip(app, "broken.zip", zip_bytes({"broken/labels.csv": b"id,label\nx1,0\nx2,1\n"}))
    assert app.error and "no usable samples" in app.error[0].value
    assert list((paths.cache_dir() / "uploads").iterdir()) == []
