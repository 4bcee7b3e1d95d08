"""The HTML run report: self-contained, escaped, with the numbers the run's files give."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lesion_core import runs
from lesion_core.cli import main
from lesion_core.evaluation import report

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bootstrap_interval_brackets_the_auc_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    small_y = rng.random(40) < 0.3
    small_s = small_y + rng.normal(0, 0.8, 40)
    low, high = report.bootstrap_auc(small_y, small_s)
    assert low <= roc_auc_score(small_y, small_s) <= high
    big_y = rng.random(1000) < 0.3
    big_s = big_y + rng.normal(0, 0.8, 1000)
    big_low, big_high = report.bootstrap_auc(big_y, big_s)
    assert big_high - big_low < high - low
    assert np.isnan(report.bootstrap_auc(np.ones(5, bool), np.arange(5))[0])


def test_report_command_writes_a_self_contained_escaped_html(demo_root, tmp_path, capsys):
    assert main(["train", "--data", str(demo_root), "--model", "lenet", "--pretrained", "random", "--image-size", "32",
                 "--batch-size", "8", "--epochs", "1", "--augment", "eval", "--out", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    runs.write_status(run_dir, message="<script>alert('x')</script>")  # run files are untrusted
    out = tmp_path / "report.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "&lt;script&gt;alert(" in text and "<script>alert(" not in text
    assert "not validated for clinical use" in text
    assert "95% bootstrap CI" in text and "sens @ spec 0.89" in text and "Reliability diagram" in text
    without_scripts = re.sub(r"<script.*?</script>", "", text, flags=re.S)
    assert not re.search(r"(src|href)=\"https?:", without_scripts)  # nothing fetched when opened
    assert text.count("<img src=\"data:image/png;base64,") >= 1  # worst errors with heatmaps
