"""In Chromium: the Train form as the user left it survives a reload (a new browser session),
and Reset to recipe brings the recipe back (settings.draft)."""

from __future__ import annotations

import json

import pytest

from lesion_core import settings
from lesion_core.settings import draft
from tests.e2e_helpers import demo_server, browser_tab, wait_for
from tests.test_e2e import TIMEOUT_MS, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_root):
    with demo_server(tmp_path_factory.mktemp("e2e_form"), demo_root) as app:
        yield app


def shown(page, label: str) -> str:
    return page.get_by_label(label, exact=True).input_value()


def type_into(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)


def open_train(page, server) -> None:
    page.goto(f"{server.url}/train")
    page.get_by_role("heading", name="Train").first.wait_for()
    wait_idle(page)


def test_the_form_survives_a_reload_and_reset_brings_the_recipe_back(server):
    quick = settings.recipe_config("quick")  # the demo's recipe
    with browser_tab(TIMEOUT_MS, locale="en-US") as page:
        open_train(page, server)
        # a fresh server's first page draws its number fields before their values arrive
        wait_for(lambda: shown(page, "Epochs") == str(quick["epochs"]), "the recipe's epochs")
        type_into(page, "Epochs", 7)
        type_into(page, "Image size (px)", 64)
        saved = wait_for(lambda: draft.draft_path(server.runs).is_file()
                         and json.loads(draft.draft_path(server.runs).read_text()), "the draft")
        wait_for(lambda: json.loads(draft.draft_path(server.runs).read_text()).get("image_size") == 64, "image size kept")

        page.reload()  # a new session: the form as the user left it, not the recipe
        page.get_by_role("heading", name="Train").first.wait_for()
        wait_idle(page)
        wait_for(lambda: shown(page, "Epochs") == "7", "epochs 7 after the reload")
        assert shown(page, "Image size (px)") == "64"
        assert saved["epochs"] == 7

        page.get_by_role("button", name="Reset to recipe").click()
        wait_idle(page)
        wait_for(lambda: shown(page, "Epochs") == str(quick["epochs"]), "the recipe's epochs")
        assert shown(page, "Image size (px)") == str(quick["image_size"])
        assert not draft.draft_path(server.runs).exists()
        open_train(page, server)  # and a reload after the reset stays at the recipe
        wait_for(lambda: shown(page, "Epochs") == str(quick["epochs"]), "the recipe's epochs after a reload")
