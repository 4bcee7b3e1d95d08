"""The CLI beyond a run's own split: external test sets, folders of images, progress output."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from lesion_core.cli import main
from lesion_core.data.demo import generate_demo
from lesion_core import training

TINY = ["--model", "lenet", "--pretrained", "random", "--image-size", "32", "--batch-size", "8"]
REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def external_root(tmp_path_factory) -> Path:
    """Another dataset the run never saw: 4 images per class, another seed and size."""
    return generate_demo(tmp_path_factory.mktemp("external") / "clinic_b", n_per_class=4, size=64, seed=7)


@pytest.fixture
def small_run(demo_root, tmp_path) -> Path:
    assert main(["train", "--data", str(demo_root), *TINY, "--epochs", "1", "--max-size", "24",
                 "--out", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_scores_every_image_of_an_external_dataset(small_run, external_root, capsys):
    assert main(["evaluate", str(small_run), "--data", str(external_root)]) == 0
    out = capsys.readouterr().out
    assert "external clinic_b" in out and "12 images" in out
    rows = read_csv(small_run / "predictions_external_clinic_b.csv")
    assert sorted(r["id"] for r in rows) == sorted(p.stem for p in (external_root / "images").iterdir())
    summary = json.loads((small_run / "metrics_external_clinic_b.json").read_text())
    assert summary["n"] == 12 and summary["data"] == str(external_root.resolve())
    # the run's own files are untouched
    assert len(read_csv(small_run / "predictions_test.csv")) < 12


def test_evaluate_leaves_out_images_without_a_mask_when_the_run_crops_to_the_lesion(
        demo_root, external_root, tmp_path, capsys):
    config = {"data": {"root": str(demo_root), "max_size": 24}, "model": {"name": "lenet", "weights": "random"},
              "image_size": 32, "epochs": 1, "batch_size": 8,
              "augment": [{"name": "CropByMask", "params": {"border": 0}}]}
    run_dir = training.run_training(config, tmp_path / "runs")
    partial = tmp_path / "partial"  # the external set with its first mask missing
    shutil.copytree(external_root, partial)
    sorted((partial / "masks").iterdir())[0].unlink()
    assert main(["evaluate", str(run_dir), "--data", str(partial)]) == 0
    out = capsys.readouterr().out
    assert "11 images" in out and "1 images without a mask left out" in out
    assert len(read_csv(run_dir / "predictions_external_partial.csv")) == 11


def test_predict_classifies_a_folder_and_several_images_into_a_csv(small_run, external_root, tmp_path, capsys):
    out_csv = tmp_path / "preds.csv"
    assert main(["predict", str(small_run), str(external_root), "--out", str(out_csv)]) == 0
    rows = read_csv(out_csv)
    assert len(rows) == 12
    assert set(rows[0]) == {"file", "prob_nevus", "prob_melanoma", "prob_seborrheic keratosis", "pred", "uncertain"}
    assert "12 images classified" in capsys.readouterr().out
    images = sorted((external_root / "images").iterdir())[:3]
    assert main(["predict", str(small_run), *map(str, images), "--out", str(out_csv)]) == 0
    assert [r["file"] for r in read_csv(out_csv)] == [str(p) for p in images]


def test_predict_skips_an_unreadable_image_and_says_why(small_run, external_root, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is no jpeg")
    good = sorted((external_root / "images").iterdir())[0]
    assert main(["predict", str(small_run), str(good), str(broken), "--out", str(tmp_path / "p.csv")]) == 1
    err = capsys.readouterr().err
    assert f"skipped: {broken}: cannot read image broken.jpg: not an image" in err
    assert len(read_csv(tmp_path / "p.csv")) == 1


def _train_command(demo_root, out) -> list[str]:
    return [sys.executable, "-m", "lesion_core", "train", "--data", str(demo_root), *TINY, "--epochs", "2",
            "--max-size", "24", "--out", str(out)]


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="120")


@pytest.mark.slow
def test_train_prints_one_line_per_epoch_when_not_a_terminal(demo_root, tmp_path):
    done = subprocess.run(_train_command(demo_root, tmp_path / "runs"), capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    epoch_lines = [line for line in done.stdout.splitlines() if " epoch " in line and "/2:" in line]
    assert len(epoch_lines) == 2 and "img/s" in epoch_lines[0]
    assert "batch/s" not in done.stdout + done.stderr and "\r" not in done.stdout + done.stderr


@pytest.mark.slow
def test_train_draws_a_progress_bar_with_images_per_second_and_eta_in_a_terminal(demo_root, tmp_path):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(_train_command(demo_root, tmp_path / "runs"), stdin=subprocess.DEVNULL,
                               stdout=follower, stderr=follower, env=_env())
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=300) == 0
    os.close(leader)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert "epoch 1 train:" in text and "batch/s" in text
    assert "img_s=" in text and "eta=" in text
