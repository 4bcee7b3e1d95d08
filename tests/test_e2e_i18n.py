"""End to end: switch a real app to Spanish in Chromium, walk every page, reload, and switch back."""

from __future__ import annotations

import re

import pytest

from lesion_core import i18n
from tests.e2e_helpers import demo_server, browser_tab
from tests.test_e2e import TIMEOUT_MS, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PAGES_ES = ["Inicio", "Conjunto de datos", "Aumentaciones", "Modelo", "Entrenar", "Resultados", "Comparar",
            "Predicciones", "Estudio de lectores"]
PAGES_EN = ["Home", "Dataset", "Augmentations", "Model", "Train", "Results", "Compare", "Predictions", "Reader study"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_root):
    with demo_server(tmp_path_factory.mktemp("e2e_i18n"), demo_root) as app:
        yield app


@pytest.fixture(scope="module")
def page(server):
    with browser_tab(TIMEOUT_MS, locale="en-US") as tab:
        yield tab


def nav(page) -> list[str]:
    links = page.locator("[data-testid='stSidebarNav'] a").all_inner_texts()
    return [text.split("\n")[-1] for text in links]  # the text after the icon's ligature


def choose_language(page, name: str) -> None:
    box = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").filter(has_text="Idioma / Language")
    box.click()
    page.get_by_role("option", name=name).click()
    wait_idle(page)


def english_lines(text: str) -> list[str]:
    """Lines of the page that are an English message whose Spanish differs (placeholders filled or not)."""
    table = i18n.catalogue("es")
    patterns = [re.compile("(?s)" + ".+?".join(re.escape(p) for p in re.split(r"\{\w*\}", msgid)) + r"\Z")
                for msgid, msgstr in table.items() if msgstr != msgid]
    spanish = set(table.values())
    return [line for line in {raw.strip() for raw in text.splitlines()} if line and line not in spanish
            and any(p.match(line) for p in patterns)]


def test_switch_to_spanish_walk_every_page_reload_and_back(page, server):
    page.goto(server.url)
    page.get_by_role("heading", name="Lesion Lab").first.wait_for()
    wait_idle(page)
    assert nav(page) == PAGES_EN  # the browser says en-US

    choose_language(page, "Español")
    page.get_by_text("Ejecuciones recientes").first.wait_for()
    assert nav(page) == PAGES_ES
    assert "lang=es" in page.url

    for title in PAGES_ES:
        page.locator("[data-testid='stSidebarNav'] a").filter(has_text=title).click()
        wait_idle(page)
        assert page.locator("[data-testid='stException']").count() == 0, title
        main = page.locator("[data-testid='stMain']").inner_text()
        assert english_lines(main) == [], title
        assert "lang=es" in page.url, title  # a page switch drops query params; the app writes it back

    page.reload()
    page.get_by_text("Aún no hay ejecuciones").first.wait_for()  # the Predictions page, still in Spanish
    wait_idle(page)
    assert nav(page) == PAGES_ES

    choose_language(page, "English")
    page.get_by_text("No runs yet").first.wait_for()
    assert nav(page) == PAGES_EN
    assert "lang=en" in page.url
