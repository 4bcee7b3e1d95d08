"""The HTML run report: self-contained, escaped, with the numbers the run's files give."""

from __future__ import annotations

import re

import pytest

from lesion_core import runs
from lesion_core.cli import main
from lesion_core.evaluation import bootstrap, report

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
    assert "AUC [95% bootstrap CI]" in text and "sens @ spec 0.89" in text and "Reliability diagram" in text
    # The discrimination table carries the Results page's own figures (metrics_test.json)
    stored = bootstrap.run_intervals(run_dir, "test", compute=False)
    assert stored is not None
    shown = [bootstrap.format_interval(stored["mean_auc"]),
             *(bootstrap.format_interval(row) for row in stored["auc"].values())]
    assert all(re.search(r"\[\d\.\d{3}, \d\.\d{3}\]", figure) for figure in shown)
    for figure in shown:
        assert f"<td>{figure}</td>" in text
    without_scripts = re.sub(r"<script.*?</script>", "", text, flags=re.S)
    assert not re.search(r"(src|href)=\"https?:", without_scripts)  # nothing fetched when opened
    assert text.count("<img src=\"data:image/png;base64,") >= 1  # worst errors with heatmaps


def test_a_demo_run_report_says_its_figures_are_about_drawn_shapes(demo_root, tmp_path):
    import json

    assert main(["train", "--data", "demo", "--model", "lenet", "--pretrained", "random", "--image-size", "32",
                 "--batch-size", "8", "--epochs", "1", "--augment", "eval", "--out", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["data"]["root"] == "demo"
    assert "<b>Synthetic data.</b>" in report.build_report(run_dir, with_heatmaps=False)
    config = json.loads((run_dir / "config.json").read_text())
    config["data"]["root"] = str(demo_root)  # the same images as a folder of the user's
    (run_dir / "config.json").write_text(json.dumps(config))
    assert "Synthetic data." not in report.build_report(run_dir, with_heatmaps=False)


def test_a_heatmap_on_a_large_original_is_embedded_shrunk():
    # heatmaps are drawn on the original image now: a 2,000 px dermoscopy photo must not be embedded whole
    import base64
    import io

    import numpy as np
    from PIL import Image

    uri = report._png_uri(np.full((2000, 1500, 3), 90, np.uint8), report.HEATMAP_SIDE)
    picture = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert picture.size == (336, 448)  # the aspect ratio kept
