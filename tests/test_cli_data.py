"""The data sub-commands: demo-data, check-data, import-zip (exit codes and printed report)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from lesion_core.cli import main

from test_data import make_dataset

REPO = Path(__file__).resolve().parents[1]


def test_demo_data_writes_the_dataset(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo-data", str(out), "--n-per-class", "2", "--size", "64"]) == 0
    assert "wrote 6 demo images" in capsys.readouterr().out
    assert len(list((out / "images").glob("*.jpg"))) == 6


def test_demo_data_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("mine")
    assert main(["demo-data", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_check_data_prints_the_report_and_exits_0(tmp_path, capsys):
    root = make_dataset(tmp_path / "d")
    (root / "images" / "s004.jpg").unlink()
    assert main(["check-data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "20 usable of 21 rows" in out and "s004: [missing_image]" in out
    assert "train" in out and "seborrheic keratosis" in out


def test_check_data_exits_1_without_training_samples(tmp_path, capsys):
    root = make_dataset(tmp_path / "d", labels_file="all.csv")
    lines = (root / "all.csv").read_text().splitlines()
    (root / "DBtrain.csv").write_text("id,label\nmissing,0\n")
    (root / "DBval.csv").write_text("\n".join(lines) + "\n")
    assert main(["check-data", str(root)]) == 1
    assert "missing: [missing_image]" in capsys.readouterr().out


def test_check_data_exits_2_when_nothing_is_usable(tmp_path, capsys):
    root = make_dataset(tmp_path / "d")
    for path in (root / "images").iterdir():
        path.unlink()
    assert main(["check-data", str(root)]) == 2
    assert "error: no usable samples" in capsys.readouterr().err


def test_check_data_on_a_folder_without_data(tmp_path, capsys):
    assert main(["check-data", str(tmp_path)]) == 2
    assert "no dataset found" in capsys.readouterr().err


def test_import_zip_extracts_and_checks(tmp_path, capsys):
    root = make_dataset(tmp_path / "d", n_per_class=2)
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in root.rglob("*"):
            z.write(path, "data/" + path.relative_to(root).as_posix())
    assert main(["import-zip", str(archive), str(tmp_path / "out")]) == 0
    printed = capsys.readouterr()
    assert f"dataset root: {tmp_path / 'out' / 'data'}" in printed.out and "6 usable of 6 rows" in printed.out
    # each long phase says what it does as it starts (it took a minute of silence on 300 images)
    phases = printed.err.splitlines()
    assert phases[0] == f"extracting {archive} into {tmp_path / 'out'} (every entry checked first)..."
    assert phases[1].startswith("extracted in ") and phases[2].startswith("checking ")


def test_import_zip_refuses_unsafe_archive(tmp_path, capsys):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../labels.csv", "id,label\n")
    assert main(["import-zip", str(archive), str(tmp_path / "out")]) == 2
    assert "refused entry '../labels.csv'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_python_m_lesion_core_check_data(demo_root):
    result = subprocess.run([sys.executable, "-m", "lesion_core", "check-data", str(demo_root)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "60 usable of 60 rows" in result.stdout


def test_python_m_lesion_core_demo_data(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "lesion_core", "demo-data", str(out),
                             "--n-per-class", "1", "--size", "48", "--seed", "3"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (out / "labels.csv").read_text().count("\n") == 4


def test_clear_cache_empties_the_decoded_cache_and_training_data_still_loads(demo_root, capsys):
    from lesion_core.data import LesionDataset, decoded_cache_usage, load_dataset

    records = load_dataset(demo_root).split("train")[:5]
    dataset = LesionDataset(records, max_side=48)
    first = [dataset[i]["image"] for i in range(5)]
    assert decoded_cache_usage()[0] == 5 and decoded_cache_usage()[1] > 0
    assert main(["clear-cache"]) == 0
    assert "removed 5 decoded samples" in capsys.readouterr().out
    assert decoded_cache_usage() == (0, 0)
    assert all((dataset[i]["image"] == first[i]).all() for i in range(5))  # decoded again
    assert decoded_cache_usage()[0] == 5
