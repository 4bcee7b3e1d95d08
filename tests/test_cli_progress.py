"""Long commands show progress on stderr while stdout stays their machine-readable output."""

from __future__ import annotations

import csv
import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from lesion_core.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--model", "lenet", "--pretrained", "random", "--image-size", "32", "--batch-size", "8", "--epochs", "1",
        "--no-tta"]
ENV = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}  # the children run this checkout


@pytest.fixture(scope="module")
def tiny_run(demo_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "--data", str(demo_root), *TINY, "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


def lesion_lab(*args: str, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lesion_core", *args], stdout=subprocess.PIPE, stderr=stderr,
                          text=True, env=ENV, check=True)


def test_evaluate_says_what_it_scores_on_stderr_and_keeps_stdout_the_report(tiny_run):
    done = lesion_lab("evaluate", str(tiny_run), "--split", "test")
    assert done.stderr.splitlines()[0].startswith("evaluating test: ") and "batches..." in done.stderr
    assert done.stdout.startswith("test: ") and "evaluating" not in done.stdout


def test_predict_on_a_folder_shows_progress_on_stderr_and_prints_clean_csv(tiny_run, demo_root):
    done = lesion_lab("predict", str(tiny_run), str(demo_root))
    n_images = len(list((demo_root / "images").iterdir()))
    assert f"classifying: {n_images} images..." in done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == n_images and set(rows[0]) >= {"file", "pred", "uncertain"}


def test_on_a_terminal_predict_draws_a_live_bar(tiny_run, demo_root):
    leader, follower = pty.openpty()
    # a terminal 100 columns wide (a new pty has none, and tqdm then draws an empty bar)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    shown = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other end is closed: all was read
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    try:
        done = lesion_lab("predict", str(tiny_run), str(demo_root), stderr=follower)
    finally:
        os.close(follower)
        reader.join(timeout=60)
        os.close(leader)
    assert b"classifying" in shown and b"/60" in shown, bytes(shown[-500:])
    assert b"60 images..." not in shown  # the phase line is for logs; a terminal has the bar
    assert len(list(csv.DictReader(io.StringIO(done.stdout)))) == 60
