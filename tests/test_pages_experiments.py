"""Pages of honest experiments: intervals on Results/Train/Home, the Compare page (AppTest)."""

from __future__ import annotations

import json

import pytest

from lesion_core import paths, runs
from lesion_core.evaluation import bootstrap
from lesion_core import training
from tests.test_pages import goto, texts
from tests.test_train import tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def two_runs(demo_root):
    first = training.run_training(tiny_config(demo_root, epochs=1, seed=1), paths.runs_dir())
    second = training.run_training(tiny_config(demo_root, epochs=2, seed=2), paths.runs_dir())
    return first, second


def test_results_train_and_home_show_intervals_and_small_class_warnings(app, two_runs):
    newest = runs.list_runs(paths.runs_dir())[0].path  # what the pages show first (ids may share a second)
    stored = bootstrap.run_intervals(newest, "test", compute=False)
    expected = bootstrap.format_interval(stored["mean_auc"])
    app.run()
    assert app.dataframe[-1].value["test 95% CI"].iloc[0] == expected.partition(" ")[2]  # Home
    goto(app, "results")
    table = next(d.value for d in app.dataframe if "value [95% CI]" in d.value.columns)
    assert table["value [95% CI]"].iloc[0] == expected
    small = [w.value for w in app.warning if "test images; AUC differences below ~" in w.value]
    assert len(small) == 1  # the demo's test split has a handful per class: one box, a line each
    assert [line.partition(":")[0] for line in small[0].split("  \n")] == ["nevus", "melanoma", "seborrheic keratosis"]
    goto(app, "train")
    assert f"mean AUC {expected}" in texts(app)


def test_compare_page_shows_diff_deltas_verdict_and_disagreements(app, two_runs):
    first, second = two_runs
    goto(app, "compare")
    diff = app.dataframe[0].value
    assert set(diff["setting"]) >= {"epochs", "seed"}
    assert len(app.get("plotly_chart")) == 2
    deltas = app.dataframe[1].value
    assert list(deltas["metric"])[:3] == ["mean AUC", "accuracy", "balanced accuracy"]  # as Results names them
    assert "AUC melanoma" in list(deltas["metric"])
    assert "Verdict (mean AUC): " in texts(app)
    app.multiselect(key="keep_cmp_runs").set_value([second.name]).run()
    assert "Choose at least two runs." in texts(app)


def test_compare_page_a_run_against_a_copy_of_itself(app, two_runs):
    import shutil

    first, _ = two_runs
    copy = shutil.copytree(first, paths.runs_dir() / f"{first.name}-copy")
    goto(app, "compare")
    app.multiselect(key="keep_cmp_runs").set_value([first.name, copy.name]).run()
    assert not app.exception
    assert "The runs have the same settings" in texts(app)
    n = len(bootstrap.load_predictions(first, "test")[0])
    assert f"not distinguishable on these {n} images" in texts(app)
    assert "0 images one run gets right and the other wrong" in [e.label for e in app.expander]


def test_dataset_page_shows_the_skin_tone_distribution(app, demo_root):
    from lesion_core import data

    goto(app, "dataset")
    assert not any("very light" in d.value.columns for d in app.dataframe)  # only on request
    app.button(key="ds_skin_button").click().run()
    assert not app.exception
    table = next(d.value for d in app.dataframe if "very light" in d.value.columns)
    assert len(table) == 9  # 3 splits x 3 classes
    counts = data.load_dataset(demo_root).report.counts
    for split in ("train", "val", "test"):
        rows = table[table["split"] == split].drop(columns=["split", "class"])
        assert rows.to_numpy().sum() == sum(counts[split].values())  # every image in one group


def test_results_page_computes_and_shows_the_robustness_report(app, demo_root):
    run_dir = training.run_training(tiny_config(demo_root, epochs=1), paths.runs_dir())
    goto(app, "results")
    assert not any("condition" in d.value.columns for d in app.dataframe)
    app.button(key="res_robust_button").click().run()
    assert not app.exception
    table = next(d.value for d in app.dataframe if "condition" in d.value.columns)
    assert len(table) == 11 and table["condition"].iloc[0] == "skin very light"
    assert (run_dir / "robustness_test.json").is_file()
    groups = next(d.value for d in app.dataframe if "skin tone of the image" in d.value.columns)
    assert groups["images"].sum() == len(bootstrap.load_predictions(run_dir, "test")[0])
    goto(app, "results")  # a later visit shows the stored report at once
    assert any("condition" in d.value.columns for d in app.dataframe)
    assert not any("flat repaint" in i.value for i in app.info)
    stored = json.loads((run_dir / "robustness_test.json").read_text())
    del stored["skin_shift"]  # a report from before the skin kept its texture
    (run_dir / "robustness_test.json").write_text(json.dumps(stored))
    goto(app, "results")
    assert any("earlier flat repaint" in i.value for i in app.info)


def test_results_groups_a_sweep_marks_the_best_and_shows_the_seed_spread(app, demo_root):
    from lesion_core import sweep

    spec = {"base": tiny_config(demo_root, epochs=1), "grid": {"optim.lr": [0.01, 0.003]}, "repeats": 2}
    for item in sweep.expand(spec):
        training.run_training(item["config"], paths.runs_dir())
    training.run_training(tiny_config(demo_root, epochs=1), paths.runs_dir())  # not part of the sweep
    goto(app, "results")
    table = next(d.value for d in app.dataframe if "vs best (val)" in d.value.columns)
    assert len(table) == 4 and (table["vs best (val)"] == "best").sum() == 1
    assert set(table["vs best (val)"]) <= {"best", "not distinguishable", "worse"}
    best = table.loc[table["vs best (val)"] == "best", "val mean AUC"].iloc[0]
    assert best == table["val mean AUC"].max()
    spread = next(d.value for d in app.dataframe if "std" in d.value.columns)
    assert list(spread["count"]) == [2, 2]


def test_train_page_sweep_refuses_a_bad_grid(app):
    goto(app, "train")
    app.text_area(key="keep_tr_sweep_grid").set_value("{not json").run()
    app.button(key="tr_sweep_launch").click().run()
    assert "the grid is not valid JSON" in app.error[0].value
    app.text_area(key="keep_tr_sweep_grid").set_value('{"optim.nope": [1, 2]}').run()
    app.button(key="tr_sweep_launch").click().run()
    assert "sweep run 0" in app.error[0].value and "nope" in app.error[0].value
    assert not app.exception
