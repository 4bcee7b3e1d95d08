"""End to end: a real Streamlit server driven by headless Chromium through every page.

Slow (a minute or two): one server for the module, one browser page walking the product
the way a student would, with a screenshot of every page under test-artifacts/.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS, Server, artifacts_dir, require_chromium, seed_demo_cache

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_root):
    require_chromium()
    home = tmp_path_factory.mktemp("e2e")
    seed_demo_cache(home / "cache", demo_root)
    env = {"LESION_LAB_CACHE": str(home / "cache"), "LESION_LAB_RUNS": str(home / "runs"),
           "OMP_NUM_THREADS": "1"}
    app = Server(env, log=home / "server.log")
    try:
        app.wait_healthy()
        yield app
    finally:
        app.stop()
        _stop_trainers(home / "runs")


def _stop_trainers(runs_dir) -> None:
    """Kill trainer processes the app launched (they run detached from the server's group)."""
    from lesion_core import runs

    for run in runs.list_runs(runs_dir):
        pid = run.status.get("pid")
        if run.state in runs.ACTIVE_STATES and runs.pid_alive(pid):
            os.kill(pid, signal.SIGTERM)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        yield tab
        browser.close()


def open_page(page, server, path: str, heading: str) -> None:
    """Go to a page by URL and wait until its heading is shown and the script has finished."""
    page.goto(f"{server.url}/{path}")
    page.get_by_role("heading", name=heading).first.wait_for()
    wait_idle(page)


def wait_idle(page) -> None:
    """Wait until Streamlit's "running" indicator is gone (the script run finished)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)


def shot(page, name: str) -> None:
    """Screenshot the whole page: Streamlit scrolls inside its main block, so the viewport is
    grown to the content's height for the picture (and put back after)."""
    height = page.evaluate(
        "() => document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height + 100)})
    page.screenshot(path=str(artifacts_dir() / f"{name}.png"))
    page.set_viewport_size(size)


def no_exception(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0


def test_home(page, server):
    open_page(page, server, "", "Lesion Lab")
    page.get_by_text("CPU").first.wait_for()
    no_exception(page)
    shot(page, "01-home")


def test_dataset(page, server):
    open_page(page, server, "dataset", "Dataset")
    page.get_by_text("Validation report").wait_for()
    page.locator("[data-testid='stImage'] img").nth(1).wait_for()  # viewer and batch grid
    no_exception(page)
    shot(page, "02-dataset")


def test_augmentations(page, server):
    open_page(page, server, "augment", "Augmentations")
    caption = page.get_by_text("RandomRotate90: k=").first
    before = caption.inner_text()
    page.get_by_role("button", name="New draws").click()
    page.wait_for_function(
        """(old) => {
            const first = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
                .find(e => e.innerText.includes('RandomRotate90: k='));
            return first && first.innerText !== old;
        }""", arg=before)
    wait_idle(page)
    no_exception(page)
    shot(page, "03-augmentations")
