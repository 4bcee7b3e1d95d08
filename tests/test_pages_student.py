"""A student's loop on the real ISIC sample, page by page (Streamlit AppTest): what each page
says about the choices that carry from one page to the next."""

from __future__ import annotations

from lesion_core import locks, settings, training
from lesion_core.training import duration
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


def test_compare_takes_the_older_run_as_a_swaps_and_diffs_resolved_settings(app, demo_root):
    from lesion_core import paths, runs
    from tests.test_train import tiny_config

    older = training.run_training(tiny_config(demo_root, epochs=1, seed=1, scheduler={"warmup_epochs": 0}),
                               paths.runs_dir())
    newer = training.run_training(tiny_config(demo_root, epochs=2, seed=1, optim={"weight_decay": 0.01},
                                           scheduler={"warmup_epochs": 0.0}), paths.runs_dir())
    assert runs.read_config(older)["optim"]["weight_decay"] is None  # AdamW's own default: 0.01
    goto(app, "compare")
    assert app.multiselect(key="keep_cmp_runs").value == [older.name, newer.name]
    assert f"B = {newer.name} vs A = {older.name}" in [s.value for s in app.subheader]
    # the settings as they trained: the same weight decay and warm-up are not a difference
    diff = app.dataframe[0].value
    assert list(diff["setting"]) == ["epochs"], diff
    assert diff[older.name].tolist() == ["1"] and diff[newer.name].tolist() == ["2"]
    app.button(key="cmp_swap").click().run()
    assert app.multiselect(key="keep_cmp_runs").value == [newer.name, older.name]
    assert f"B = {older.name} vs A = {newer.name}" in [s.value for s in app.subheader]


def test_an_uploaded_dataset_goes_by_the_name_the_user_gave_it(app, demo_root):
    from lesion_core import paths, runs
    from tests.test_pages import upload_zip, zip_bytes

    files = {p.relative_to(demo_root).as_posix(): p.read_bytes() for p in demo_root.rglob("*") if p.is_file()}
    upload_zip(app, "lesions 2026.zip", zip_bytes(files))  # the dataset at the ZIP's top: no folder to name it
    assert not app.error, app.error
    success = app.success[0].value
    assert success.startswith("Current dataset: **lesions 2026** (uploaded ZIP, "), success
    root = app.session_state["dataset"]["root"]
    assert str(paths.cache_dir()) not in success
    # the address bar names the upload, not the server's cache folder, and a reload finds it again
    link = app.query_params["data"]
    link = link[0] if isinstance(link, list) else link
    assert link.startswith("upload:lesions 2026-") and str(paths.cache_dir()) not in link
    from lesion_core import links
    assert links.decode({"data": link})[0]["data"] == {"source": "upload", "root": root}
    assert runs.dataset_label({"data": {"root": root}}) == "lesions 2026"  # runs tables and pickers too
    goto(app, "home")
    assert {m.label: m.value for m in app.metric}["Dataset"] == "lesions 2026"


def _finished(demo_root):
    from lesion_core import paths
    from tests.test_train import tiny_config

    return training.run_training(tiny_config(demo_root, epochs=1), paths.runs_dir())


FIRST_COLUMNS = ["run", "data", "model", "headline", "test", "test 95% CI", "state"]


def test_runs_tables_put_what_people_compare_first_in_both_languages(app, demo_root):
    import re

    run_dir = _finished(demo_root)
    app.run()
    home = app.dataframe[-1].value
    assert list(home.columns)[:7] == FIRST_COLUMNS
    goto(app, "results")
    assert list(app.dataframe[0].value.columns)[:7] == FIRST_COLUMNS
    assert app.dataframe[0].value["run"].tolist() == [run_dir.name]
    app.selectbox(key="keep_lang").set_value("es").run()
    goto(app, "home")
    test_es = app.dataframe[-1].value["prueba"].tolist()[0]
    assert re.fullmatch(r"\d,\d{3}", test_es), test_es  # a decimal comma on Home as on Results


def _figure(app, key: str) -> dict:
    import json

    chart = next(c for c in app.get("plotly_chart") if c.proto.id.endswith(key) or key in c.proto.id)
    return json.loads(chart.proto.spec)


def test_the_skin_tone_chart_runs_from_very_light_to_dark(app, isic_dev_root):
    open_folder(app, isic_dev_root)
    goto(app, "dataset")
    app.button(key="ds_skin_button").click().run()
    assert not app.exception
    spec = _figure(app, "ds_skin_chart")
    order = ["very light", "light", "intermediate", "tan", "brown", "dark", "no mask"]
    assert spec["layout"]["xaxis"]["categoryarray"] == order
    assert all(trace["x"] == order for trace in spec["data"])
    assert [t["name"] for t in spec["data"]] == ["nevus", "melanoma", "seborrheic keratosis"]


def test_robustness_conditions_are_rows_that_never_overlap_and_speak_spanish():
    from lesion_core import i18n
    from lesion_core.evaluation import robustness

    conditions = [{"name": c["name"], "mean_auc": 0.7, "ci_low": 0.6, "ci_high": 0.8}
                  for c in robustness.default_conditions()]
    report = {"split": "test", "conditions": conditions, "baseline": {"mean_auc": {"value": 0.75, "ci_low": 0.7,
                                                                                   "ci_high": 0.8}}}
    figure = robustness.figure(report)
    assert list(figure.data[0].y) == [c["name"] for c in conditions]  # one a row, read top to bottom
    assert figure.layout.yaxis.autorange == "reversed" and figure.layout.height >= 28 * len(conditions)
    spanish = i18n.figure(robustness.figure(report), "es")
    assert list(spanish.data[0].y)[:2] == ["piel muy clara", "piel clara"]
    assert spanish.layout.annotations[0].text == "sin alterar 0,750"
    assert spanish.layout.title.text == "AUC media bajo alteraciones (prueba, intervalos del 95%)"


def test_the_time_estimate_counts_the_images_used_and_gives_a_range(app, demo_root):
    import re

    app.session_state["dataset"] = {"source": "folder", "root": str(demo_root)}
    goto(app, "train")
    app.number_input(key="keep_tr_max_size").set_value(30).run()
    caption = next(t for t in texts(app).split("\n") if t.startswith("Recipe **standard**"))
    assert re.search(r"epochs on 30 images: \d+ (seconds|minutes|hours) to \d+ (seconds|minutes|hours), ", caption), caption
    config = settings.validate_config({"data": {"root": str(demo_root), "max_size": 30}, "recipe": "standard"})
    guess = duration.estimate(config, 60, [])
    assert guess["images"] == 30 and guess["low"] < guess["seconds"] < guess["high"]
    assert guess["seconds"] < duration.estimate(dict(config, data=dict(config["data"], max_size=0)), 60, [])["seconds"]


def test_a_reload_while_a_run_trains_shows_that_runs_settings(app, demo_root):
    import os

    from lesion_core import paths, runs

    config = settings.validate_config({"data": {"root": str(demo_root)}, "recipe": "standard", "image_size": 96,
                                    "epochs": 3, "optim": {"lr": 0.0005}})
    run_dir = runs.create_run(paths.runs_dir(), config)
    # status.json as a trainer writes it; this test's own process stands in for the trainer
    runs.write_status(run_dir, state="running", pid=os.getpid(), pid_start=locks.process_start(os.getpid()),
                      message="epoch 1 train", epochs=3, epoch=1, phase="train", iteration=1, n_iters=5)
    try:
        app.session_state["dataset"] = {"source": "folder", "root": str(demo_root)}  # a new session: a reload
        with locks.run(run_dir):  # held as the trainer holds it: without it the run is not running
            goto(app, "train")
        assert app.number_input(key="keep_tr_size").value == 96  # not the standard recipe's 224
        assert app.number_input(key="keep_tr_epochs").value == 3
        assert app.number_input(key="keep_tr_lr").value == 0.0005
        assert app.selectbox(key="keep_tr_recipe").value == "standard"
    finally:
        runs.write_status(run_dir, state="stopped", message="stopped")


def test_a_sweep_launched_from_train_is_followed_at_once(app, demo_root):
    import time

    from lesion_core import paths, runs

    app.session_state["model"] = {"name": "lenet", "weights": "random", "weights_path": None, "freeze_backbone": False}
    goto(app, "train")
    for key, value in (("keep_tr_size", 32), ("keep_tr_epochs", 1), ("keep_tr_max_size", 24), ("keep_tr_batch", 8)):
        app.number_input(key=key).set_value(value).run()
    app.toggle(key="keep_tr_tta").set_value(False).run()
    app.text_area(key="keep_tr_sweep_grid").set_value('{"seed": [3]}').run()
    app.button(key="tr_sweep_launch").click().run()
    assert not app.exception and not app.error, app.error
    [run] = [r for r in runs.list_runs(paths.runs_dir()) if (r.config.get("sweep") or {}).get("id")]
    assert f"Run {run.id}" in [s.value for s in app.subheader]  # no reload needed
    assert any(s.value.startswith("Sweep ") and "started: 1 runs" in s.value for s in app.success)
    deadline = time.monotonic() + 300  # the sweep's one run ends, and its process with it
    while runs.run_info(run.path).state in runs.ACTIVE_STATES and time.monotonic() < deadline:
        time.sleep(1)


def test_a_running_run_has_one_status_line_one_bar_and_no_empty_auc_axis(app, demo_root):
    import json
    import os

    from lesion_core import paths, runs

    config = settings.validate_config({"data": {"root": str(demo_root)}, "model": {"name": "lenet", "weights": "random"},
                                    "image_size": 32, "epochs": 3})
    run_dir = runs.create_run(paths.runs_dir(), config)
    runs.append_line(run_dir / "history.jsonl", json.dumps({"epoch": 1, "phase": "train", "loss": 1.1,
                                                            "images_per_s": 20.0}))
    runs.write_status(run_dir, state="running", pid=os.getpid(), pid_start=locks.process_start(os.getpid()),
                      message="epoch 1: recomputing BatchNorm statistics", epochs=3, epoch=1, phase="calibrate",
                      iteration=10, n_iters=10, eta_s=95)
    try:
        with locks.run(run_dir):  # held as the trainer holds it: without it the run is not running
            goto(app, "train")
        assert [i.value for i in app.info if i.value.startswith("**running**")] == ["**running**"]
        [bar] = app.get("progress")
        assert bar.proto.text == "epoch 1/3 · recomputing BatchNorm statistics · ETA 1:16–2:13"
        assert bar.proto.value < 50  # 1 of 3 epochs and the final scoring: a quarter, not a full bar
        keys = [c.proto.id for c in app.get("plotly_chart")]
        assert any("tr_loss" in k for k in keys) and not any("tr_auc" in k for k in keys)
        assert "The validation AUC curves appear here when the first validation ends." in texts(app)
    finally:
        runs.write_status(run_dir, state="stopped", message="stopped")
