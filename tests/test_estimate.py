"""The time estimate before Launch: from a few batches timed on this machine when no finished run
of these settings exists here, and a range that narrows once the run measures itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time


from lesion_core import runs, settings
from lesion_core.training import duration

from test_pages import goto, texts

# A small real run: big enough that the model's own speed shows, small enough for a test.
SMALL = {"model": {"name": "efficientnet_lite0", "weights": "random"}, "image_size": 64, "batch_size": 8,
         "epochs": 1, "tta": False}


def test_an_estimate_from_timed_batches_is_within_a_sane_factor_of_a_real_run(demo_root, tmp_path):
    config = settings.validate_config(dict(SMALL, data={"root": str(demo_root), "max_size": 30}))
    timed = duration.time_batches(config)
    assert timed["train"] > 0 and timed["eval"] > timed["train"] / 2 and timed["batches"] >= 1
    assert duration.time_batches(config) is timed and duration.timed_speed(config) is timed  # timed once per process
    guess = duration.estimate(config, 60, [], timed)  # 30 of the demo's 60 images
    assert guess["basis"] == "timed" and guess["low"] < guess["seconds"] < guess["high"]
    # the run as the student starts it: a new process, the same settings
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lesion_core", "train", "--data", str(demo_root), "--model",
                    "efficientnet_lite0", "--pretrained", "random", "--image-size", "64", "--batch-size", "8",
                    "--epochs", "1", "--max-size", "30", "--no-tta", "--out", str(tmp_path)], check=True, capture_output=True,
                   env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)})
    actual = time.perf_counter() - start
    assert 0.25 * actual < guess["seconds"] < 4 * actual, (guess, actual)
    # The timed speed itself, not only the whole guess (a fixed start-up allowance dominates it at
    # this size): the model alone trains faster than the run, which also reads and augments images,
    # but not by orders of magnitude.
    (run,) = runs.list_runs(tmp_path)
    measured = [row["images_per_s"] for row in runs.read_history(run.path)
                if row.get("phase") == "train" and row.get("images_per_s")]
    assert measured and 0.3 < timed["train"] / measured[-1] < 20, (timed, measured)


def test_a_running_runs_time_left_is_a_range_that_narrows_as_it_measures_itself():
    base = {"epochs": 4, "n_iters": 10, "phase": "train", "eta_s": 300}
    lines = [runs.progress({**base, "epoch": epoch, "iteration": i})[1] for epoch, i in ((1, 1), (3, 5))]
    assert lines[0].endswith("ETA 3:46–7:28") and lines[1].endswith("ETA 4:15–6:30"), lines
    spreads = [high / low for low, high in (runs.eta_range(300, f) for f in (0.02, 0.3, 0.6, 0.9))]
    assert spreads == sorted(spreads, reverse=True) and spreads[0] > 1.5 and spreads[-1] < 1.25
    assert runs.progress({**base, "epoch": 4, "phase": "evaluate", "eta_s": 0})[1].endswith("ETA 0:00")


def test_the_train_page_times_a_few_batches_on_a_button(app, demo_root):
    app.session_state["dataset"] = {"source": "folder", "root": str(demo_root)}
    app.session_state["model"] = {"name": "lenet", "weights": "random", "weights_path": None,
                                  "freeze_backbone": False}
    goto(app, "train")
    assert "at the reference speed of this kind of device" in texts(app)
    app.button(key="tr_time_batches").click().run()
    assert not app.exception, app.exception
    caption = next(t for t in texts(app).split("\n") if t.startswith("Recipe **"))
    assert "at the speed of a few batches timed on this machine" in caption, caption
    goto(app, "train")  # timed once: the next visit uses it without a button
    assert "at the speed of a few batches timed on this machine" in texts(app)
    assert not [b for b in app.button if b.key == "tr_time_batches"]
