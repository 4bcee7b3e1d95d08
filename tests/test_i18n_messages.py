"""Structured messages: lesion_core's errors and status messages keep their msgid and values, and
a Spanish page translates them by id (Babel's catalogue, plural forms and number notation)."""

from __future__ import annotations

import json
import os
import multiprocessing
import pickle
import shutil
import subprocess

import pytest
import torch

from lesion_core import i18n, paths, runs, training
from lesion_core.errors import DataError, TrainingError
from lesion_core.i18n import check
from streamlit.testing.v1 import AppTest

from tests.e2e_helpers import REPO, seed_demo_cache
from tests.test_i18n import _page_in_spanish, failed_run, msgfmt_check

PO = '''msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"
"Language: es\\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\\n"

msgid "Home"
msgstr "Inicio"

#, fuzzy
msgid "Guessed"
msgstr "Adivinado"

#~ msgid "Gone"
#~ msgstr "Ido"

msgid "{n} apple"
msgid_plural "{n} apples"
msgstr[0] "{n} manzana"
msgstr[1] "{n} manzanas"

msgid "{n} pear"
msgid_plural "{n} pears"
msgstr[0] "{n} pera"
msgstr[1] ""
'''


@pytest.fixture
def own_catalogue(tmp_path, monkeypatch):
    """lesion_core.i18n reading the catalogue PO from tmp_path instead of its own."""
    (tmp_path / "es.po").write_text(PO, encoding="utf-8")
    monkeypatch.setattr(i18n, "FOLDER", tmp_path)
    i18n.forget()
    yield tmp_path
    monkeypatch.undo()
    i18n.forget()


def test_fuzzy_and_obsolete_entries_are_not_translations(own_catalogue):
    assert i18n.translate("Home", "es") == "Inicio"
    assert i18n.translate("Guessed", "es") == "Guessed"  # a fuzzy entry awaits review: English shows
    assert i18n.translate("Gone", "es") == "Gone"
    assert i18n.localize(i18n.N_("Guessed"), "es") == "Guessed"
    assert set(i18n.catalogue("es")) == {"Home"}
    page = own_catalogue / "page.py"
    page.write_text('_("Home")\n_("Guessed")\nngettext("{n} apple", "{n} apples", 2)\nngettext("{n} pear", "{n} pears", 2)\n')
    # the checker counts the fuzzy entry and the plural with an empty form as missing
    assert [f.text for f in check.missing("es", [page])] == ["Guessed", "{n} pear"]


def test_a_plural_picks_the_form_of_the_language_rule(own_catalogue):
    for n, spanish in ((1, "1 manzana"), (2, "2 manzanas"), (0, "0 manzanas")):
        message = i18n.N_n("{n} apple", "{n} apples", n).format(n=n)
        assert message == f"{n} apple{'' if n == 1 else 's'}"  # the CLI's English
        assert i18n.localize(message, "es") == spanish
        assert i18n.translate_plural("{n} apple", "{n} apples", n, "es", n=n) == spanish
    # a plural with a form left empty is no translation: English, in the English form
    assert i18n.localize(i18n.N_n("{n} pear", "{n} pears", 2).format(n=2), "es") == "2 pears"


def test_a_damaged_history_is_counted_with_the_spanish_plural(tmp_path):
    for bad, spanish in ((1, "history.jsonl: 1 línea ilegible omitida"), (2, "history.jsonl: 2 líneas ilegibles omitidas")):
        run_dir = tmp_path / f"run{bad}"
        run_dir.mkdir()
        (run_dir / "history.jsonl").write_text('{"epoch": 1, "phase": "train"}\n' + "not json\n" * bad)
        found = [p for p in runs.run_problems(run_dir) if p.startswith("history.jsonl")]
        assert found == [f"history.jsonl: {bad} unreadable line{'s' if bad > 1 else ''} skipped"]
        assert i18n.localize(found[0], "es") == spanish


def test_numbers_are_written_in_the_language_s_notation():
    assert i18n.number(0.5, 1, "es") == "0,5"
    assert i18n.number(1234.5, 1, "es") == "1.234,5"
    assert i18n.number(1234.5, 1, "en") == "1,234.5"
    assert i18n.number(0.456, 1, "es", percent=True) == "45,6%"
    # a count that lesion_core grouped in English ("7,470 lesions") reads 7.470 in Spanish, not 7,47
    line = i18n.N_("split by {column}: {n} {many}, no {one} in two splits").format(
        column="lesion_id", n=f"{7470:,}", many=i18n.N_("lesions"), one=i18n.N_("lesion"))
    assert line == "split by lesion_id: 7,470 lesions, no lesion in two splits"
    assert "7.470" in i18n.localize(line, "es") and "7,470" not in i18n.localize(line, "es")
    # a number among a message's values, with the message's own format spec
    message = i18n.N_("{name} (AUC {value})").format(name="melanoma", value=0.8734)
    assert i18n.localize(message, "es") == "melanoma (AUC 0,8734)"
    loss = TrainingError(i18n.N_("{error}: training diverged. Lower the learning rate (it was {lr}) and start a "
                                 "new run; best weights so far are kept").format(error="loss is nan", lr=0.0003))
    assert "(it was 0.0003)" in str(loss)  # the CLI's English
    assert "(era 0,0003)" in i18n.localize(loss, "es")


def test_an_error_s_message_keeps_its_msgid_and_nested_values():
    inner = DataError(i18n.N_("dataset folder not found: {root}").format(root="/data/lesions per class"))
    outer = i18n.N_("the link's {key} setting was ignored: {error}").format(key="pipeline", error=inner)
    assert outer == "the link's pipeline setting was ignored: dataset folder not found: /data/lesions per class"
    assert str(DataError(outer)) == outer and isinstance(str(DataError(outer)), i18n.Message)
    # the folder's name stays as it is, though "{name} per class" is a message of the catalogue
    assert i18n.localize(DataError(outer), "es") == (
        "se ignoró el ajuste secuencia del enlace: no se encuentra la carpeta del conjunto de datos: "
        "/data/lesions per class")
    # English text that lost its message is never matched back: shown as it is
    assert i18n.localize(str.__str__(outer), "es") == str.__str__(outer)


def _roundtrip(value):
    return value


def _rendered_in_child(message):
    return i18n.localize(message, "es"), message.msgid


class _Messages(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return i18n.N_("epoch {epoch} done").format(epoch=index + 1)


def test_messages_survive_pickling_processes_and_data_loader_workers():
    inner = i18n.N_("dataset folder not found: {root}").format(root="/x")
    error = TrainingError(i18n.N_("{error}: training diverged. Lower the learning rate (it was {lr}) and start a "
                                  "new run; best weights so far are kept").format(error=DataError(inner), lr=0.1))
    copied = pickle.loads(pickle.dumps(error))
    assert i18n.localize(copied, "es") == i18n.localize(error, "es") != str(error)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        back = pool.apply(_roundtrip, (error,))
        spanish, msgid = pool.apply(_rendered_in_child, (inner,))
    assert isinstance(back.args[0], i18n.Message) and back.args[0].params["lr"] == 0.1
    assert i18n.localize(back, "es") == i18n.localize(error, "es")
    assert (spanish, msgid) == ("no se encuentra la carpeta del conjunto de datos: /x", "dataset folder not found: {root}")
    loader = torch.utils.data.DataLoader(_Messages(), batch_size=2, num_workers=1,
                                         multiprocessing_context="spawn")
    [batch] = list(loader)
    assert [i18n.localize(m, "es") for m in batch] == [i18n.translate("epoch {epoch} done", "es", epoch=n) for n in (1, 2)]
    assert all(isinstance(m, i18n.Message) for m in batch)


def test_a_message_goes_to_json_and_back_and_hostile_trees_are_refused():
    import numpy as np

    inner = i18n.N_("epoch {epoch} done").format(epoch=np.int64(3))
    message = i18n.N_("{error}: training diverged. Lower the learning rate (it was {lr}) and start a new run; "
                      "best weights so far are kept").format(error=TrainingError(inner), lr=float("nan"))
    tree = json.loads(json.dumps(i18n.to_json(message), allow_nan=False))  # strict JSON: NaN as its text
    back = i18n.from_json(tree, str(message))
    assert back == message and i18n.localize(back, "es") == i18n.localize(message, "es")
    assert i18n.from_json(tree) == message  # nested: the English made again from the msgid and values
    deep = {"id": "{x}", "params": {"x": "end"}}
    for _ in range(20):
        deep = {"id": "{x}", "params": {"x": deep}}
    for hostile in (deep, {"id": 3}, {"id": "{x}", "params": {"x": [1]}}, {"id": "{x}", "params": {"not a name": 1}},
                    {"id": "{x}", "params": {f"p{i}": "v" for i in range(1000)}}, {"id": "{x}", "extra": 1},
                    {"id": "{a}", "params": {"x": 1}}, {"id": "a", "plural": "b", "n": True}, "text"):
        assert i18n.from_json(hostile) is None, hostile


def test_a_status_message_of_a_real_training_run_reads_in_spanish_after_a_reload(demo_root):
    config = {"data": {"root": str(demo_root), "max_size": 24}, "model": {"name": "lenet", "weights": "random"},
              "image_size": 32, "epochs": 1, "batch_size": 8, "augment": [], "device": "cpu"}
    run_dir = training.run_training(config, paths.runs_dir())
    stored = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    assert stored["message"].startswith("finished: best validation ")  # the CLI's and the file's English
    assert stored["message_id"] and isinstance(stored["message_params"], dict)  # and what it was made from
    message = runs.read_status(run_dir)["message"]
    assert message == stored["message"]
    spanish = i18n.localize(message.removeprefix("finished: "), "es")
    assert spanish.startswith("mejor ") and "en la época 1; AUC media de prueba " in spanish, spanish

    app = _page_in_spanish(demo_root, "train", run_dir.name)
    shown = [i.value for i in app.info] + [s.value for s in app.success] + [m.value for m in app.markdown]
    assert any(spanish in text for text in shown), shown  # the run's line; its train.log below stays English

    # damaged translation fields are only ignored: the English message stays, the run is not damaged
    for damage in ({"message_id": 3}, {"message_params": {"metric": {"id": ["x"]}}}, {"message_params": "x"}):
        runs.atomic_write_json(run_dir / "status.json", stored | damage)
        status = runs.read_status(run_dir)
        assert status["message"] == stored["message"] and not isinstance(status["message"], i18n.Message), damage
        assert "message_id" not in status and runs.run_info(run_dir).state == "finished"


def test_a_failed_run_names_its_folder_exactly_in_spanish(demo_root, tmp_path):
    # The run's data folder vanished between launch and the trainer's start. Its name holds " · ",
    # which matching the English back took for the parts of a status line: half of it stayed English.
    moved = tmp_path / "isic · 2017"
    run_dir = failed_run(demo_root, moved)

    app = _page_in_spanish(demo_root, "train", run_dir.name)
    errors = [e.value for e in app.error]
    assert (f"**fallida**: no se encuentra la carpeta del conjunto de datos: {str(moved)!r} (indica una carpeta, o "
            "'demo' para los datos de demostración incluidos)") in errors, errors


def test_a_linked_pipeline_error_shows_in_spanish_with_the_step_name_as_typed(demo_root):
    seed_demo_cache(paths.cache_dir(), demo_root)
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    # a step named like the catalogue's "{name} per class": matching English back made it "por clase"
    app.query_params.update(lang="es", pipeline=json.dumps([{"name": "Lesions per class"}]))
    app.run()
    warnings = [w.value for w in app.warning]
    prefix = ("se ignoró el ajuste secuencia del enlace: paso 1 (Lesions per class): transformación desconocida; "
              "las conocidas: CropByMask, ")
    assert any(w.startswith(prefix) for w in warnings), warnings


@pytest.mark.skipif(not shutil.which("msgfmt"), reason="gettext's msgfmt is not installed")
def test_the_catalogue_check_fails_on_a_missing_or_broken_catalogue(tmp_path):
    with pytest.raises(FileNotFoundError):
        msgfmt_check(tmp_path / "absent.po", tmp_path / "absent.mo")
    broken = tmp_path / "broken.po"
    broken.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
                      '#, python-format\nmsgid "{n} apples"\nmsgstr "manzanas"\n\nmsgid "a"\nmsgstr "b"\nmsgid "a"\n',
                      encoding="utf-8")
    with pytest.raises(subprocess.CalledProcessError):
        msgfmt_check(broken, tmp_path / "broken.mo")
    for lang in (lang for lang in i18n.LANGUAGES if lang != i18n.DEFAULT):
        msgfmt_check(i18n.catalogue_path(lang), tmp_path / f"{lang}.mo")  # the real ones pass


def test_a_checkpoint_with_class_names_that_are_messages_loads_as_plain_data(tmp_path):
    # ISIC 2020 and HAM10000 class names are marked messages; torch.load(weights_only=True)
    # refuses any str subclass, so the checkpoint writer stores their plain English text.
    import torch

    from lesion_core.i18n import N_
    from lesion_core.training.ops import save_torch

    save_torch(tmp_path / "best.pt", {"class_names": [N_("benign"), N_("melanoma")], "meta": {N_("nevus"): (1,)}})
    loaded = torch.load(tmp_path / "best.pt", weights_only=True)
    assert loaded == {"class_names": ["benign", "melanoma"], "meta": {"nevus": (1,)}}
    assert type(loaded["class_names"][0]) is str


def test_a_status_message_keeps_its_msgid_through_later_progress_writes(tmp_path):
    # The trainer writes its message once, then progress fields every batch: the message must
    # stay translatable, not fall back to its English text at the first progress update.
    from lesion_core import runs
    from lesion_core.i18n import N_, localize

    runs.write_status(tmp_path, state="running", message=N_("epoch {epoch} {phase}").format(epoch=1, phase="train"))
    runs.write_status(tmp_path, iteration=3, eta_s=40.0)
    runs.write_status(tmp_path, pid=os.getpid())
    stored = json.loads((tmp_path / "status.json").read_text())
    assert stored["message_id"] == "epoch {epoch} {phase}" and stored["message"] == "epoch 1 train"
    assert localize(runs.read_status(tmp_path)["message"], "es") != "epoch 1 train"


def test_a_non_finite_eta_in_status_json_is_left_out_of_the_progress_line(tmp_path):
    from lesion_core import runs

    for eta in ("Infinity", "NaN", "1e999"):
        (tmp_path / "status.json").write_text('{"state": "running", "epoch": 1, "epochs": 2, "eta_s": ' + eta + "}")
        fraction, line = runs.progress(runs.read_status(tmp_path))
        assert "ETA" not in line and 0 <= fraction <= 1
