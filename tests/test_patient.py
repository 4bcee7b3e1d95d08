"""Patient metadata beside the image: reading it, the prior, and a run that combines both."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lesion_core import data, inference, runs
from lesion_core.cli import main
from lesion_core.errors import DataError, TrainingError
from lesion_core.evaluation import patient
from lesion_core import training
from lesion_core.inference import prior as patient_prior
from tests.test_train import tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Age by class, as in ISIC 2017 but sharper: nevi young, melanomas older, keratoses oldest.
AGES = {0: (20, 45), 1: (45, 65), 2: (65, 90)}


def with_metadata(demo_root: Path, folder: Path, unknown_every: int = 7) -> Path:
    """A copy of the demo dataset with a metadata.csv (image_id, age_approximate, sex) whose age
    follows the class; every unknown_every-th image has age and sex "unknown"."""
    root = Path(shutil.copytree(demo_root, folder))
    rng = np.random.default_rng(0)
    with open(root / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(root / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "age_approximate", "sex"])
        for n, row in enumerate(rows):
            low, high = AGES[int(row["label"])]
            known = n % unknown_every
            writer.writerow([row["id"], int(rng.integers(low, high)) if known else "unknown",
                             ("male", "female")[n % 2] if known else "unknown"])
    return root


# ---------------------------------------------------------------- reading metadata


def test_metadata_csv_beside_the_labels_is_read_and_unknowns_left_out(demo_root, tmp_path):
    root = with_metadata(demo_root, tmp_path / "d")
    lesion = data.load_dataset(root)
    with open(root / "metadata.csv", newline="") as handle:
        table = {r["image_id"]: r for r in csv.DictReader(handle)}
    for record in lesion.records:
        raw = table[record.id]
        if raw["age_approximate"] == "unknown":
            assert record.meta == {}
        else:
            assert record.meta == {"age": raw["age_approximate"], "sex": raw["sex"]}


def test_check_data_says_how_many_images_have_metadata(demo_root, tmp_path, capsys):
    root = with_metadata(demo_root, tmp_path / "d")
    assert main(["check-data", str(root)]) == 0
    assert "patient metadata: age for 51, sex for 51 of 60 images" in capsys.readouterr().out
    assert main(["check-data", str(demo_root)]) == 0
    assert "patient metadata: none (predictions use the image alone)" in capsys.readouterr().out


@pytest.mark.parametrize("age, kept", [("55", "55"), ("55.0", "55"), ("-3", None), ("400", None), ("inf", None),
                                       ("nan", None), ("about 50", None), ("", None)])
def test_only_ages_from_0_to_120_are_kept(age, kept):
    assert data.patient_meta(age, " Female ").get("age") == kept
    assert data.patient_meta(age, " Female ")["sex"] == "female"


def test_a_metadata_csv_without_an_id_column_is_a_clear_error(demo_root, tmp_path):
    root = Path(shutil.copytree(demo_root, tmp_path / "d"))
    (root / "metadata.csv").write_text("name,age\nx,5\n")
    with pytest.raises(DataError, match=r"metadata.csv needs an id column \(id, image_id, image\); found name, age"):
        data.load_dataset(root)


def test_an_unreadable_metadata_csv_is_named(demo_root, tmp_path):
    root = Path(shutil.copytree(demo_root, tmp_path / "d"))
    (root / "metadata.csv").write_bytes(b"\xff\xfe\x00id,age\n")
    with pytest.raises(DataError, match="cannot read .*metadata.csv"):
        data.load_dataset(root)


def test_the_official_isic_2017_metadata_file_is_read(tmp_path):
    from PIL import Image

    root = tmp_path / "isic"
    (root / "ISIC-2017_Training_Data").mkdir(parents=True)
    rows = [("ISIC_0000000", "0", "0", "55", "female"), ("ISIC_0000001", "1", "0", "unknown", "male"),
            ("ISIC_0000002", "0", "1", "70", "unknown")]
    for image_id, *_ in rows:
        Image.new("RGB", (40, 30), (200, 120, 100)).save(root / "ISIC-2017_Training_Data" / f"{image_id}.jpg")
    (root / "ISIC-2017_Training_Part3_GroundTruth.csv").write_text(
        "image_id,melanoma,seborrheic_keratosis\n" + "".join(f"{r[0]},{r[1]},{r[2]}\n" for r in rows))
    (root / "ISIC-2017_Training_Data" / "ISIC-2017_Training_Data_metadata.csv").write_text(
        "image_id,age_approximate,sex\n" + "".join(f"{r[0]},{r[3]},{r[4]}\n" for r in rows))
    lesion = data.load_dataset(root, val_fraction=0.0, test_fraction=0.0)
    assert {r.id: r.meta for r in lesion.records} == {
        "ISIC_0000000": {"age": "55", "sex": "female"}, "ISIC_0000001": {"sex": "male"}, "ISIC_0000002": {"age": "70"}}


# ---------------------------------------------------------------- the prior


def synthetic(n: int, seed: int = 0):
    """(metas, labels) where age follows the class as in AGES."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    metas = [{"age": str(int(rng.integers(*AGES[int(y)]))), "sex": ("male", "female")[i % 2]}
             for i, y in enumerate(labels)]
    return metas, labels


def test_the_prior_learns_age_and_moves_probabilities_toward_the_likely_class():
    metas, labels = synthetic(300)
    model = patient.fit(metas, labels, 3)
    assert model["features"] == ["age", "age^2", "age_known", "sex=female", "sex=male"]
    assert np.allclose(model["prior"], np.bincount(labels, minlength=3) / 300)
    alone = patient_prior.patient_probs(model, metas)
    assert roc_auc_score(labels == 2, alone[:, 2]) > 0.95
    flat = np.full((3, 3), 1 / 3)
    old = patient_prior.combine(flat, model, [{"age": "80"}, {"age": "30"}, {}], weight=1.0)
    assert old[0].argmax() == 2 and old[1].argmax() == 0
    assert np.allclose(old.sum(axis=1), 1.0)
    assert np.array_equal(patient_prior.combine(flat, model, [{}] * 3, weight=0.0), flat)


def test_the_weight_is_fitted_on_val_and_zero_when_the_metadata_says_nothing():
    metas, labels = synthetic(300)
    model = patient.fit(metas, labels, 3)
    rng = np.random.default_rng(1)
    val_metas, val_labels = synthetic(200, seed=2)
    noisy = np.full((200, 3), 0.2) + 0.4 * np.eye(3)[val_labels] * (rng.random(200) < 0.5)[:, None]
    noisy /= noisy.sum(axis=1, keepdims=True)
    assert patient.fit_weight(model, noisy, val_labels, val_metas) >= 0.5
    shuffled = [val_metas[i] for i in rng.permutation(200)]  # metadata of other patients: no evidence
    assert patient.fit_weight(model, np.eye(3)[val_labels] * 0.9 + 0.1 / 3, val_labels, shuffled) == 0.0


def test_no_prior_without_enough_metadata_or_with_a_class_missing():
    metas, labels = synthetic(100)
    assert patient.fit([{}] * 60 + metas[:40], labels, 3) is None  # 40% known
    assert patient.fit(metas, np.where(labels == 2, 0, labels), 3) is None


def test_two_classes_have_a_row_per_class():
    metas, labels = synthetic(200)
    model = patient.fit(metas, (labels == 2).astype(int), 2)
    assert np.asarray(model["coef"]).shape == (2, 5) and len(model["intercept"]) == 2
    assert patient_prior.patient_probs(model, [{"age": "85"}])[0, 1] > 0.8


# ---------------------------------------------------------------- a run


@pytest.fixture(scope="module")
def meta_run(tmp_path_factory, demo_root) -> Path:
    root = with_metadata(demo_root, tmp_path_factory.mktemp("meta") / "data")
    config = tiny_config(root, epochs=1, metadata=True, data={"val_fraction": 0.3, "test_fraction": 0.3})
    return training.run_training(config, tmp_path_factory.mktemp("meta_runs"))


def read_probs(path: Path) -> tuple[list[str], np.ndarray]:
    frame = inference.read_predictions(path)
    names = frame.attrs["class_names"]
    return frame["id"].tolist(), frame[[f"prob_{n}" for n in names]].to_numpy(float)


def test_a_run_with_metadata_fits_the_prior_and_its_weight_and_says_so(meta_run):
    model = patient_prior.read(meta_run, 3)
    assert model["weight"] > 0 and model["n"] == len(runs.read_config(meta_run)["data"]["split"]["splits"]["train"])
    log = runs.log_tail(meta_run)
    assert f"weight {model['weight']:g} fitted on val" in log and "combined)" in log
    assert runs.run_info(meta_run).damage == []
    frame = inference.read_predictions(meta_run / "predictions_test.csv")
    assert {"age", "sex"} <= set(frame.columns)  # the metadata travels with the predictions


def test_evaluate_and_predict_reproduce_the_combined_predictions(meta_run):
    ids, saved = read_probs(meta_run / "predictions_test.csv")
    result = inference.evaluate_run(meta_run, "test", calibrated=False)
    order = [result["ids"].index(i) for i in ids]
    assert np.allclose(result["raw_probs"][order], saved, atol=2e-6)
    frame = inference.read_predictions(meta_run / "predictions_test.csv")
    row = frame.iloc[0]
    image = data.read_image(Path(runs.read_config(meta_run)["data"]["root"]) / "images" / f"{row['id']}.jpg")
    meta = {k: str(row[k]) for k in ("age", "sex") if str(row[k]) not in ("", "nan")}
    one = inference.predict_image(meta_run, image, calibrated=False, meta=meta)
    # the loader reads the decoded cache (resized), predict_image the file: close, not equal
    assert np.allclose(list(one.values()), saved[0], atol=2e-3)
    unknown = inference.predict_image(meta_run, image, calibrated=False)
    model = patient_prior.read(meta_run)
    shift = np.log(patient_prior.patient_probs(model, [meta, {}]))
    added = np.log(list(one.values())) - np.log(list(unknown.values()))  # what the metadata added, per class
    expected = model["weight"] * (shift[0] - shift[1])
    assert np.allclose(added - added.mean(), expected - expected.mean(), atol=1e-6)


def test_the_patients_age_changes_a_prediction(meta_run):
    image = data.read_image(next((Path(runs.read_config(meta_run)["data"]["root"]) / "images").glob("*.jpg")))
    young = inference.predict_image(meta_run, image, meta={"age": "25"})
    old = inference.predict_image(meta_run, image, meta={"age": "85"})
    assert old["seborrheic keratosis"] > young["seborrheic keratosis"]
    assert young["nevus"] > old["nevus"]


def test_predict_on_the_command_line_takes_the_patients_age(meta_run, capsys):
    image = next((Path(runs.read_config(meta_run)["data"]["root"]) / "images").glob("*.jpg"))
    assert main(["predict", str(meta_run), str(image), "--age", "85", "--sex", "female"]) == 0
    old = json.loads(capsys.readouterr().out)["probabilities"]
    assert main(["predict", str(meta_run), str(image), "--age", "25"]) == 0
    young = json.loads(capsys.readouterr().out)["probabilities"]
    assert old["seborrheic keratosis"] > young["seborrheic keratosis"]
    assert main(["predict", str(meta_run), str(image), "--age", "old"]) == 2
    assert "--age 'old' is not an age in years from 0 to 120" in capsys.readouterr().err


def test_without_metadata_in_the_data_the_run_uses_the_image_alone(demo_root, tmp_path):
    run_dir = training.run_training(tiny_config(demo_root, epochs=1, metadata=True), tmp_path)
    assert not (run_dir / patient_prior.FILE).exists()
    assert "0% of the training images have an age or a sex (at least 50% needed): the image alone" in runs.log_tail(run_dir)


@pytest.mark.parametrize("content, expected", [
    ("{ bad", "patient_model.json: not valid JSON"),
    ('{"features": ["age"], "coef": [], "intercept": [], "prior": [1], "weight": 9}',
     "patient_model.json: coef, features, intercept, prior, weight missing or invalid"),
    ('{"features": ["age", "age^2", "age_known"], "coef": [[0, 0, NaN], [0, 0, 0], [0, 0, 0]], '
     '"intercept": [0, 0, 0], "prior": [0.5, 0.25, 0.25], "weight": 1}', "patient_model.json: coef missing or invalid"),
])
def test_a_damaged_patient_model_is_named_and_refused(meta_run, tmp_path, content, expected):
    run_dir = Path(shutil.copytree(meta_run, tmp_path / meta_run.name))
    (run_dir / patient_prior.FILE).write_text(content)
    assert any(p.startswith(expected) for p in runs.run_info(run_dir).damage)
    image = data.read_image(next((Path(runs.read_config(run_dir)["data"]["root"]) / "images").glob("*.jpg")))
    with pytest.raises(TrainingError, match=expected.replace("(", r"\(")):
        inference.predict_image(run_dir, image)
    with pytest.raises(TrainingError, match="patient_model.json"):
        inference.evaluate_run(run_dir, "test")
