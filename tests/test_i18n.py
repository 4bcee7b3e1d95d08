"""Spanish and English: catalogues complete, every page rendered in Spanish without English left over."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lesion_core import data, i18n, metrics, paths, plots, runs, train
from lesion_core.i18n import check
from tests.e2e_helpers import REPO, seed_demo_cache
from tests.test_export import make_run

PAGES = ["home", "dataset", "augment", "model", "train", "results", "compare", "predictions"]


# ---------------------------------------------------------------- catalogues


@pytest.mark.parametrize("lang", [lang for lang in i18n.LANGUAGES if lang != i18n.DEFAULT])
def test_every_message_the_pages_use_is_translated(lang):
    # English is the msgid itself; every other language needs a non-empty msgstr for each.
    absent = check.missing(lang)
    assert not absent, "missing (run python -m lesion_core.i18n.check --add):\n" + "\n".join(map(str, absent))


def test_no_page_hands_streamlit_an_unwrapped_text():
    found = check.unwrapped()
    assert not found, "wrap these in _() (python -m lesion_core.i18n.check):\n" + "\n".join(map(str, found))


def test_translations_keep_the_placeholders_of_their_message():
    for lang in i18n.LANGUAGES:
        for msgid, msgstr in i18n.catalogue(lang).items():
            assert i18n.placeholders(msgid) == i18n.placeholders(msgstr), (lang, msgid, msgstr)


def test_the_checker_finds_what_a_new_section_forgets(tmp_path):
    page = tmp_path / "page.py"
    page.write_text('import streamlit as st\nfrom app_pages.lang import _\n'
                    'st.subheader("Calibration")\nst.metric(_("Accuracy"), 1)\n'
                    'st.caption(f"{3} bins")\nst.button(_("Brand new words"), help="Why")\n'
                    'st.page_link("app_pages/home.py", label=_("Home"))\nst.markdown("**ok**")  # i18n: skip\n')
    assert [(f.line, f.text) for f in check.unwrapped([page])] == [(3, "Calibration"), (5, "{} bins"), (6, "Why")]
    assert [f.text for f in check.missing("es", [page])] == ["Brand new words"]


def test_add_writes_stubs_the_parser_reads_once_filled(tmp_path, monkeypatch):
    monkeypatch.setattr(i18n, "FOLDER", tmp_path)
    (tmp_path / "es.po").write_text('msgid "Home"\nmsgstr "Inicio"\n', encoding="utf-8")
    page = tmp_path / "page.py"
    page.write_text('_("Say \\"hi\\"\\nnow")\n_("Home")\n')
    monkeypatch.setattr(check, "REPO", tmp_path)
    assert check.add_stubs("es", check.missing("es", [page])) == 1
    text = (tmp_path / "es.po").read_text(encoding="utf-8")
    assert i18n.parse_po(text) == {"Home": "Inicio"}  # an empty msgstr stays English
    filled = text.replace('msgstr ""', 'msgstr "Di \\"hola\\"\\n"\n"ahora"')
    assert i18n.parse_po(filled)['Say "hi"\nnow'] == 'Di "hola"\nahora'


def test_language_choice_url_then_browser_then_english():
    assert i18n.pick_language("es", "en-US") == "es"
    assert i18n.pick_language(None, "es-ES") == "es"
    assert i18n.pick_language("fr", "fr-FR") == "en"
    assert i18n.pick_language("<script>", None) == "en"


def test_numbers_use_a_decimal_comma_in_spanish():
    assert i18n.number(0.87349, 3, "es") == "0,873"
    assert i18n.number(0.87349, 3, "en") == "0.873"
    assert i18n.number(1234567, 0, "es") == "1.234.567"
    assert i18n.number(0.456, 0, "es", percent=True) == "46%"
    assert i18n.number(None, 3, "es") == "n/d"


def test_class_names_are_translated_on_screen_only():
    assert [i18n.class_name(n, "es") for n in data.CLASS_NAMES] == ["nevo", "melanoma", "queratosis seborreica"]
    assert [i18n.class_name(n, "en") for n in data.CLASS_NAMES] == list(data.CLASS_NAMES)


def test_figures_are_translated_with_their_class_names_and_decimals():
    roc = {i: {"fpr": [0, 0.5, 1], "tpr": [0, 0.7, 1]} for i in range(3)}
    fig = i18n.figure(plots.roc_curves(roc, {0: 0.61, 1: 0.8734, 2: None}, data.CLASS_NAMES), "es")
    assert fig.layout.title.text == "Curvas ROC (una clase frente al resto)"
    assert fig.layout.xaxis.title.text == "tasa de falsos positivos"
    assert [t.name for t in fig.data] == ["azar", "nevo (AUC 0,610)", "melanoma (AUC 0,873)",
                                          "queratosis seborreica (AUC n/d)"]
    assert fig.layout.separators == ",."
    heat = i18n.figure(plots.confusion_heatmap([[50.0, 50.0, 0], [0, 100.0, 0], [12.5, 0, 87.5]],
                                               data.CLASS_NAMES, percent=True), "es")
    assert list(heat.data[0].x) == ["nevo", "melanoma", "queratosis seborreica"]
    assert heat.data[0].text[2][0] == "12,5%"


# ---------------------------------------------------------------- every page in Spanish


# Proto fields that hold identifiers, not text a user reads (page URLs, widget ids, icons).
NOT_TEXT = {"url_pathname", "page_script_hash", "id", "form_id", "icon", "type", "page", "key"}


def _strings(value, out: list) -> list:
    """Every string inside a protobuf message, parsing JSON specs (plotly) into their strings."""
    from google.protobuf.message import Message

    if isinstance(value, Message):
        for field, item in value.ListFields():
            if field.name in NOT_TEXT:
                continue
            repeated = hasattr(item, "__len__") and not isinstance(item, (str, bytes, Message))
            if repeated:
                for element in item:
                    _strings(element, out)
            else:
                _strings(item, out)
    elif isinstance(value, str):
        if value.startswith("{") and '"layout"' in value:
            _json_strings(json.loads(value), out)
        else:
            out.append(value)
    return out


PLOTLY_TEXT = {"text", "name", "ticktext", "x", "y"}  # keys whose strings a reader sees (not modes, fonts)


def _json_strings(value, out: list, key: str = "") -> None:
    if isinstance(value, dict):
        for k, item in value.items():
            if k != "template":
                _json_strings(item, out, k)
    elif isinstance(value, list):
        for item in value:
            _json_strings(item, out, key)
    elif isinstance(value, str) and key in PLOTLY_TEXT:
        out.append(value)


def shown_strings(app: AppTest) -> list[str]:
    """Every text of the rendered page (labels, options, help, bodies, chart texts, table headers)."""
    out: list[str] = []
    for node in _walk(app._tree):
        proto = getattr(node, "proto", None)
        if proto is not None and not hasattr(node, "children"):
            _strings(proto, out)
    for frame in app.dataframe:
        out += [str(c) for c in frame.value.columns]
    return out


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def english_leftovers(strings, lang: str = "es") -> list[str]:
    """Texts shown that are an English message (literally, or with its placeholders filled)
    whose translation differs: what a Spanish reader would see in English."""
    table = i18n.catalogue(lang)
    patterns = []
    for msgid, msgstr in table.items():
        if msgstr == msgid:
            continue
        fixed = re.split(r"\{\w*\}", msgid)
        patterns.append(re.compile("(?s)" + ".+?".join(re.escape(p) for p in fixed) + r"\Z"))
    spanish = set(table.values())
    leftovers = []
    for text in {s.strip() for s in strings if s and s.strip()}:
        if text in spanish:
            continue
        if (text in table and table[text] != text) or any(p.match(text) for p in patterns):
            leftovers.append(text)
    return sorted(leftovers)


@pytest.fixture
def finished_run(demo_root):
    """A run folder as a finished run leaves it: weights, history, metrics and predictions."""
    run_dir = make_run(demo_root, paths.runs_dir(), "lenet", 64)
    names = list(data.CLASS_NAMES)
    rng = np.random.default_rng(0)
    labels = np.arange(12) % 3
    probs = rng.dirichlet([1, 1, 1], size=12)
    lesion = data.load_dataset(demo_root)
    ids = [r.id for r in lesion.split("test")][:12]
    for split in ("test", "val"):
        result = metrics.compute_metrics(labels, probs, names)
        runs.atomic_write_json(run_dir / f"metrics_{split}.json", train._metrics_summary(result, ids))
        train.write_predictions(run_dir / f"predictions_{split}.csv", ids, labels, probs, names)
    for epoch in (1, 2):
        for phase in ("train", "val"):
            runs.append_line(run_dir / "history.jsonl", json.dumps(
                {"epoch": epoch, "phase": phase, "loss": 1.0 / epoch, "mean_auc": 0.5 + epoch / 10,
                 "auc": {"melanoma": 0.6, "seborrheic keratosis": 0.7}, "images_per_s": 10.5}))
    runs.write_status(run_dir, state="finished", message="finished: test mean AUC 0.700")
    return run_dir


def spanish_app(demo_root) -> AppTest:
    seed_demo_cache(paths.cache_dir(), demo_root)
    st.cache_data.clear()
    st.cache_resource.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    app.query_params["lang"] = "es"
    return app.run()


def test_every_page_renders_in_spanish_with_no_english_left(demo_root, finished_run):
    app = spanish_app(demo_root)
    assert app.selectbox(key="keep_lang").value == "es"
    for page in PAGES:
        app.switch_page(f"app_pages/{page}.py").run()
        assert not app.exception, (page, app.exception)
        strings = shown_strings(app)
        assert english_leftovers(strings) == [], page
        assert app.query_params["lang"] == ["es"] or app.query_params["lang"] == "es", page
    # The Results page shows its numbers with a decimal comma.
    values = [m.value for m in app.switch_page("app_pages/results.py").run().metric]
    assert any(re.fullmatch(r"0,\d{3}", v) for v in values), values


def test_the_leftover_check_sees_english_on_a_page(demo_root):
    # The same check on the English app must find the English texts, or it could never fail.
    seed_demo_cache(paths.cache_dir(), demo_root)
    st.cache_data.clear()
    st.cache_resource.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    found = english_leftovers(shown_strings(app))
    assert {"Usable images", "Recent runs", "Where to go next"} <= set(found)


def test_spanish_home_page_and_back_to_english(demo_root):
    app = spanish_app(demo_root)
    assert app.title[0].value == "Lesion Lab"
    assert {m.label for m in app.metric} >= {"Conjunto de datos", "Imágenes utilizables", "Dispositivo"}
    assert "Ejecuciones recientes" in [s.value for s in app.subheader]
    app.selectbox(key="keep_lang").set_value("en").run()
    assert {m.label for m in app.metric} >= {"Dataset", "Usable images", "Device"}
    assert app.query_params["lang"] in ("en", ["en"])


def test_catalogues_are_valid_gettext_po(tmp_path):
    import shutil
    import subprocess

    if not shutil.which("msgfmt"):
        pytest.skip("gettext's msgfmt is not installed")
    for lang in i18n.LANGUAGES:
        path = i18n.catalogue_path(lang)
        if path.is_file():
            subprocess.run(["msgfmt", "--check-format", "-o", str(tmp_path / f"{lang}.mo"), str(path)], check=True)


def test_wrap_puts_the_translator_around_plain_literals_and_imports_it(tmp_path):
    page = tmp_path / "page.py"
    page.write_text('import streamlit as st\n\nfrom app_pages import common\n\nst.title("Calibration")\n'
                    'col, _ = st.columns(2)\ncol.metric("Brier score", f"{0.1:.3f}", help="Lower is better")\n'
                    'st.caption(f"{3} bins")\n', encoding="utf-8")
    assert check.wrap_literals([page]) == 3
    text = page.read_text(encoding="utf-8")
    assert 'st.title(_("Calibration"))' in text and 'help=_("Lower is better")' in text
    assert "from app_pages.lang import _\n" in text
    assert [f.text for f in check.unwrapped([page])] == ["{} bins"]  # f-strings are left to a person
    assert [f.line for f in check.rebinds_underscore([page])] == [7]
    compile(text, str(page), "exec")
