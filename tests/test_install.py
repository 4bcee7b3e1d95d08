"""The package as installed: the `lesion-lab` command and the trainer finding its own code.

The trainer and sweeps run `python -m lesion_core` in another folder, so they import the copy
installed in this Python (`pip install -e .`). A Launch from a copy that is not the installed
one must say so and create nothing, instead of training other code or failing in the child.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from lesion_core import install

REPO = Path(__file__).resolve().parents[1]


def test_the_running_checkout_is_the_one_children_import(tmp_path):
    assert install.child_package(tmp_path) == REPO / "lesion_core"
    install.require_installed(tmp_path)  # no error


def test_a_launch_from_a_copy_that_is_not_installed_says_so_and_creates_nothing(tmp_path, demo_root):
    copy = tmp_path / "other-checkout"
    shutil.copytree(REPO / "lesion_core", copy / "lesion_core", ignore=shutil.ignore_patterns("__pycache__"))
    runs_dir = tmp_path / "runs"
    config = {"data": {"root": str(demo_root)}, "model": {"name": "lenet", "weights": "random"},
              "image_size": 32, "epochs": 1, "augment": [], "eval_augment": []}
    script = ("import json, sys\n"
              "from lesion_core import training as train\n"
              "from lesion_core.errors import TrainingError\n"
              "assert train.__file__.startswith(sys.argv[1]), train.__file__\n"
              "try:\n"
              "    train.launch(json.loads(sys.argv[2]), sys.argv[3])\n"
              "except TrainingError as exc:\n"
              "    print(exc)\n"
              "else:\n"
              "    print('launched')\n")
    # Started in the copy: `import lesion_core` finds the copy (the current folder comes first).
    result = subprocess.run([sys.executable, "-c", script, str(copy), json.dumps(config), str(runs_dir)],
                            cwd=copy, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert "is not the one running" in message and f"pip install -e {copy}" in message, message
    assert not any(runs_dir.iterdir()) if runs_dir.exists() else True  # no run folder was made


def test_python_m_names_itself_in_usage():
    result = subprocess.run([sys.executable, "-m", "lesion_core", "--help"], capture_output=True, text=True,
                            timeout=300, cwd=REPO)
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m lesion_core"), result.stdout[:200]
