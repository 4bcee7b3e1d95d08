"""Reader study: scoring against independent computations (sklearn's ROC, scipy's Wilson
interval), the reads files as untrusted input, and the `readers` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from lesion_core import cli, data, runs
from lesion_core.errors import DataError
from lesion_core.evaluation import readers
from lesion_core.evaluation.readers import Read
from lesion_core import inference

NAMES = list(data.CLASS_NAMES)  # nevus, melanoma, seborrheic keratosis
MEL = NAMES.index("melanoma")


def split_predictions(n: int = 120, seed: int = 0):
    """ids, labels, and probabilities that rank melanoma better than chance but not perfectly."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), labels] += 1.2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return [f"ISIC_{i:04d}" for i in range(n)], labels, probs


def reference_sensitivity_at(is_class, scores, specificity):
    """sklearn's ROC: the best TPR among points with 1 - FPR >= specificity."""
    fpr, tpr, _ = roc_curve(is_class, scores, drop_intermediate=False)  # every threshold: a dropped
    # collinear point can be the best one under the constraint
    return tpr[(1 - fpr) >= specificity - 1e-12].max()


def reference_specificity_at(is_class, scores, sensitivity):
    fpr, tpr, _ = roc_curve(is_class, scores, drop_intermediate=False)
    return (1 - fpr[tpr >= sensitivity - 1e-12]).max()


def reference_rates(is_class, says):
    tn, fp, fn, tp = confusion_matrix(is_class, says, labels=[False, True]).ravel()
    return tp / (tp + fn), tn / (tn + fp), (tp, tp + fn), (tn, tn + fp)


def study_of(ids, diagnoses, pass_no=1) -> list[Read]:
    return [Read(i, pass_no, d) for i, d in zip(ids, diagnoses)]


def noisy_diagnoses(labels, seed=1, error=0.3):
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(labels)) < error
    return [NAMES[(y + rng.integers(1, 3)) % 3] if w else NAMES[y] for y, w in zip(labels, wrong)]


@pytest.mark.parametrize("kind", ["perfect", "always nevus", "noisy"])
def test_a_reader_is_scored_as_sklearn_and_scipy_score_them(kind):
    ids, labels, probs = split_predictions()
    diagnoses = {"perfect": [NAMES[y] for y in labels], "always nevus": ["nevus"] * len(ids),
                 "noisy": noisy_diagnoses(labels)}[kind]
    result = readers.score_study({"ana": study_of(ids, diagnoses)}, ids, labels, probs, NAMES, n_resamples=300)
    assert result["class"] == "melanoma" and result["n"] == len(ids)  # melanoma first by default
    row = result["readers"][0]
    is_class = labels == MEL
    says = np.array([d == "melanoma" for d in diagnoses])
    sens, spec, (tp, pos), (tn, neg) = reference_rates(is_class, says)
    assert row["sensitivity"]["value"] == pytest.approx(sens)
    assert row["specificity"]["value"] == pytest.approx(spec)
    for key, k, n in (("sensitivity", tp, pos), ("specificity", tn, neg)):
        wilson = binomtest(int(k), int(n)).proportion_ci(method="wilson")
        assert (row[key]["ci_low"], row[key]["ci_high"]) == pytest.approx((wilson.low, wilson.high))
    model_sens = reference_sensitivity_at(is_class, probs[:, MEL], spec)
    assert row["model_sensitivity_at_reader_specificity"]["value"] == pytest.approx(model_sens)
    assert row["model_specificity_at_reader_sensitivity"]["value"] == pytest.approx(
        reference_specificity_at(is_class, probs[:, MEL], sens))
    assert row["delta"]["value"] == pytest.approx(model_sens - sens)
    low, high = row["delta"]["ci_low"], row["delta"]["ci_high"]
    assert low <= row["delta"]["value"] <= high
    assert row["verdict"] == ("model" if low > 0 else "reader" if high < 0 else "none")
    assert result["model"]["auc"] == pytest.approx(roc_auc_score(is_class, probs[:, MEL]))
    if kind == "perfect":  # no model beats a perfect reader; this model is far from perfect
        assert (sens, spec) == (1, 1) and row["verdict"] == "reader"
    if kind == "always nevus":  # never says melanoma: specificity 1, and the model's sensitivity there
        assert (sens, spec) == (0, 1) and model_sens == reference_sensitivity_at(is_class, probs[:, MEL], 1.0)


def test_the_vectorised_roc_lookups_match_sklearn_on_every_resample():
    rng = np.random.default_rng(3)
    is_class = np.arange(60) % 4 == 0
    scores = np.round(rng.random((25, 60)), 1)  # many ties: the hard case for a threshold rule
    targets = rng.random(25)
    got_sens = readers.model_sensitivity_at(is_class, scores, targets)
    got_spec = readers.model_specificity_at(is_class, scores, targets)
    for b in range(25):
        assert got_sens[b] == pytest.approx(reference_sensitivity_at(is_class, scores[b], targets[b]))
        assert got_spec[b] == pytest.approx(reference_specificity_at(is_class, scores[b], targets[b]))


def test_the_second_pass_is_paired_with_the_first_and_readers_are_summarised():
    ids, labels, probs = split_predictions()
    first = noisy_diagnoses(labels, seed=1, error=0.4)
    second = noisy_diagnoses(labels, seed=2, error=0.2)
    study = {"ana": study_of(ids, first) + study_of(ids, second, 2), "ben": study_of(ids, noisy_diagnoses(labels, 5))}
    result = readers.score_study(study, ids, labels, probs, NAMES, n_resamples=200)
    assert [(r["reader"], r["pass"]) for r in result["readers"]] == [("ana", 1), ("ana", 2), ("ben", 1)]
    ana1, ana2 = result["readers"][:2]
    change = ana2["change"]["sensitivity"]
    assert change["value"] == pytest.approx(ana2["sensitivity"]["value"] - ana1["sensitivity"]["value"])
    assert change["ci_low"] <= change["value"] <= change["ci_high"]
    sens = [r["sensitivity"]["value"] for r in result["readers"] if r["pass"] == 1]
    assert result["summary"]["1"]["sensitivity"]["mean"] == pytest.approx(np.mean(sens))
    assert result["summary"]["1"]["sensitivity"]["sd"] == pytest.approx(np.std(sens, ddof=1))
    assert result["summary"]["2"]["sensitivity"]["n_readers"] == 1
    rows = readers.table_rows(result)
    assert rows[1]["change_sensitivity"] == pytest.approx(change["value"])
    assert readers.table_csv(result).splitlines()[0].startswith("class,reader,pass,n,sensitivity,")


def test_reads_outside_the_split_are_named_and_nothing_is_scored():
    ids, labels, probs = split_predictions(30)
    study = {"ana": study_of(ids[:3] + ["ISIC_9999", "x"], ["nevus"] * 5)}
    with pytest.raises(DataError, match=r"2 image ids are not in the test split: ISIC_9999, x"):
        readers.score_study(study, ids, labels, probs, NAMES)


# ---------------------------------------------------------------- the reads files


def test_a_reader_name_never_becomes_a_path():
    assert readers.reader_id("Dr. Ana Pérez") == "dr-ana-perez"
    assert readers.reader_id("../../etc/passwd") == "etc-passwd"
    assert readers.reader_id("李医生").startswith("reader-")
    with pytest.raises(DataError):
        readers.reader_id("  ")
    for bad in ("../x", "a/b", "Ana", ".", ""):
        with pytest.raises(DataError):
            readers.reads_path("run", bad)


def test_answers_append_resume_and_the_first_pass_closes_when_the_model_is_shown(tmp_path):
    ids = [f"ISIC_{i}" for i in range(5)]
    order = readers.reading_order(ids, "ana", 1)
    assert sorted(order) == sorted(ids) and order == readers.reading_order(ids, "ana", 1)
    assert order != readers.reading_order(ids, "ben", 1) or order != readers.reading_order(ids, "cy", 1)
    readers.append_read(tmp_path, "ana", Read(order[0], 1, "nevus", 3, "reassure", 4.2), NAMES, ids)
    readers.append_read(tmp_path, "ana", Read(order[1], 1, "melanoma"), NAMES, ids)
    readers.append_read(tmp_path, "ana", Read(order[0], 1, "Melanoma", 5, "excise"), NAMES, ids)  # back, changed
    with pytest.raises(DataError, match="not in the split"):
        readers.append_read(tmp_path, "ana", Read("ISIC_77", 1, "nevus"), NAMES, ids)
    with pytest.raises(DataError, match="not an answer Lesion Lab can store: diagnosis 'wart'"):
        readers.append_read(tmp_path, "ana", Read(order[2], 1, "wart"), NAMES, ids)
    with pytest.raises(DataError, match="no first-pass answer"):
        readers.append_read(tmp_path, "ana", Read(order[2], 2, "nevus"), NAMES, ids)
    reads, problems = readers.read_reads(readers.reads_path(tmp_path, "ana"), NAMES)
    assert problems == [] and len(reads) == 3
    first = readers.answers(reads, 1)
    assert first[order[0]].diagnosis == "melanoma" and first[order[0]].management == "excise"
    assert readers.resume_position(order, first) == 2
    assert readers.resume_position(order, set(order) - {order[0]}) == 0  # a skipped image comes back
    assert readers.resume_position(order, order) is None

    readers.append_read(tmp_path, "ana", Read(order[0], 2, "nevus"), NAMES, ids)
    with pytest.raises(DataError, match=f"first answer of ana on {order[0]} is closed"):
        readers.append_read(tmp_path, "ana", Read(order[0], 1, "nevus"), NAMES, ids)
    readers.append_read(tmp_path, "ana", Read(order[3], 1, "nevus"), NAMES, ids)  # not shown with the model yet
    assert readers.list_readers(tmp_path) == ["ana"]


def test_a_damaged_reads_file_is_read_as_far_as_it_can_be_and_named(tmp_path):
    ids = ["a", "b", "c"]
    readers.append_read(tmp_path, "ana", Read("a", 1, "nevus"), NAMES, ids)
    path = readers.reads_path(tmp_path, "ana")
    with open(path, "ab") as handle:  # a torn line, binary junk, a foreign class, a pass-1 row after pass 2
        handle.write(b"b,1,melan")
    readers.append_read(tmp_path, "ana", Read("b", 1, "melanoma"), NAMES, ids)  # starts on its own line
    with open(path, "ab") as handle:
        handle.write(b"\xff\x00garbage\nc,1,wart,,,,1\na,2,nevus,,,,2\na,1,nevus,,,,3\nc,1,nevus,,,,4\n")
    reads, problems = readers.read_reads(path, NAMES)
    assert [(r.image_id, r.pass_no) for r in reads] == [("a", 1), ("b", 1), ("a", 2), ("c", 1)]
    assert problems == ["readers/ana.csv: 3 unreadable rows skipped",
                        "readers/ana.csv: 1 first-pass answers changed after the model was shown, ignored"]
    study, found = readers.load_study(tmp_path, NAMES)
    assert list(study) == ["ana"] and found == problems
    assert [r.image_id for r in readers.load_study(tmp_path, NAMES, ids=["b"])[0]["ana"]] == ["b"]
    path.write_bytes(b"x" * (readers.MAX_FILE_BYTES + 1))
    assert readers.read_reads(path, NAMES)[0] == []


# ---------------------------------------------------------------- the command


@pytest.fixture
def scored_run(tmp_path):
    """A run folder with test predictions (all the command reads of a run)."""
    ids, labels, probs = split_predictions(60)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    runs.atomic_write_json(run_dir / "config.json", {"data": {"class_names": NAMES}})
    inference.write_predictions(run_dir / "predictions_test.csv", ids, labels, probs, NAMES)
    return run_dir, ids, labels, probs


def test_the_readers_command_scores_a_csv_as_the_engine_does(scored_run, tmp_path, capsys):
    run_dir, ids, labels, probs = scored_run
    diagnoses = noisy_diagnoses(labels)
    reads = tmp_path / "reads.csv"
    reads.write_text("id,reader,diagnosis,confidence\n" + "".join(
        f"{i},Dr Ana,{d},3\n" for i, d in zip(ids, diagnoses)) + "".join(
        f"{i},Ben,{NAMES[y]},\n" for i, y in zip(ids[:30], labels)))
    assert cli.main(["readers", str(run_dir), "--reads", str(reads), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {"split", "class", "n", "readers"} <= set(printed) and printed["class"] == "melanoma"
    assert [(r["reader"], r["pass"], r["n"]) for r in printed["readers"]] == [("ben", 1, 30), ("dr-ana", 1, 60)]
    stored = inference.read_predictions(run_dir / "predictions_test.csv")  # 6 decimals, as the page reads them
    expected = readers.score_study({"dr-ana": study_of(ids, diagnoses)}, ids, labels,
                                   stored[[f"prob_{n}" for n in NAMES]].to_numpy(), NAMES)["readers"][0]
    for key in ("sensitivity", "specificity", "model_sensitivity_at_reader_specificity", "delta"):
        assert printed["readers"][1][key] == pytest.approx(expected[key])
    assert printed["readers"][1]["verdict"] == expected["verdict"]

    assert cli.main(["readers", str(run_dir), "--reads", str(reads), "--class", "nevus"]) == 0
    assert "nevus vs rest on test (60 images" in capsys.readouterr().out


def test_the_readers_command_names_ids_outside_the_split_in_one_line(scored_run, tmp_path, capsys):
    run_dir, ids, *_ = scored_run
    reads = tmp_path / "reads.csv"
    reads.write_text("id,reader,diagnosis\n" + f"{ids[0]},ana,nevus\nISIC_9999,ana,nevus\n")
    assert cli.main(["readers", str(run_dir), "--reads", str(reads), "--json"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == "error: 1 image ids are not in the test split: ISIC_9999\n"


def test_the_readers_command_scores_the_reads_the_page_stored(scored_run, capsys):
    run_dir, ids, labels, _probs = scored_run
    for i, y in zip(ids, labels):
        readers.append_read(run_dir, "ana", Read(i, 1, NAMES[y]), NAMES, ids)
    assert cli.main(["readers", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "ana pass 1 (60 images): sensitivity 1.000" in out


def test_the_html_report_has_the_reader_study_when_reads_exist(scored_run):
    from lesion_core.evaluation import bootstrap, report

    run_dir, ids, labels, _probs = scored_run
    assert "Reader study" not in report.build_report(run_dir, with_heatmaps=False)
    for i, d in zip(ids, noisy_diagnoses(labels)):
        readers.append_read(run_dir, "ana", Read(i, 1, d), NAMES, ids)
    text = report.build_report(run_dir, with_heatmaps=False)
    assert "<h2>Reader study: melanoma against the rest, 1 reader(s)</h2>" in text
    model = readers.model_predictions(run_dir, "test")
    row = readers.score_study(readers.load_study(run_dir, NAMES)[0], *model)["readers"][0]
    assert f"<td>ana</td><td>1</td><td>60</td><td>{bootstrap.format_interval(row['sensitivity'])}</td>" in text
    assert "Readers on the model" in text  # the figure


def test_the_page_reads_in_spanish_with_no_english_left(demo_root):
    """Mid second pass, with a study on the ROC: every string on the page is Spanish."""
    from tests.test_i18n import english_leftovers, shown_strings, spanish_app
    from tests.test_readers_e2e import reader_run
    from lesion_core import paths

    run_dir, names = reader_run(demo_root, paths.runs_dir())
    ids = readers.model_predictions(run_dir, "test")[0]
    for i, image_id in enumerate(readers.reading_order(ids, "ana", 1)):
        readers.append_read(run_dir, "ana", Read(image_id, 1, names[i % 3], 4, "excise"), names, ids)
    readers.append_read(run_dir, "ana", Read(readers.reading_order(ids, "ana", 2)[0], 2, "nevus"), names, ids)
    app = spanish_app(demo_root)
    app.query_params["reader"] = "ana"
    app.switch_page("app_pages/readers.py").run()
    assert not app.exception, app.exception
    strings = shown_strings(app)
    assert "Segunda lectura, con el modelo: ana" in strings and "1 de 3 respondidas · imagen 2 de 3" in strings
    assert "ana, lectura 1" in strings and "Su primera respuesta: **" in " ".join(strings)
    assert english_leftovers(strings) == []


def test_the_page_names_another_readers_damaged_file_and_tables_every_reader(demo_root):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from lesion_core import paths
    from tests.e2e_helpers import REPO
    from tests.test_readers_e2e import reader_run

    run_dir, names = reader_run(demo_root, paths.runs_dir())
    ids = readers.model_predictions(run_dir, "test")[0]
    for reader in ("ana", "ben"):
        for image_id in ids:
            readers.append_read(run_dir, reader, Read(image_id, 1, "melanoma"), names, ids)
    with open(readers.reads_path(run_dir, "ben"), "ab") as handle:
        handle.write(b"\x00\xff not a row\n")
    st.cache_data.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    app.query_params["reader"] = "ana"
    app.run()
    app.switch_page("app_pages/readers.py").run()
    assert not app.exception, app.exception
    assert [w.value for w in app.warning] == ["readers/ben.csv: 1 unreadable row skipped"]
    assert app.success[0].value == "First pass done: 3 images read."
    table = app.dataframe[0].value
    assert list(table["reader"]) == ["ana", "ben"] and list(table["images"]) == [3, 3]
    assert list(table["sensitivity [95% CI]"].str.split(" ").str[0]) == ["1.000", "1.000"]


def test_the_figure_puts_each_reader_pass_on_the_roc_with_intervals_and_an_arrow():
    from lesion_core.evaluation import figures

    ids, labels, probs = split_predictions(60)
    study = {"ana": study_of(ids, noisy_diagnoses(labels)) + study_of(ids, [NAMES[y] for y in labels], 2)}
    result = readers.score_study(study, ids, labels, probs, NAMES, n_resamples=100)
    marks = readers.operating_marks(labels, probs, NAMES, "melanoma")
    fig = figures.reader_roc(labels == MEL, probs[:, MEL], result, marks)
    points = {t.name: t for t in fig.data}
    assert {"chance", "model", "model operating points", "ana, pass 1", "ana, pass 2"} == set(points)
    first = result["readers"][0]
    assert points["ana, pass 1"].x[0] == pytest.approx(1 - first["specificity"]["value"])
    assert points["ana, pass 1"].y[0] == pytest.approx(first["sensitivity"]["value"])
    assert points["ana, pass 1"].error_y.arrayminus[0] == pytest.approx(
        first["sensitivity"]["value"] - first["sensitivity"]["ci_low"])
    (arrow,) = fig.layout.annotations  # pass 1 -> pass 2
    assert (arrow.ax, arrow.ay, arrow.x, arrow.y) == pytest.approx((points["ana, pass 1"].x[0], points["ana, pass 1"].y[0],
                                                                    0.0, 1.0))
    assert list(points["model operating points"].x) == pytest.approx([0.18, 0.11, 0.05])
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0
