"""The command line answers --help and argument errors without loading the engine (torch,
torchvision, scikit-learn: 10-15 s on a busy 2-core machine); bench/cli_start.py times it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lesion_core import export, transforms
from lesion_core.cli import names as cli_names
from lesion_core.evaluation import explain
from tests.e2e_helpers import REPO

HEAVY = ("torch", "torchvision", "sklearn", "numpy", "PIL", "cv2", "lesion_core.data", "lesion_core.transforms")

# Run main() in a fresh interpreter; print which heavy modules it loaded, and its exit code.
CHILD = """
import json, sys
from lesion_core.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def loaded_by(*argv: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [
    ["--help"],
    *[[command, "--help"] for command in ("train", "evaluate", "predict", "explain", "export", "augment",
                                          "import-zip", "check-data", "compare", "sweep", "report")],
    ["train", "--epochs", "x"],  # an argument error
    ["export", "runs/x", "--format", "tflite", "--out", "m"],  # a choice that is not offered
    ["no-such-command"],
])
def test_help_and_argument_errors_load_no_engine_module(argv):
    result = loaded_by(*argv)
    assert result["code"] in (0, 2), result
    assert result["loaded"] == [], result


def test_the_names_offered_before_the_engine_loads_are_the_engines():
    assert cli_names.PRESET_NAMES == transforms.PRESET_NAMES == tuple(transforms.PRESETS)
    assert cli_names.EXPLAIN_METHODS == tuple(explain.METHODS)
    assert cli_names.DEFAULT_EXPLAIN_METHOD == explain.DEFAULT_METHOD
    assert cli_names.EXPORT_FORMATS == export.FORMATS and cli_names.EXPORT_TOLERANCE == export.TOLERANCE
