"""Spanish and English: catalogues complete, every page rendered in Spanish without English left over."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lesion_core import data, i18n, links, locks, metrics, paths, plots, runs, transforms
from lesion_core.errors import DataError, TrainingError, TransformError
from lesion_core.evaluation import compare
from lesion_core.i18n import check
from lesion_core import inference
from lesion_core import settings
from lesion_core import training
from tests.e2e_helpers import REPO, seed_demo_cache
from tests.test_export import make_run

PAGES = ["home", "dataset", "augment", "model", "train", "results", "compare", "predictions", "readers"]


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
        for singular, (plural, forms) in i18n.plurals(lang).items():
            assert all(i18n.placeholders(form) == i18n.placeholders(plural) for form in forms), (lang, singular, forms)


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


def test_a_figure_keeps_its_class_order_and_categories_in_spanish():
    from lesion_core.evaluation import figures

    names = list(data.CLASS_NAMES)
    # "Lesion focus by true class" showed an empty English "seborrheic keratosis" beside its
    # Spanish twin, and the classes out of order: the category order stayed in English.
    fig = i18n.figure(figures.focus_by_class([0.2, 0.8, 0.5], ["seborrheic keratosis", "nevus", "melanoma"],
                                             [True, False, True], names), "es")
    spanish = ["nevo", "melanoma", "queratosis seborreica"]
    assert list(fig.layout.xaxis.categoryarray) == spanish
    assert {x for trace in fig.data for x in trace.x} <= set(spanish)
    assert english_leftovers(_json_strings_of(fig)) == []


def _json_strings_of(fig) -> list:
    out: list = []
    _json_strings(json.loads(fig.to_json()), out)
    return out


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
        elif not (value.startswith("{") and value.endswith("}")):  # (a dataframe's column config: not text)
            out.append(value)
    return out


PLOTLY_TEXT = {"text", "name", "ticktext", "x", "y", "categoryarray"}  # keys whose strings a reader sees (not modes, fonts)


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


def english_leftovers(strings, lang: str = "es", data_words=()) -> list[str]:
    """Texts shown that are an English message (literally, or with its placeholders filled)
    whose translation differs, or that contain a long one (a help text in a list, an error
    inside a sentence): what a Spanish reader would see in English."""
    table = i18n.catalogue(lang)
    patterns, sentences = [], []
    for msgid, msgstr in table.items():
        if msgstr == msgid:
            continue
        fixed = re.split(r"\{\w*\}", msgid)
        patterns.append(re.compile("(?s)" + ".+?".join(re.escape(p) for p in fixed) + r"\Z"))
        if len(msgid) >= 30 and not i18n.placeholders(msgid):
            sentences.append(msgid)
    spanish = set(table.values())
    english = english_only_words(lang)
    leftovers = []
    for text in {s.strip() for s in strings if s and s.strip()}:
        if text in spanish:
            continue
        if ((text in table and table[text] != text) or any(p.match(text) for p in patterns)
                or any(sentence in text for sentence in sentences) or (_words(text) & english) - set(data_words)):
            leftovers.append(text)
    return sorted(leftovers)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _words(text: str) -> set[str]:
    """The plain words of a text, lower-cased: not placeholders, nor identifiers (a step's
    CamelCase name, a model's snake_case name, an image id), which no language translates."""
    # ... nor a placeholder, a parameter's name ("box=[0, 1, 2, 3]"), a path or a quoted value
    # of the user's own file ("the label 'benign' is not a whole number")
    text = re.sub(r"\{\w*\}|\b\w+=|\S*/\S*|'[^']*'", " ", text)
    return {w.lower() for w in _WORD.findall(text) if re.fullmatch(r"[A-Za-z][a-z]+", w)}


@functools.lru_cache
def english_only_words(lang: str = "es") -> frozenset:
    """Words of the catalogue's English side (msgids translated differently) that its other side
    never uses: any of them on a page in that language is English left over."""
    table = i18n.catalogue(lang)
    english = set().union(*(_words(msgid) for msgid, msgstr in table.items() if msgstr != msgid))
    return frozenset(english - set().union(*(_words(msgstr) for msgstr in table.values())))


def test_the_word_check_finds_one_english_word_in_a_spanish_sentence():
    assert english_leftovers(["Imágenes por clase y partición"]) == []
    assert english_leftovers(["queratosis seborreica", "seborrheic keratosis"]) == ["seborrheic keratosis"]
    assert english_leftovers(["Condición: skin muy clara"]) == ["Condición: skin muy clara"]
    assert english_leftovers(["RandomResizedCrop: box=[0, 1, 2, 3]", "efficientnet_lite0 (aleatorios)"]) == []


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
        runs.atomic_write_json(run_dir / f"metrics_{split}.json", metrics.metrics_summary(result, ids))
        inference.write_predictions(run_dir / f"predictions_{split}.csv", ids, labels, probs, names)
    for epoch in (1, 2):
        for phase in ("train", "val"):
            runs.append_line(run_dir / "history.jsonl", json.dumps(
                {"epoch": epoch, "phase": phase, "loss": 1.0 / epoch, "mean_auc": 0.5 + epoch / 10,
                 "auc": {"melanoma": 0.6, "seborrheic keratosis": 0.7}, "images_per_s": 10.5}))
    # the message as the trainer writes it: English, with its msgid and values beside it
    runs.write_status(run_dir, state="finished",
                      message=i18n.concat("finished: ", i18n.N_("test mean AUC {auc}").format(auc="0.700")))
    return run_dir


def spanish_app(demo_root) -> AppTest:
    seed_demo_cache(paths.cache_dir(), demo_root)
    st.cache_data.clear()
    st.cache_resource.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    app.query_params["lang"] = "es"
    return app.run()


def test_every_page_renders_in_spanish_with_no_english_left(demo_root, finished_run):
    from lesion_core.evaluation import robustness

    # every section drawn, those computed on request too: the run's robustness report, skin tones
    robustness.save_report(finished_run, robustness.robustness_report(finished_run, "test", n_resamples=50))
    app = spanish_app(demo_root)
    assert app.selectbox(key="keep_lang").value == "es"
    for page in PAGES:
        app.switch_page(f"app_pages/{page}.py").run()
        assert not app.exception, (page, app.exception)
        if page == "dataset":
            app.button(key="ds_skin_button").click().run()
            assert "ds_skin_chart" in [c.key for c in app.get("plotly_chart")] or app.get("plotly_chart"), page
        strings = shown_strings(app)
        if page == "results":
            assert any(text.startswith("piel muy clara") for text in strings), "the robustness section is drawn"
        assert english_leftovers(strings) == [], page
        assert decimal_points(app) == [], page
        assert app.query_params["lang"] == ["es"] or app.query_params["lang"] == "es", page
    # The Results page shows its numbers with a decimal comma.
    values = [m.value for m in app.switch_page("app_pages/results.py").run().metric]
    assert any(re.fullmatch(r"0,\d{3}", v) for v in values), values


def decimal_points(app: AppTest) -> list[str]:
    """Table columns that show fractional numbers as numbers: Streamlit writes them with a
    decimal point whatever the page's language (lang.numbers_table makes them text)."""
    found = []
    for frame in app.dataframe:
        for column in frame.value.columns:
            values = frame.value[column]
            if values.dtype.kind == "f" and any(v == v and v != int(v) for v in values):
                found.append(f"{column}: {values.tolist()[:3]}")
    return found


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


def msgfmt_check(path, out):
    """gettext's own check of a catalogue (format strings, header, plural forms), and Babel
    reading translations from it; raises when the file is missing or broken."""
    if not path.is_file():
        raise FileNotFoundError(f"no catalogue at {path}")
    subprocess.run(["msgfmt", "--check", "-o", str(out), str(path)], check=True, capture_output=True)
    if not i18n.parse_po(path.read_text(encoding="utf-8")):
        raise ValueError(f"{path} holds no translation Babel can read")


def test_catalogues_are_valid_gettext_po(tmp_path):
    if not shutil.which("msgfmt"):
        if os.environ.get("CI"):
            pytest.fail("gettext's msgfmt not found; CI must install gettext (see .ci/run)")
        pytest.skip("gettext's msgfmt is not installed")
    translated = [lang for lang in i18n.LANGUAGES if lang != "en"]  # English is the source: no catalogue
    assert translated
    for lang in translated:  # test_i18n_messages shows that a missing or broken catalogue fails here
        msgfmt_check(i18n.catalogue_path(lang), tmp_path / f"{lang}.mo")


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


# ---------------------------------------------------------------- lesion_core's texts on Spanish pages


def _page_in_spanish(demo_root, page: str, run_id: str | None = None) -> AppTest:
    app = spanish_app(demo_root)
    if run_id:
        app.query_params["run"] = run_id
    app.switch_page(f"app_pages/{page}.py").run()
    assert not app.exception, app.exception
    return app


def failed_run(demo_root, moved):
    """A real failure: the run's data folder (moved, a link to the demo) vanished between launch
    and the trainer's start; the run's folder."""
    moved.symlink_to(demo_root, target_is_directory=True)
    config = settings.validate_config({"data": {"root": str(moved)}, "model": {"name": "lenet", "weights": "random"},
                                    "image_size": 32, "device": "cpu"})
    run_dir = runs.create_run(paths.runs_dir(), config)
    moved.unlink()
    with pytest.raises(TrainingError):
        training.run_training(run_dir=run_dir)
    return run_dir


def test_a_failed_run_says_why_in_spanish(demo_root, tmp_path):
    run_dir = failed_run(demo_root, tmp_path / "data")
    assert runs.read_status(run_dir)["message"].startswith("dataset folder not found: ")  # the CLI's English

    app = _page_in_spanish(demo_root, "train", run_dir.name)
    errors = [e.value for e in app.error]
    assert any(text.startswith("**fallida**: no se encuentra la carpeta del conjunto de datos:") for text in errors), errors
    assert english_leftovers(shown_strings(app)) == []


def test_a_running_run_shows_its_progress_in_spanish(demo_root, finished_run):
    # status.json as the trainer writes it mid-epoch; this test's own process stands in for the trainer.
    runs.write_status(finished_run, state="running", pid=os.getpid(), pid_start=locks.process_start(os.getpid()),
                      message="epoch 1 train", epochs=4, epoch=1, phase="train", iteration=3, n_iters=10,
                      images_per_s=12.5, eta_s=42)
    english = runs.progress(runs.read_status(finished_run))[1]
    assert english == "epoch 1/4 · train batch 3/10 · 12.5 images/s · ETA 0:32–1:02"  # what the CLI and bars say

    with locks.run(finished_run):  # held as the trainer holds it
        app = _page_in_spanish(demo_root, "train", finished_run.name)
    texts = shown_strings(app)
    assert "época 1/4 · entrenamiento: lote 3/10 · 12,5 imágenes/s · tiempo restante 0:32–1:02" in texts
    assert "**en curso**" in [i.value for i in app.info]  # the bar's line says the rest, once
    assert english_leftovers(texts) == []


def test_augmentation_help_texts_are_in_spanish(demo_root):
    app = _page_in_spanish(demo_root, "augment")
    texts = shown_strings(app)
    flip = transforms.REGISTRY["RandomHorizontalFlip"]
    assert i18n.translate(flip.help, "es") in "\n".join(texts)  # the step's own help and the "Step to add" list
    assert i18n.translate(flip.params[0].help, "es") in texts  # its parameter's help
    assert english_leftovers(texts) == []


def test_compare_without_a_verdict_says_why_in_spanish(demo_root, finished_run):
    # Run B was scored on other images than run A: no paired verdict, and a reason.
    other = make_run(demo_root, paths.runs_dir(), "lenet", 64, seed=1)
    names = list(data.CLASS_NAMES)
    ids = [r.id for r in data.load_dataset(demo_root).split("val")][:10]
    probs = np.random.default_rng(1).dirichlet([1, 1, 1], size=len(ids))
    inference.write_predictions(other / "predictions_test.csv", ids, np.arange(len(ids)) % 3, probs, names)
    runs.write_status(other, state="finished", message="finished: test mean AUC 0.600")

    app = spanish_app(demo_root)
    app.session_state["keep_cmp_runs"] = [finished_run.name, other.name]
    app.switch_page("app_pages/compare.py").run()
    assert not app.exception, app.exception
    verdict = [i.value for i in app.info if i.value.startswith("Veredicto")]
    assert verdict and re.match(r"Veredicto \(AUC media\): Sin veredicto: las ejecuciones se puntuaron con "
                                r"imágenes de prueba distintas \(\d+ y \d+, 0 en común\)", verdict[0]), verdict
    table = app.dataframe[-1].value
    assert list(table.columns) == ["métrica", "A", "B", "B - A [IC 95%]"]
    assert re.fullmatch(r"\d,\d{3}", table["A"].iloc[0]), table  # a decimal comma, not 0.611
    assert english_leftovers(shown_strings(app)) == []


def test_run_tables_write_decimal_commas_in_spanish(demo_root, finished_run):
    app = _page_in_spanish(demo_root, "results")
    runs_table = app.dataframe[0].value
    best_val = i18n.translate("best val", "es")
    assert runs_table[best_val].tolist() == ["0,700"]  # text with a decimal comma: Streamlit's formats know only "."
    assert runs_table[i18n.translate("model", "es")].tolist() == ["lenet (aleatorios)"]  # the weight source too


def test_lesion_core_messages_are_translated_by_their_msgid_with_their_values():
    from lesion_core.training.loop import StopRequested

    es = functools.partial(i18n.localize, lang="es")
    # The message the runner writes when a run is stopped, with the stop's own message nested in it.
    where = StopRequested(i18n.N_("epoch {epoch} {phase}, batch {iteration}/{n_iters}").format(
        epoch=2, phase="train", iteration=3, n_iters=10))
    saved = i18n.N_("best and last weights saved (last.pt: epoch {epoch})").format(epoch=1)
    message = i18n.N_("stopped during {where}; {saved}; continue with Resume on the Train page or {command}").format(
        where=where, saved=saved, command="train --resume runs/r")
    assert message == ("stopped during epoch 2 train, batch 3/10; best and last weights saved (last.pt: epoch 1); "
                       "continue with Resume on the Train page or train --resume runs/r")  # the CLI's English
    assert es(message) == (
        "detenida durante época 2, entrenamiento, lote 3/10; mejores y últimos pesos guardados (last.pt: época 1); "
        "continúa con Reanudar en la página Entrenar o con train --resume runs/r")
    assert es("0.859 [0.799, 0.909]") == "0,859 [0,799; 0,909]"  # decimal commas part the bounds with ";"
    assert es("+0.031 [-0.012, +0.078]") == "+0,031 [-0,012; +0,078]"
    assert es("not a message at all") == "not a message at all"
    # English text that is not a message is never matched back against the catalogue's messages
    assert es(str.__str__(message)) == str.__str__(message)
    # the CLI's text is the msgid itself
    assert compare.verdict_text({"same_images": False, "reason": "a run has no test images"}) == \
        "No verdict: a run has no test images"


def _broken_copy(demo_root, root):
    """The demo dataset copied to root with real faults: a mask of the wrong size, an empty
    mask, a missing image and a label that is not a number."""
    import shutil

    from PIL import Image

    shutil.copytree(demo_root / "images", root / "images")
    shutil.copytree(demo_root / "masks", root / "masks")
    rows = (demo_root / "labels.csv").read_text().splitlines()
    ids = [r.split(",")[0] for r in rows[1:]]
    Image.new("L", (10, 7), 255).save(root / "masks" / f"{ids[0]}.png")
    Image.new("L", Image.open(root / "images" / f"{ids[1]}.jpg").size, 0).save(root / "masks" / f"{ids[1]}.png")
    (root / "images" / f"{ids[2]}.jpg").unlink()
    rows[4] = f"{ids[3]},benign"
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return ids


def test_the_dataset_report_lists_its_problems_in_spanish(demo_root, tmp_path):
    root = tmp_path / "broken"
    ids = _broken_copy(demo_root, root)
    english = {p.id: p.message for p in data.load_dataset(root).report.problems}
    assert english[ids[0]] == "mask is 10x7 but the image is 96x96"  # what check-data prints

    app = spanish_app(demo_root)
    app.session_state["dataset"] = {"source": "folder", "root": str(root)}
    app.switch_page("app_pages/dataset.py").run()
    assert not app.exception, app.exception
    message = i18n.translate("message", "es")
    table = next(f.value for f in app.dataframe if message in f.value.columns)
    shown = dict(zip(table[i18n.translate("id", "es")], table[message]))
    assert shown[ids[0]] == "la máscara mide 10x7 pero la imagen mide 96x96"
    assert len(shown) == 4 and english_leftovers(list(shown.values())) == [], shown
    assert english_leftovers(shown_strings(app)) == []


def test_a_dataset_that_cannot_be_used_says_why_in_spanish(demo_root, tmp_path):
    root = tmp_path / "bad_header"
    root.mkdir()
    (root / "labels.csv").write_text("image,diagnosis\nISIC_0000000,0\n")
    app = spanish_app(demo_root)
    app.session_state["dataset"] = {"source": "folder", "root": str(root)}
    app.switch_page("app_pages/dataset.py").run()
    assert not app.exception, app.exception
    errors = [e.value for e in app.error]
    assert any("labels.csv necesita una cabecera con las columnas id, label; encontradas image, diagnosis" in e
               for e in errors), errors
    assert english_leftovers(shown_strings(app), data_words={"label", "image", "diagnosis"}) == []  # column names


def test_an_unusable_dataset_error_is_translated_line_by_line_with_its_report(tmp_path):
    root = tmp_path / "nothing_usable"
    (root / "images").mkdir(parents=True)
    (root / "labels.csv").write_text("id,label\na,0\nb,7\n")
    with pytest.raises(DataError) as caught:
        data.load_dataset(root)
    english = str(caught.value)
    assert english.splitlines()[0] == f"no usable samples in {root}:"  # the CLI's text
    spanish = i18n.localize(caught.value, "es").splitlines()  # the error's message, line by line
    assert spanish[0] == f"no hay muestras utilizables en {root}:"
    assert spanish[1] == "0 utilizables de 2 filas; 2 excluidas, 4 notas"
    assert "  a: [missing_image] no se encuentra la imagen: a.jpg" in spanish
    assert "  b: [label_out_of_range] la etiqueta 7 está fuera de 0..2" in spanish


def test_a_broken_link_is_named_in_spanish(demo_root):
    seed_demo_cache(paths.cache_dir(), demo_root)
    st.cache_data.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    app.query_params.update(lang="es", model='{"name": "resnet9000"}', run="../escape")
    app.run()
    warnings = [w.value for w in app.warning]
    assert any(w.startswith("se ignoró el ajuste modelo del enlace: modelo desconocido") for w in warnings), warnings
    assert "se ignoró el ajuste ejecución del enlace: no es un identificador de ejecución" in warnings
    assert english_leftovers(warnings) == []


def test_a_bad_pipeline_is_explained_in_spanish_on_the_augmentations_page(demo_root):
    # A spec whose crop size is out of range, as an edited or linked pipeline can be.
    bad = [{"name": "CenterCrop", "params": {"size": 0}}]
    with pytest.raises(TransformError) as caught:
        transforms.validate_spec(bad)
    assert str(caught.value) == "step 1 (CenterCrop): parameter 'size' must be between 1 and 10000; got 0"  # the CLI's

    app = spanish_app(demo_root)
    app.session_state["pipeline"] = bad
    app.switch_page("app_pages/augment.py").run()
    assert not app.exception, app.exception
    errors = [e.value for e in app.error]
    # the parameter as its box is labelled on the page ("size" -> "tamaño")
    assert "paso 1 (CenterCrop): el parámetro 'tamaño' debe estar entre 1 y 10000; se recibió 0" in errors, errors
    assert english_leftovers(shown_strings(app)) == []


@pytest.mark.parametrize("spec, spanish", [
    ("not a list", "una secuencia es una lista de pasos; se recibió str"),
    ([["CenterCrop"]], "paso 1: se esperaba {\"name\": ..., \"params\": {...}}; se recibió ['CenterCrop']"),
    ([{"name": "CenterCrop", "size": 3}], "paso 1 (CenterCrop): claves inesperadas ['size']; un paso solo tiene name y params"),
    ([{"name": "CenterCrop", "params": [3]}], "paso 1 (CenterCrop): params debe ser un objeto; se recibió [3]"),
    ([{"name": "ToTensor", "params": {"gamma": 3}}],
     "paso 1 (ToTensor): parámetro desconocido 'gamma'; este paso no tiene parámetros"),
    ([{"name": "RandomHorizontalFlip", "params": {"p": "half"}}],
     "paso 1 (RandomHorizontalFlip): el parámetro 'p' debe ser un número; se recibió 'half'"),
    # the step's message as a whole: "{low} ({low_value}) is larger..." alone would take "step 1 (...): min_size" as {low}
    ([{"name": "RandomCenterCrop", "params": {"min_size": 300, "max_size": 200}}],
     "paso 1 (RandomCenterCrop): min_size (300) es mayor que max_size (200)"),
    ([{"name": "ToTensor"}, {"name": "CenterCrop"}],
     "el paso 2 (CenterCrop) va después de ToTensor; mueve ToTensor (y Normalize) al final"),
    ([{"name": "ToTensor"}, {"name": "ToTensor"}], "la secuencia tiene ToTensor más de una vez; deja solo uno"),
    ([{"name": "Normalize"}], "el paso 1 (Normalize) necesita un ToTensor antes; añade un paso ToTensor"),
])
def test_pipeline_errors_read_in_spanish(spec, spanish):
    with pytest.raises(TransformError) as caught:
        transforms.validate_spec(spec)
    assert i18n.localize(caught.value, "es") == spanish


def test_a_linked_pipeline_that_was_ignored_says_why_in_spanish():
    _choices, problems = links.decode({"pipeline": json.dumps([{"name": "ToTensor"}, {"name": "ToTensor"}])})
    assert problems == ["the link's pipeline setting was ignored: the pipeline has ToTensor more than once; keep one"]
    assert i18n.localize(problems[0], "es") == (
        "se ignoró el ajuste secuencia del enlace: la secuencia tiene ToTensor más de una vez; deja solo uno")


def test_the_learning_rate_schedule_has_one_spanish_name():
    # "Programa de la tasa" in the form and "planificación coseno" in the run's summary named
    # the same setting two ways.
    table = i18n.catalogue("es")
    named = {msgid: msgstr for msgid, msgstr in table.items() if re.search(r"\b[Ss]chedul(er|e)\b", msgid)}
    assert named, "the catalogue names the scheduler"
    for msgid, msgstr in named.items():
        assert "rograma de la tasa" in msgstr and "planificaci" not in msgstr, (msgid, msgstr)
