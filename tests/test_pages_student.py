"""A student's loop on the real ISIC sample, page by page (Streamlit AppTest): what each page
says about the choices that carry from one page to the next."""

from __future__ import annotations

from tests.test_pages import goto, texts


def open_folder(app, root) -> None:
    app.session_state["dataset"] = {"source": "folder", "root": str(root)}


def test_each_draw_says_how_much_of_the_lesion_it_keeps(app, isic_dev_root):
    open_folder(app, isic_dev_root)
    goto(app, "augment")
    app.selectbox(key="keep_aug_preset").set_value("notebook_train")
    app.button(key="aug_load_preset").click().run()
    captions = [c.value for c in app.caption]
    assert sum("lesion kept: " in c for c in captions) == 8, captions
    # notebook_train's Rescale 256 then RandomCrop 224 cuts part of a lesion off, and says so
    assert any("(a crop cut part of it off)" in c for c in captions), captions


def test_train_with_this_pipeline_trains_with_it_and_says_so(app, isic_dev_root):
    open_folder(app, isic_dev_root)
    goto(app, "train")
    assert app.selectbox(key="keep_tr_recipe").value == "standard"
    assert app.radio(key="keep_tr_aug").value == "default_train"  # the standard recipe's preset
    assert "Training augments with: RandomResizedCrop → RandomRotate90" in texts(app)
    goto(app, "augment")
    app.selectbox(key="keep_aug_preset").set_value("notebook_train")
    app.button(key="aug_load_preset").click().run()
    app.button(key="aug_train").click().run()
    assert not app.exception
    assert app.radio(key="keep_tr_aug").value == "page"
    assert "Training augments with: CropByMask → RandomRotation → RandomHorizontalFlip" in texts(app)
    assert app.session_state["pipeline"][0]["name"] == "CropByMask"
