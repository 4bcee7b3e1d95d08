"""End to end: a student's loop on the real ISIC sample, in Chromium, where what matters is
what the browser shows (the pixels of a preview, a link from one page to the next)."""

from __future__ import annotations
from lesion_core import training

import io
import urllib.parse

import numpy as np
import pytest

from tests.e2e_helpers import demo_server, browser_tab
from tests.test_e2e import TIMEOUT_MS, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_root, isic_dev_root):
    with demo_server(tmp_path_factory.mktemp("e2e_student"), demo_root,
                     LESION_LAB_DATA_ROOTS=str(isic_dev_root)) as app:
        app.data = "folder:" + str(isic_dev_root)
        yield app


@pytest.fixture(scope="module")
def page(server):
    with browser_tab(TIMEOUT_MS, locale="en-US") as tab:
        yield tab


def open_with_data(page, server, path: str, heading: str) -> None:
    page.goto(f"{server.url}/{path}?data={urllib.parse.quote(server.data)}")
    page.get_by_role("heading", name=heading).first.wait_for()
    wait_idle(page)


def served_image(page, img) -> np.ndarray:
    """The pixels the browser received for an <img> (uint8 HxWx3)."""
    from PIL import Image

    src = img.get_attribute("src")
    body = page.request.get(urllib.parse.urljoin(page.url, src)).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def test_the_overlay_leaves_the_lesion_visible(page, server, isic_dev_root):
    from scipy import ndimage

    from lesion_core import data

    open_with_data(page, server, "augment", "Augmentations")
    record = data.load_dataset(isic_dev_root).records[0]  # the page starts on the first image
    page.get_by_text(record.id).first.wait_for()
    page.locator("[data-testid='stRadio']").filter(has_text="Mask").get_by_text("overlay").click()
    wait_idle(page)
    original = page.locator("[data-testid='stImage'] img").first  # the "original" tile
    shown = served_image(page, original)
    raw = data.read_image(record.image_path, None)
    assert shown.shape[:2] == raw.shape[:2]
    # The lesion's inside, away from the outline drawn on its edge.
    mask = ndimage.binary_erosion(data.read_mask(record.mask_path, shown.shape[:2]) != 0, iterations=3)
    inside = shown[mask].astype(float)
    # The lesion under the fill still varies as the lesion does (not one flat colour): it
    # keeps at least two thirds of its own contrast (a fill of alpha a keeps 1 - a).
    kept = inside.std(axis=0).mean() / raw[mask].astype(float).std(axis=0).mean()
    assert kept > 0.65, kept
    # Its green channel is tinted, not saturated.
    assert np.median(inside[:, 1]) < 230


def test_the_headline_metric_is_named_whole_on_results(page, server, demo_root):
    from tests.test_train import tiny_config

    training.run_training(tiny_config(demo_root, epochs=1), server.runs)
    page.goto(f"{server.url}/results")
    page.get_by_role("heading", name="Results").first.wait_for()
    wait_idle(page)
    label = page.locator("[data-testid='stMetricLabel']").filter(has_text="(headline)").first
    label.wait_for()
    # Streamlit cuts a label too long for its column with an ellipsis: no element of it may
    # hold more text than it shows.
    cut = label.evaluate("""(el) => [el, ...el.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1)""")
    assert not cut, label.inner_text()
    assert label.inner_text().strip() == "ISIC 2017 mean AUC (melanoma, keratosis) (headline)"
