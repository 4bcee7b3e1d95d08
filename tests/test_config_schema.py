"""One schema for a training config (settings.fields): the train command's flags, the Train
page's widget limits and the recipes are the schema's; old config.json files still load."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from lesion_core import models, settings
from lesion_core.cli import build_parser, main
from lesion_core.errors import TrainingError
from lesion_core.settings import draft, fields, versions
from tests.e2e_helpers import REPO

NUMERIC = [key for flag, key, _ in fields.cli_options() if fields.kind(key) in (int, float)]


def train_options() -> dict:
    """The train sub-command's argparse actions by flag."""
    parser = build_parser()
    sub = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    return {s: a for a in sub.choices["train"]._actions for s in a.option_strings}


def test_every_setting_with_a_flag_is_the_schemas_option():
    options = train_options()
    for flag, key, _ in fields.cli_options():
        action = options[flag]
        assert fields.meta(key)["help"] in action.help
        assert action.default is None  # a flag given overrides the recipe and --config
        choices = fields.choices(key)
        assert (tuple(action.choices) if action.choices else None) == choices
    assert set(NUMERIC) >= {"epochs", "batch_size", "optim.lr", "optim.momentum", "optim.weight_decay",
                            "optim.label_smoothing", "scheduler.step_size", "scheduler.gamma",
                            "scheduler.warmup_epochs", "seed", "data.max_size", "image_size", "ema", "freeze_epochs"}


@pytest.mark.parametrize("key", NUMERIC)
def test_argparse_refuses_below_the_schemas_min_and_above_its_max_in_one_line(key, capsys):
    flag = next(f for f, k, _ in fields.cli_options() if k == key)
    limits = fields.bounds(key)
    low, high = limits.get("ge", limits.get("gt")), limits.get("le", limits.get("lt"))
    below = low - 1 if fields.kind(key) is int else low - max(abs(low), 1e-3)
    args = ["train", "--data", "demo", "--out", "runs"]
    for bad in [below] + ([high + 1] if high is not None else []):
        with pytest.raises(SystemExit) as exit_info:
            main([*args, flag, str(bad)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: argument {flag}: {key} must be"), err
        assert fields.message(key, type(bad)(bad)).split(", got")[0] in err  # the key and its range
    parsed = build_parser().parse_args([*args, flag, str(low)])
    assert getattr(parsed, flag[2:].replace("-", "_")) == low  # the bound itself is allowed


def test_an_out_of_range_epochs_is_one_line_from_the_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lesion_core", "train", "--data", "demo", "--epochs", "0",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120,
                          env=os.environ | {"PYTHONPATH": str(REPO)})
    assert done.returncode == 2
    assert done.stderr == "error: argument --epochs: epochs must be an integer >= 1, got 0\n"
    assert not any(tmp_path.iterdir())


def test_a_config_file_value_out_of_range_names_key_and_range(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"data": {"root": "demo"}, "optim": {"momentum": 1.5}}))
    assert main(["train", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err == "error: optim.momentum must be a number from 0 to 0.999, got 1.5\n"


def test_errors_never_show_pydantic():
    for bad in ({"epochs": "many"}, {"optim": {"lr": float("nan")}}, {"data": {"class_names": [1]}},
                {"class_weights": {"a": 1}}, {"scheduler": []}, {"version": "2"}):
        with pytest.raises(TrainingError) as caught:
            settings.validate_config(bad)
        text = str(caught.value)
        assert "pydantic" not in text and "errors.pydantic.dev" not in text and "\n" not in text, text


def test_the_schema_itself_names_an_unknown_key_and_the_known_ones():
    with pytest.raises(TrainingError, match=r"^unknown config key 'optim.x'; known keys: optimizer, lr, momentum"):
        fields.check({"optim": {"x": 1}})


def test_the_schemas_defaults_are_the_documented_ones():
    config = settings.default_config()
    assert config["version"] == fields.SCHEMA_VERSION
    assert config["model"]["name"] == models.DEFAULT_MODEL
    assert fields.MIN_IMAGE_SIZE == min(entry.min_input_size for entry in models.MODELS.values())
    assert settings.validate_config({})["version"] == fields.SCHEMA_VERSION


@pytest.mark.parametrize("name", sorted(settings.RECIPES))
def test_recipes_are_checked_against_the_schema(name):
    assert settings.check_partial(settings.RECIPES[name]) is settings.RECIPES[name]
    assert settings.validate_config({"recipe": name})["recipe"] == name


@pytest.mark.parametrize("recipe, message", [
    ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
    ({"optim": {"label_smoothing": 1.0}}, "optim.label_smoothing must be a number from 0 to 0.99"),
    ({"scheduler": {"warmup": 1}}, "unknown config key 'scheduler.warmup'"),
    ({"recipe": "fast"}, "unknown recipe 'fast'"),
])
def test_a_recipe_out_of_the_schema_is_refused(recipe, message):
    with pytest.raises(TrainingError, match=message.replace("(", r"\(")):
        settings.check_partial(recipe)


# ------------------------------------------------------------------------------ old config.json

def first_shape_config(demo_root) -> dict:
    """config.json as the first trainer wrote it (no version, and settings added since absent)."""
    from lesion_core import transforms

    return {"data": {"root": str(demo_root), "max_size": 0, "val_fraction": 0.15, "test_fraction": 0.15,
                     "split_seed": 42, "class_names": ["melanoma", "nevus", "seborrheic_keratosis"], "split": None},
            "model": {"name": "lenet", "weights": "random", "weights_path": None, "freeze_backbone": False},
            "optim": {"optimizer": "adamw", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.01},
            "scheduler": {"name": "cosine", "step_size": 7, "gamma": 0.1},
            "epochs": 2, "batch_size": 16, "image_size": 32, "max_side": None, "num_workers": 0, "seed": 0,
            "class_weights": "auto", "augment": transforms.preset("eval", 32), "eval_augment": transforms.preset(
                "eval", 32), "device": "auto", "amp": "auto", "channels_last": True,
            "resolved": {"device": "cpu", "image_size": 32}}


def test_an_unversioned_run_config_is_migrated_to_how_it_trained(demo_root, tmp_path):
    old = first_shape_config(demo_root)
    migrated = versions.migrate(old)
    assert "version" not in old  # the reader's copy, not the file's dict
    assert migrated["version"] == fields.SCHEMA_VERSION
    assert migrated["bn_recalibration_images"] == 0 and migrated["headline_metric"] == "mean_auc"
    checked = settings.validate_config(old)  # a resume validates it so
    assert checked["bn_recalibration_images"] == 0 and checked["headline_metric"] == "mean_auc"
    assert checked["optim"]["label_smoothing"] == 0 and checked["scheduler"]["warmup_epochs"] == 0
    assert checked["tta"] is False and checked["ema"] == 0 and checked["version"] == fields.SCHEMA_VERSION
    run_dir = tmp_path / "old-run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(old))
    (run_dir / "status.json").write_text(json.dumps({"state": "finished", "message": "done"}))
    loaded = settings.run_config(run_dir)
    assert loaded["version"] == fields.SCHEMA_VERSION and loaded["bn_recalibration_images"] == 0
    assert json.loads((run_dir / "config.json").read_text()) == old  # reading never rewrites a run


def test_a_current_config_without_version_keeps_every_value(demo_root):
    current = settings.validate_config({"data": {"root": str(demo_root)}, "model": {"name": "lenet"},
                                        "image_size": 32, "headline_metric": None})
    current.pop("version")
    current["resolved"] = {"device": "cpu"}
    again = settings.validate_config(current)
    assert again.pop("version") == fields.SCHEMA_VERSION
    assert again == current  # what the run trained and is scored with, unchanged


def test_a_run_records_the_schema_version_and_scores_the_same_without_it(demo_root, tmp_path):
    from lesion_core import inference, runs, training

    run_dir = training.run_training({"data": {"root": str(demo_root)}, "model": {"name": "lenet", "weights": "random"},
                                     "image_size": 32, "batch_size": 8, "epochs": 1, "tta": False}, tmp_path)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["version"] == fields.SCHEMA_VERSION
    stored = runs.read_metrics(run_dir, "test")
    del config["version"]  # config.json as the code before versions wrote it
    (run_dir / "config.json").write_text(json.dumps(config))
    assert settings.run_config(run_dir)["version"] == fields.SCHEMA_VERSION
    rescored = inference.evaluate_run(run_dir, split="test")
    assert rescored["accuracy"] == pytest.approx(stored["accuracy"])
    assert rescored["auc"] == pytest.approx(stored["auc"], nan_ok=True)


def test_a_config_from_a_newer_version_is_named(demo_root, tmp_path):
    config = first_shape_config(demo_root) | {"version": 99}
    with pytest.raises(TrainingError, match=r"^version must be an integer from 1 to 2, got 99$"):
        settings.validate_config(config)


# ------------------------------------------------------------------------------ the Train page

def train_page(app: AppTest) -> AppTest:
    app.switch_page("app_pages/train.py").run()
    assert not app.exception, app.exception
    return app


WIDGETS = {"keep_tr_batch": "batch_size", "keep_tr_epochs": "epochs", "keep_tr_max_size": "data.max_size",
           "keep_tr_seed": "seed", "keep_tr_lr": "optim.lr", "keep_tr_momentum": "optim.momentum",
           "keep_tr_decay": "optim.weight_decay", "keep_tr_smoothing": "optim.label_smoothing",
           "keep_tr_step": "scheduler.step_size", "keep_tr_gamma": "scheduler.gamma",
           "keep_tr_warmup": "scheduler.warmup_epochs", "keep_tr_size": "image_size"}


def test_the_train_pages_number_limits_are_the_schemas(app):
    train_page(app)
    for widget, key in WIDGETS.items():
        element = app.number_input(key=widget)
        limits = fields.bounds(key)
        low = limits["ge"]
        if key == "image_size":  # the model's own smallest input, above the schema's
            low = models.MODELS[app.session_state["model"]["name"]].min_input_size
        assert element.min == low, (widget, element.min, low)
        high = limits.get("le")
        assert element.max == (min(high, fields.JS_MAX_INT) if high is not None else None) or (
            high is None and element.max >= fields.JS_MAX_INT), (widget, element.max, high)
        assert element.step == fields.meta(key).get("step", 1), widget
        if key != "image_size":  # (its help names the model's own size)
            assert element.help == fields.help_text(key), widget
    assert app.selectbox(key="keep_tr_optimizer").options == list(fields.choices("optim.optimizer"))
    assert app.selectbox(key="keep_tr_scheduler").options == list(fields.choices("scheduler.name"))
    for widget, key in (("keep_tr_tta", "tta"), ("keep_tr_metadata", "metadata")):
        assert app.toggle(key=widget).help == fields.help_text(key)
    assert app.selectbox(key="keep_tr_weights").help == fields.help_text("class_weights")


def test_the_form_is_kept_across_a_new_session_and_reset_to_the_recipe(app):
    train_page(app)
    recipe = settings.recipe_config(app.session_state["keep_tr_recipe"])
    assert app.number_input(key="keep_tr_epochs").value == recipe["epochs"]
    app.number_input(key="keep_tr_epochs").set_value(7).run()
    app.number_input(key="keep_tr_size").set_value(64).run()
    assert not app.exception
    from lesion_core import paths

    saved = json.loads(draft.draft_path(paths.runs_dir()).read_text())
    assert saved["epochs"] == 7 and saved["image_size"] == 64 and saved["version"] == fields.SCHEMA_VERSION

    fresh = train_page(AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run())  # a reload
    assert fresh.number_input(key="keep_tr_epochs").value == 7
    assert fresh.number_input(key="keep_tr_size").value == 64

    fresh.number_input(key="keep_tr_seed").set_value(5).run()
    fresh.button(key="tr_reset").click().run()
    assert not fresh.exception
    assert fresh.number_input(key="keep_tr_epochs").value == recipe["epochs"]
    assert fresh.number_input(key="keep_tr_seed").value == 0  # no recipe sets it: its default, as after a reload
    assert not draft.draft_path(paths.runs_dir()).exists()
    again = train_page(AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run())
    assert again.number_input(key="keep_tr_epochs").value == recipe["epochs"]


def test_an_unwritable_runs_folder_keeps_the_form_working_and_says_it_is_not_kept(app):
    from lesion_core import paths

    train_page(app)
    paths.runs_dir().mkdir(parents=True, exist_ok=True)
    draft.draft_path(paths.runs_dir()).mkdir()  # a folder where the draft file should be: every write fails
    app.number_input(key="keep_tr_epochs").set_value(7).run()
    assert not app.exception
    assert app.number_input(key="keep_tr_epochs").value == 7
    assert any("The form is not kept across a reload" in w.value for w in app.warning)


@pytest.mark.parametrize("content, named", [
    ('{"epochs": 0, "version": 2}', "epochs must be an integer >= 1, got 0"),
    ('{"epochs": 5, "optim": {"lr": 99}}', "optim.lr must be a number from 1e-07 to 10, got 99"),
    ("{not json", "train_draft.json: not valid JSON"),
    ('{"model": {"name": "lenet"}}', "train_draft.json: not settings of the Train form"),
    ('{"recipe": "fast"}', "unknown recipe 'fast'"),
    ('{"augment": "nope"}', "unknown augmentation preset 'nope'"),
    ('{"augment": [{"name": "Rescale", "params": {"size": 256}}]}', "unknown augmentation preset"),
    ("[1, 2]", "a config must be a JSON object, got list"),
])
def test_a_damaged_draft_is_named_and_ignored(app, content, named):
    from lesion_core import paths

    paths.runs_dir().mkdir(parents=True, exist_ok=True)
    draft.draft_path(paths.runs_dir()).write_text(content)
    fresh = train_page(AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run())
    warnings = " ".join(w.value for w in fresh.warning)
    assert "The form's saved settings were ignored" in warnings and named in warnings, warnings
    recipe = settings.recipe_config(fresh.session_state["keep_tr_recipe"])
    assert fresh.number_input(key="keep_tr_epochs").value == recipe["epochs"]


def test_the_schema_version_is_no_setting_that_differs_between_runs():
    from lesion_core.evaluation import compare

    old, new = {"epochs": 3, "optim": {"lr": 0.001}}, {"epochs": 3, "optim": {"lr": 0.001}, "version": 2}
    assert compare.config_diff({"old": old, "new": new}) == []
