"""Reader study in a real browser: a named reader answers with the class buttons, reloads,
resumes where they stopped, finishes, reads again with the model, and sees both points on
the ROC; the reads file holds every answer."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from lesion_core import data, runs
from lesion_core.evaluation import readers
from lesion_core import inference
from tests.e2e_helpers import demo_server, browser_tab, artifacts_dir
from tests.test_export import make_run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TIMEOUT_MS = 60_000


def reader_run(demo_root, runs_dir):
    """A finished-looking LeNet run (random weights: the heatmap works) whose test predictions
    hold one image per class: three answers make a pass."""
    run_dir = make_run(demo_root, runs_dir, "lenet", 64)
    dataset = data.load_dataset(demo_root)
    config = runs.read_config(run_dir)
    config["data"]["split"] = dataset.to_spec()
    runs.atomic_write_json(run_dir / "config.json", config)
    names = list(dataset.class_names)
    chosen = [next(r for r in dataset.split("test") if r.label == c) for c in range(len(names))]
    labels = np.array([r.label for r in chosen])
    probs = np.full((len(chosen), len(names)), 0.2)
    probs[np.arange(len(chosen)), labels] = 0.6
    inference.write_predictions(run_dir / "predictions_test.csv", [r.id for r in chosen], labels,
                                probs / probs.sum(1, keepdims=True),
                            names)
    runs.write_status(run_dir, state="finished", message="finished: test mean AUC 1.000")
    return run_dir, names


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_root):
    home = tmp_path_factory.mktemp("readers_e2e")
    run_dir, names = reader_run(demo_root, home / "runs")
    with demo_server(home, demo_root) as app:
        app.run_dir, app.names = run_dir, names
        yield app


@pytest.fixture(scope="module")
def page(server):
    with browser_tab(TIMEOUT_MS, height=1100) as tab:
        yield tab


def wait_idle(page) -> None:
    """Wait for the rerun the last action asked for (see test_e2e.wait_idle)."""
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=TIMEOUT_MS)


def progress(page, text: str) -> None:
    page.get_by_text(text).first.wait_for()
    assert page.locator("[data-testid='stException']").count() == 0


def answer(page, class_name: str) -> None:
    # A class button's text ends with its keyboard shortcut ("nevus 1"); no class name holds another.
    page.locator("button", has_text=class_name).click()
    wait_idle(page)


def test_a_reader_reads_twice_and_sees_both_points_on_the_roc(page, server):
    page.goto(f"{server.url}/readers")
    page.get_by_role("heading", name="Reader study").first.wait_for()
    wait_idle(page)
    name = page.get_by_role("textbox", name="Reader")
    name.fill("Dr Ana")
    name.press("Enter")
    wait_idle(page)
    progress(page, "0 of 3 answered · image 1 of 3")
    answer(page, "nevus")
    progress(page, "1 of 3 answered · image 2 of 3")
    answer(page, "melanoma")
    progress(page, "2 of 3 answered · image 3 of 3")

    page.reload()  # the session is gone: the name comes back from the address, the place from the file
    page.get_by_role("heading", name="Reader study").first.wait_for()
    wait_idle(page)
    progress(page, "2 of 3 answered · image 3 of 3")
    assert page.get_by_role("textbox", name="Reader").input_value() == "dr-ana"
    page.get_by_role("heading", name="Reader study").first.click()  # focus on the page, not in a text box
    page.keyboard.press("1")  # the keyboard shortcut of the first class (nevus)
    wait_idle(page)
    page.get_by_text("First pass done: 3 images read.").wait_for()

    page.get_by_role("button", name="Start the second pass, with the model").click()
    wait_idle(page)
    page.get_by_text("Second pass, with the model: dr-ana").wait_for()
    page.get_by_text("Your first answer:").first.wait_for()
    page.get_by_text("Class probabilities").first.wait_for()  # the model's output is shown now
    for done, class_name in enumerate(("melanoma", "nevus"), start=1):
        answer(page, class_name)
        progress(page, f"{done} of 3 answered · image {done + 1} of 3")
    answer(page, "seborrheic keratosis")
    page.get_by_text("Both passes done: 3 images read twice.").wait_for()

    legend = page.locator("[data-testid='stPlotlyChart'] .legendtext")
    legend.filter(has_text="dr-ana, pass 2").first.wait_for()
    names = legend.all_text_contents()
    assert "dr-ana, pass 1" in names and "dr-ana, pass 2" in names, names
    assert page.locator("[data-testid='stPlotlyChart'] .annotation-arrow-g path, "
                        "[data-testid='stPlotlyChart'] g.annotation").count() >= 1  # the arrow, pass 1 -> 2
    page.screenshot(path=str(artifacts_dir() / "reader-study.png"), full_page=True)
    roc = page.locator("[data-testid='stPlotlyChart']").filter(has_text="dr-ana, pass 2")
    roc.hover()
    with page.expect_download() as download:  # the figure as PNG, from the chart's own camera button
        roc.get_by_role("button", name="Download plot as a PNG").click()
    png = download.value
    assert png.suggested_filename.endswith("-readers-test.png")
    assert open(png.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n"

    with open(readers.reads_path(server.run_dir, "dr-ana"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["pass"], r["diagnosis"]) for r in rows] == [
        ("1", "nevus"), ("1", "melanoma"), ("1", "nevus"), ("2", "melanoma"), ("2", "nevus"), ("2", "seborrheic keratosis")]
    order = [readers.reading_order([r["image_id"] for r in rows[:3]], "dr-ana", p) for p in (1, 2)]
    assert [r["image_id"] for r in rows] == order[0] + order[1]
    assert all(float(r["time_s"]) >= 0 and float(r["timestamp"]) > 0 for r in rows)
