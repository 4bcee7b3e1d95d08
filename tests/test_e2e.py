"""End to end: a real Streamlit server driven by headless Chromium through every page.

Slow (a minute or two): one server for the module, one browser page walking the product
the way a student would, with a screenshot of every page under test-artifacts/. The tests
run in file order and build on each other: Results and Predictions show the run that
test_train_live_reload_and_finish trained.
"""

from __future__ import annotations
from lesion_core import training

import os
import re
import signal
import urllib.parse

import pytest

from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS, Server, artifacts_dir, require_chromium, seed_demo_cache

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_root):
    require_chromium()
    home = tmp_path_factory.mktemp("e2e")
    demo = seed_demo_cache(home / "cache", demo_root)
    env = {"LESION_LAB_CACHE": str(home / "cache"), "LESION_LAB_RUNS": str(home / "runs"),
           "OMP_NUM_THREADS": "1"}
    app = Server(env, log=home / "server.log")
    app.demo = demo
    app.runs = home / "runs"
    try:
        app.wait_healthy()
        yield app
    finally:
        app.stop()
        _stop_trainers(home / "runs")


def _stop_trainers(runs_dir) -> None:
    """Kill trainer processes the app launched (they run detached from the server's group)."""
    from lesion_core import locks, runs

    for run in runs.list_runs(runs_dir):
        pid = run.status.get("pid")
        if run.state in runs.ACTIVE_STATES and locks.pid_alive(pid):
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
    """Wait until the script run that the last action asked for has finished.

    The rerun starts a moment after the click or key press (a round trip to the server):
    looking at once can find the app idle before it began, and the next action then types
    into widgets that the still-running rerun resets (Epochs stayed at 3 that way). So give
    it that moment first, as Streamlit's own browser tests do, then wait for the app's
    script state to say notRunning.
    """
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=TIMEOUT_MS)


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


def test_a_deep_link_on_a_fresh_server_gets_the_whole_app(page, server):
    # The first request this server sees is /results: it must still run app.py (navigation
    # with our seven pages and the sidebar), not the page file alone.
    open_page(page, server, "results", "Results")
    links = page.locator("[data-testid='stSidebarNav'] a").all_inner_texts()
    nav = [text.split("\n")[-1] for text in links]  # the text after the icon's ligature
    assert nav == ["Home", "Dataset", "Augmentations", "Model", "Train", "Results", "Compare", "Predictions", "Reader study"]
    page.locator("[data-testid='stSidebar']").get_by_text("No runs yet").wait_for()


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


def test_model(page, server):
    open_page(page, server, "model", "Model")
    page.get_by_text("A real batch from the dataset").wait_for()
    no_exception(page)
    shot(page, "04-model")


def set_number(page, label: str, value: int) -> None:
    """Type into a Streamlit number input and commit it (Enter), then wait for the rerun."""
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)
    assert box.input_value() == str(value), f"{label} shows {box.input_value()!r}, not {value}"


def progress_epoch(page) -> int:
    """The epoch number the live progress bar shows ("epoch 2/6 · ...")."""
    text = page.locator("[data-testid='stProgress']").first.inner_text()
    return int(re.search(r"epoch (\d+)/", text).group(1))


def chart_points(page) -> int:
    """Markers drawn in the page's plotly charts (the live loss and AUC curves)."""
    return page.locator("[data-testid='stPlotlyChart'] .scatterlayer .point").count()


def test_train_live_reload_and_finish(page, server):
    open_page(page, server, "train", "Train")
    set_number(page, "Image size (px)", 64)
    # Long enough to still run after the reload (about 3 epochs in; 1-2 s an epoch), even when idle.
    set_number(page, "Epochs", 20)
    page.get_by_role("button", name="Launch").click()
    page.locator("[data-testid='stProgress']").first.wait_for()
    page.get_by_text("20 epochs of batch").first.wait_for()  # the run got the settings typed above
    # The live part refreshes itself: curves gain points epoch after epoch without a reload.
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .scatterlayer .point').length > 0",
        timeout=120_000)
    before = chart_points(page)
    page.wait_for_function(
        "(n) => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .scatterlayer .point').length > n",
        arg=before, timeout=120_000)
    shot(page, "05-train-live")
    epoch = progress_epoch(page)
    assert epoch < 20, "the run ended before the reload could be tested; make it longer"

    page.reload()  # a reload neither stops nor loses the run
    page.get_by_role("heading", name="Train").first.wait_for()
    page.locator("[data-testid='stProgress']").first.wait_for()
    assert progress_epoch(page) >= epoch
    page.get_by_text(re.compile(r"^finished: ")).first.wait_for(timeout=240_000)  # the state line
    page.get_by_text("best validation ISIC 2017 mean AUC (melanoma, keratosis): ").first.wait_for()
    # The ended run's page redraws whole: the sidebar's "Training:" note goes, no live leftovers.
    page.locator("[data-testid='stSidebar']").get_by_text("Training:").wait_for(state="detached")
    wait_idle(page)
    assert page.get_by_text("train.log").count() == 1
    no_exception(page)
    shot(page, "06-train-finished")


def test_results(page, server):
    open_page(page, server, "results", "Results")
    page.get_by_text("Confusion matrix (counts)").wait_for()
    page.get_by_text("Confusion matrix (row %)").wait_for()
    page.get_by_role("button", name="Download best.pt").wait_for()
    no_exception(page)
    shot(page, "07-results")


def test_predictions(page, server):
    open_page(page, server, "predictions", "Predictions")
    page.locator("[data-testid='stImage'] img").first.wait_for()
    assert page.locator("[data-testid='stImage'] img").count() >= 9  # the 9 test images of the demo
    page.get_by_role("button", name="View large").first.click()
    page.get_by_role("heading", name=re.compile(r": true .+, predicted ")).wait_for()
    page.locator("[data-testid='stPlotlyChart']").last.scroll_into_view_if_needed()
    page.get_by_text("Class probabilities").wait_for()
    wait_idle(page)
    # A new image, with its mask, classified by the run's best weights.
    uploads = page.locator("[data-testid='stFileUploader'] input[type='file']")
    uploads.nth(0).set_input_files(str(server.demo / "images" / "demo_0001.jpg"))
    uploads.nth(1).set_input_files(str(server.demo / "masks" / "demo_0001.png"))
    page.get_by_text("Most likely:").wait_for()
    wait_idle(page)
    no_exception(page)
    shot(page, "08-predictions")


def test_a_run_with_metadata_asks_for_the_patients_age_and_sex(page, server, demo_root, tmp_path):
    """A run trained on data with ages weighs the age typed beside an uploaded image."""
    from tests.test_patient import with_metadata
    from tests.test_train import tiny_config

    root = with_metadata(demo_root, tmp_path / "aged")
    run_dir = training.run_training(tiny_config(root, epochs=1, metadata=True), tmp_path / "runs")
    server.runs.mkdir(parents=True, exist_ok=True)  # (when this test runs alone, nothing trained there yet)
    os.rename(run_dir, server.runs / "99980000-metadata")  # the newest run: a new session shows it
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    try:
        # The run by its link (not as the newest, which other runs in this folder could outrank).
        open_page(tab, server, "predictions?run=99980000-metadata", "Predictions")
        tab.get_by_text("99980000-metadata").first.wait_for()
        tab.locator("[data-testid='stFileUploader'] input[type='file']").nth(0).set_input_files(
            str(server.demo / "images" / "demo_0001.jpg"))
        tab.get_by_text(re.compile(r"^(Uncertain\. )?Most likely:")).first.wait_for()  # the upload was classified
        wait_idle(tab)
        age = tab.get_by_role("spinbutton", name="Patient's age (years)")
        headlines = {}
        for years in ("25", "85"):
            age.fill(years)
            age.press("Enter")
            wait_idle(tab)
            headlines[years] = tab.get_by_text(re.compile(r"^(Uncertain\. )?Most likely:")).first.inner_text()
        assert "nevus" in headlines["25"] and "seborrheic keratosis" in headlines["85"], headlines
        no_exception(tab)
        shot(tab, "08b-predictions-age")
    except Exception:
        shot(tab, "08b-predictions-age-failed")  # what the page showed, for the CI log's reader
        raise
    finally:
        context.close()


def nav(page, label: str) -> None:
    """Go to another page the way a user does: the sidebar's navigation (keeps the session)."""
    path = {"Augmentations": "augment"}.get(label, label.lower())
    page.locator(f"[data-testid='stSidebarNav'] a[href$='/{path}']").click()
    page.get_by_role("heading", name=label if label != "Home" else "Lesion Lab").first.wait_for()
    wait_idle(page)


def choose(page, label: str, option: str) -> None:
    """Pick an option of the selectbox labelled label."""
    page.locator("[data-testid='stSelectbox']", has_text=label).first.click()
    page.get_by_role("option", name=re.compile("^" + re.escape(option))).first.click()
    wait_idle(page)


def test_a_reload_keeps_dataset_pipeline_model_and_run(page, server):
    import shutil

    # In the cache: one of the server's default data roots (its environment names none).
    folder = shutil.copytree(server.demo, server.demo.parent / "my-lesions", dirs_exist_ok=True)
    open_page(page, server, "dataset", "Dataset")
    page.get_by_text("Folder on the server").click()
    wait_idle(page)
    box = page.get_by_role("textbox", name="Dataset folder on the server")
    box.fill(str(folder))
    box.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Open folder").click()
    page.get_by_text("Current dataset: my-lesions").wait_for()
    nav(page, "Augmentations")
    choose(page, "Preset", "notebook_train")
    page.get_by_role("button", name="Load preset").click()
    page.get_by_text("CropByMask").first.wait_for()
    wait_idle(page)
    nav(page, "Model")
    choose(page, "Architecture", "lenet")
    page.get_by_text("A real batch from the dataset").wait_for()
    sidebar = page.locator("[data-testid='stSidebar']")
    from lesion_core import runs

    run_id = runs.list_runs(server.runs)[0].id  # the run test_train_live_reload_and_finish trained
    assert f"run={run_id}" in page.url  # the followed run (the sidebar's choice) is in the address

    page.reload()
    page.get_by_role("heading", name="Model").first.wait_for()
    wait_idle(page)
    sidebar.get_by_text("my-lesions").wait_for()
    assert f"run={run_id}" in page.url
    assert '"name":"lenet"' in urllib.parse.unquote(page.url)  # the model choice came back with the address
    nav(page, "Augmentations")
    page.get_by_text("CropByMask").first.wait_for()
    nav(page, "Train")
    page.get_by_text("my-lesions").first.wait_for()
    page.get_by_text("**model** lenet".replace("**", "")).first.wait_for()
    page.get_by_text(f"Run {run_id}").first.wait_for()
    no_exception(page)
    shot(page, "09-after-reload")


# One damaged run per kind of run file (test_pages_damage.py renders every kind on every page
# through AppTest; here a real server and browser, each page load costing seconds): metrics,
# predictions and the log; status.json and history.jsonl; config.json and best.pt.
BROWSER_DAMAGE = ("files", "status-list", "config-names", "sound")


def test_damaged_runs_never_break_a_page(page, server, demo_root):
    """Damaged run folders, each in turn the newest (what a new session shows): Train, Results
    and Predictions render without an exception and name the damage; then Home lists them all."""
    from tests.test_pages_damage import damaged_runs

    ids = damaged_runs(demo_root, server.runs)
    assert set(BROWSER_DAMAGE) <= set(ids)
    for n, kind in enumerate(BROWSER_DAMAGE):
        newest = f"9999{n:04d}-{kind}"  # sorts above every earlier run: the default choice
        os.rename(server.runs / ids[kind], server.runs / newest)
        context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        try:
            pages = (("train", "Train"), ("results", "Results"), ("predictions", "Predictions"))
            if n == len(BROWSER_DAMAGE) - 1:  # Home lists every run, damaged ones included: once is enough
                pages += (("", "Lesion Lab"),)
            for path, heading in pages:
                open_page(tab, server, path, heading)
                no_exception(tab)
                if path == "train":  # the Train page shows the newest run, and names its damage
                    text = tab.inner_text("body").lower()
                    assert (kind == "sound") == ("damaged" not in text), (kind, text[-2000:])
            shot(tab, f"damaged-{kind}")
        finally:
            context.close()
