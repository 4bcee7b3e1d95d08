"""End to end in the browser: a 7-class HAM10000 run and a binary ISIC 2020 run, opened on the
Dataset, Results and Predictions pages of a real server (the run trained beforehand, LeNet at
32 px, a few seconds)."""

from __future__ import annotations
from lesion_core import training

import pytest

from tests import layout_fixtures as fx
from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS, Server, require_chromium, seed_demo_cache
from tests.test_e2e import TIMEOUT_MS, no_exception, open_page, shot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(params=["ham10000", "isic2020"])
def served(request, tmp_path, demo_root, one_torch_thread):
    """(server, page, layout): the layout as the app's dataset, one finished run on it."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    layout = request.param
    root = {"ham10000": fx.make_ham10000, "isic2020": fx.make_isic2020}[layout](tmp_path / layout)
    training.run_training({"data": {"root": str(root), "val_fraction": 0.25, "test_fraction": 0.25},
                        "model": {"name": "lenet", "weights": "random"}, "image_size": 32, "epochs": 2,
                        "batch_size": 8, "augment": [], "eval_augment": [], "bn_recalibration_images": 0},
                       tmp_path / "runs")
    seed_demo_cache(tmp_path / "cache", demo_root)
    server = Server({"LESION_LAB_CACHE": str(tmp_path / "cache"), "LESION_LAB_RUNS": str(tmp_path / "runs"),
                     "LESION_LAB_DATA": str(root), "OMP_NUM_THREADS": "1"}, log=tmp_path / "server.log")
    try:
        server.wait_healthy()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield server, page, layout
            browser.close()
    finally:
        server.stop()


def test_dataset_results_and_predictions_pages(served):
    server, page, layout = served
    group = {"ham10000": "lesion", "isic2020": "patient"}[layout]
    open_page(page, server, "dataset", "Dataset")
    page.get_by_text(f"no {group} in two splits").first.wait_for()
    page.get_by_text("Sex per class").first.wait_for()
    no_exception(page)
    shot(page, f"classes-{layout}-dataset")

    open_page(page, server, "results", "Results")
    page.get_by_text("Macro AUC (headline)").first.wait_for()
    page.get_by_text("Balanced accuracy").first.wait_for()
    page.get_by_role("heading", name="Subgroups").wait_for()
    if layout == "isic2020":
        page.get_by_text("ROC curve (melanoma against benign)").first.wait_for()
    no_exception(page)
    shot(page, f"classes-{layout}-results")

    open_page(page, server, "predictions", "Predictions")
    page.locator("[data-testid='stImage'] img").first.wait_for()
    no_exception(page)
