"""Pages a student can read and predictions that do not overstate themselves (AppTest)."""

from __future__ import annotations

import pytest

from tests.test_pages import app, goto, texts  # noqa: F401  (app is a fixture)

LENET = {"name": "lenet", "weights": "random", "weights_path": None, "freeze_backbone": False}


def test_train_page_shows_the_evaluation_steps_of_a_lesion_cropping_pipeline(app):
    app.session_state["model"] = LENET
    goto(app, "train")
    app.radio(key="keep_tr_aug").set_value("notebook_train").run()
    caption = next(c.value for c in app.caption if c.value.startswith("Evaluation"))
    assert "CropByMask(border=10) → CropByMask(border=0) → Rescale" in caption
    assert "Flip" not in caption and "Skin" not in caption
    app.radio(key="keep_tr_aug").set_value("default_train").run()
    caption = next(c.value for c in app.caption if c.value.startswith("Evaluation"))
    assert "CropByMask" not in caption and "CenterCrop(size=96)" in caption
