"""Damaged run files and hostile inputs: named and contained, never fatal, never silently replaced.

Each test writes one kind of damage into a real run folder (trained on the small demo with
a tiny LeNet) and checks the engine and the CLI refuse or report it in one line.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lesion_core import locks, runs
from lesion_core.cli import main
from lesion_core import inference
from lesion_core import settings
from lesion_core import training

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"model": {"name": "lenet", "weights": "random"}, "image_size": 32, "batch_size": 8,
        "augment": [], "eval_augment": []}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, demo_root) -> Path:
    """One finished tiny run, made once; tests copy it before damaging it."""
    runs_dir = tmp_path_factory.mktemp("finished") / "runs"
    return training.run_training(dict(TINY, data={"root": str(demo_root)}, epochs=1), runs_dir)


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "runs" / finished_run.name))


def stopped_run(demo_root, runs_dir: Path, epochs: int = 2) -> Path:
    """A run stopped before its first batch (STOP requested before it started): resumable."""
    config = settings.validate_config(dict(TINY, data={"root": str(demo_root)}, epochs=epochs))
    run_dir = runs.create_run(runs_dir, config)
    runs.request_stop(run_dir)
    assert main(["train", "--run-dir", str(run_dir)]) == 0
    return run_dir


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ---------------------------------------------------------------- 1. resume of a damaged config


@pytest.mark.parametrize("text", ["{ bad", "[1, 2]", '{"optim": "fast"}', '{"model": {"name": ["lenet"]}}'])
def test_resume_with_a_damaged_config_refuses_and_changes_nothing(demo_root, tmp_path, capsys, text):
    run_dir = stopped_run(demo_root, tmp_path / "runs")
    (run_dir / "config.json").write_text(text)
    before = snapshot(run_dir)
    assert main(["train", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot resume run") and "config.json" in err and "Traceback" not in err
    assert snapshot(run_dir) == before


# ---------------------------------------------------------------- 2. every reader of run files


@pytest.mark.parametrize("name, content, expected", [
    ("status.json", '{"state": "finished", "started": "x"}', "status.json: 'started' is 'x'"),
    ("status.json", '["finished"]', "status.json: holds a list"),
    ("status.json", b"\xff\xfe\x00garbage", "status.json: not valid JSON"),
    ("config.json", '{"optim": "fast"}', "config.json: section 'optim' is 'fast'"),
    ("config.json", '{"data": {"class_names": 3}}', "config.json: data.class_names is 3"),
    ("config.json", '{"augment": [1, 2]}', "config.json: augment is [1, 2], not a pipeline"),
    ("config.json", '{"augment": "default_train"}', "config.json: augment is 'default_train', not a pipeline"),
    ("metrics_test.json", '{"accuracy": 0.5}', "metrics_test.json: class_names is None"),
    ("metrics_val.json", '{"class_names": ["a", "b"], "accuracy": "high"}', "metrics_val.json: accuracy is 'high'"),
])
def test_a_damaged_file_is_named_in_the_listing(run_copy, name, content, expected):
    (run_copy / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (listed,) = runs.list_runs(run_copy.parent)
    assert any(p.startswith(expected) for p in listed.damage), listed.damage
    if name in ("config.json", "status.json"):
        assert listed.state == runs.DAMAGED
        assert isinstance(listed.config, dict) and isinstance(listed.status.get("started", 0.0), float)
    assert runs.active_run(run_copy.parent) is None


def test_a_sound_run_has_no_damage(finished_run):
    info = runs.run_info(finished_run)
    assert info.damage == [] and info.state == "finished"


def test_training_beside_a_damaged_run_still_works(run_copy, demo_root, capsys):
    (run_copy / "status.json").write_text('{"state": "running", "started": "x", "updated": 1.0, "pid": "12"}')
    assert main(["train", "--data", str(demo_root), "--model", "lenet", "--pretrained", "random",
                 "--image-size", "32", "--batch-size", "8", "--epochs", "1", "--out", str(run_copy.parent)]) == 0
    assert len(runs.list_runs(run_copy.parent)) == 2


def test_history_garbage_lines_are_skipped_counted_and_resume_works(demo_root, tmp_path):
    run_dir = stopped_run(demo_root, tmp_path / "runs", epochs=1)
    with open(run_dir / "history.jsonl", "ab") as handle:
        handle.write(b'{"epoch": "x", "phase": "val"}\n\xff\xfe\n{"epoch": 1, "phase": "val", "loss": "low"}\n')
    assert "history.jsonl: 3 unreadable lines skipped" in runs.run_info(run_dir).damage
    assert main(["train", "--resume", str(run_dir)]) == 0
    assert runs.read_status(run_dir)["state"] == "finished"
    assert "history.jsonl: 3 unreadable line(s) skipped" in runs.log_tail(run_dir)
    assert runs.run_info(run_dir).damage == []


def test_evaluate_validates_config_values(run_copy, capsys):
    config = json.loads((run_copy / "config.json").read_text())
    config["batch_size"] = -4
    (run_copy / "config.json").write_text(json.dumps(config))
    assert main(["evaluate", str(run_copy)]) == 2
    err = capsys.readouterr().err
    assert "batch_size must be an integer >= 1, got -4" in err and "Traceback" not in err


def test_a_binary_predictions_csv_is_a_data_error_naming_it(run_copy):
    from lesion_core.errors import DataError

    (run_copy / "predictions_test.csv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="predictions_test.csv is damaged"):
        inference.read_predictions(run_copy / "predictions_test.csv")


def test_a_binary_train_log_is_shown_with_replacement_characters(run_copy):
    (run_copy / "train.log").write_bytes(b"ok line\n\xff\xfe\x00 binary")
    assert runs.log_tail(run_copy).startswith("ok line\n\ufffd\ufffd")


# ---------------------------------------------------------------- 4. the lock covers --resume


def test_resume_from_the_cli_takes_the_one_run_at_a_time_lock(demo_root, tmp_path, capsys):
    run_dir = stopped_run(demo_root, tmp_path / "runs")
    busy = runs.create_run(tmp_path / "runs", json.loads((run_dir / "config.json").read_text()))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        runs.write_status(busy, state="running", pid=sleeper.pid)
        with locks.run(busy):  # held for the sleeper, as a trainer holds its run's lock
            assert main(["train", "--resume", str(run_dir)]) == 2
        assert f"run {busy.name} is still running: one training at a time" in capsys.readouterr().err
        assert runs.read_status(run_dir)["state"] == "stopped"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert main(["train", "--resume", str(run_dir)]) == 0


# ---------------------------------------------------------------- 5. evaluate with images gone


def test_evaluate_refuses_when_recorded_images_are_missing_and_allow_missing_scores_the_rest(
        demo_root, tmp_path, capsys):
    data_copy = Path(shutil.copytree(demo_root, tmp_path / "data"))
    run_dir = training.run_training(dict(TINY, data={"root": str(data_copy)}, epochs=1), tmp_path / "runs")
    test_ids = settings.run_config(run_dir)["data"]["split"]["splits"]["test"]
    (data_copy / "images" / f"{test_ids[0]}.jpg").unlink()
    (data_copy / "images" / f"{test_ids[1]}.jpg").write_bytes(b"not a jpeg")
    capsys.readouterr()
    assert main(["evaluate", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"2 of the {len(test_ids)} recorded test images are missing or unreadable" in err
    out_file = tmp_path / "metrics.json"
    assert main(["evaluate", str(run_dir), "--allow-missing", "--out", str(out_file)]) == 0
    assert f"{len(test_ids) - 2} images" in capsys.readouterr().out
    written = json.loads(out_file.read_text())
    assert written["n_missing"] == 2 and written["n"] == len(test_ids) - 2


# ---------------------------------------------------------------- 6. OS errors


def test_out_naming_a_file_is_one_line(demo_root, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["train", "--data", str(demo_root), "--model", "lenet", "--out", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "afile" in err and "a file is in the way" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_a_read_only_runs_folder_is_one_line(demo_root, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    runs_dir.chmod(0o555)
    try:
        assert main(["train", "--data", str(demo_root), "--model", "lenet", "--out", str(runs_dir)]) == 2
    finally:
        runs_dir.chmod(0o755)
    assert "permission denied" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_named_as_such():
    from lesion_core.errors import describe_os_error

    with pytest.raises(OSError) as caught, open("/dev/full", "wb") as handle:
        handle.write(b"x")
        handle.flush()
    assert describe_os_error(caught.value).endswith("no space left on the device; free some space and try again")


def test_demo_data_into_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["demo-data", str(tmp_path / "afile" / "demo"), "--n-per-class", "2", "--size", "32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "afile" in err and err.count("\n") == 1


# ---------------------------------------------------------------- 8. messages that leak internals


def test_stop_before_any_epoch_does_not_claim_weights_were_saved(demo_root, tmp_path):
    run_dir = stopped_run(demo_root, tmp_path / "runs")
    message = runs.read_status(run_dir)["message"]
    assert "no epoch was completed, so no weights were saved" in message
    assert "weights saved (" not in message


@pytest.mark.parametrize("seed", range(6))
def test_a_random_bytes_checkpoint_is_not_a_checkpoint_and_safety_is_never_turned_off(run_copy, capsys, seed):
    # Different bytes make torch fail differently (UnpicklingError, IndexError, RuntimeError...):
    # seeded, so each case is the same every run.
    (run_copy / "best.pt").write_bytes(random.Random(seed).randbytes(4096))
    assert main(["evaluate", str(run_copy)]) == 2
    err = capsys.readouterr().err
    assert "not a checkpoint" in err
    assert "weights_only" not in err and "could run code" not in err


def test_a_non_image_upload_is_named_by_its_file_name():
    import io

    from lesion_core import data
    from lesion_core.errors import DataError

    class Upload(io.BytesIO):  # what Streamlit's UploadedFile is: a BytesIO with a name
        name = "notes.txt"

        def __repr__(self):
            return "UploadedFile(file_id='x', upload_url='/_stcore/upload_file/x')"

    with pytest.raises(DataError) as caught:
        data.read_image(Upload(b"plain text, not an image"))
    assert "notes.txt" in str(caught.value) and "UploadedFile" not in str(caught.value)


# ---------------------------------------------------------------- 3. zip bombs of many small entries


def test_a_zip_bomb_of_many_small_entries_is_refused_by_its_total_ratio(tmp_path, demo_root):
    import zipfile

    from lesion_core.data import import_zip
    from lesion_core.errors import UnsafeArchiveError

    zip_path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(demo_root / "labels.csv", "labels.csv")
        for i in range(150):  # each entry exactly 1 MiB: under the per-entry check
            archive.writestr(f"images/zero{i}.jpg", bytes(2**20))
    assert zip_path.stat().st_size < 2**20
    with pytest.raises(UnsafeArchiveError, match="overall, more than the limit of 200:1"):
        import_zip(zip_path, tmp_path / "dest")
    assert not (tmp_path / "dest").exists() and sorted(tmp_path.iterdir()) == [zip_path]


def test_an_import_larger_than_the_free_disk_space_is_refused(tmp_path):
    from lesion_core.data import check_room
    from lesion_core.errors import UnsafeArchiveError

    free = shutil.disk_usage(tmp_path).free
    check_room(2**20, tmp_path / "not" / "yet")  # a small import into a folder still to be made
    with pytest.raises(UnsafeArchiveError, match="are free on that disk"):
        check_room(free, tmp_path / "not" / "yet")


# ---------------------------------------------------------------- 7. data that looks fine but is not


def test_an_all_255_mask_is_noted_and_an_empty_class_warned(demo_root, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    root = Path(shutil.copytree(demo_root, tmp_path / "data"))
    lines = (root / "labels.csv").read_text().splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if not line.endswith(",2")]  # no keratosis at all
    (root / "labels.csv").write_text("\n".join(kept) + "\n")
    first = kept[1].split(",")[0]
    size = Image.open(root / "images" / f"{first}.jpg").size
    Image.fromarray(np.full(size[::-1], 255, np.uint8)).save(root / "masks" / f"{first}.png")
    main(["check-data", str(root)])
    out = capsys.readouterr().out
    assert f"{first}: [full_mask]" in out
    assert "[empty_class] class 'seborrheic keratosis' has no usable images" in out


def test_metrics_say_which_aucs_are_undefined_instead_of_averaging_the_rest():
    from lesion_core import metrics

    result = metrics.compute_metrics([0, 1, 0, 1], np.eye(3)[[0, 1, 1, 1]], ("nevus", "melanoma", "seborrheic keratosis"))
    assert result["mean_auc"] != result["mean_auc"]  # NaN: not melanoma's AUC alone
    assert result["undefined_auc"] == ["seborrheic keratosis"]


def test_resume_from_a_last_pt_of_the_wrong_shape_fails_with_one_line(demo_root, tmp_path, capsys):
    import torch

    run_dir = stopped_run(demo_root, tmp_path / "runs")
    torch.save({"weights": torch.zeros(2)}, run_dir / "last.pt")
    assert main(["train", "--resume", str(run_dir)]) == 2
    assert "last.pt is not a checkpoint the trainer wrote" in capsys.readouterr().err
