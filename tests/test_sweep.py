"""Sweeps: grid expansion, tagged runs one at a time, a second start resumes."""

from __future__ import annotations

import json
import shutil

import pytest

from lesion_core import runs, sweep
from lesion_core.cli import main
from lesion_core.errors import TrainingError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def spec_for(root, repeats=1) -> dict:
    base = {"data": {"root": str(root), "val_fraction": 0.3}, "model": {"name": "lenet", "weights": "random"},
            "image_size": 32, "epochs": 1, "batch_size": 8, "augment": [], "eval_augment": [], "seed": 5}
    return {"base": base, "grid": {"optim.lr": [0.01, 0.003], "augment": [[], "eval"]}, "repeats": repeats}


def test_expand_is_the_grid_times_repeats_with_counting_seeds(demo_root):
    planned = sweep.expand(spec_for(demo_root, repeats=2))
    assert len(planned) == 8
    assert [p["config"]["seed"] for p in planned[:2]] == [5, 6]
    assert planned[2]["point"] == {"optim.lr": 0.01, "augment": "eval"}
    assert planned[5]["config"]["optim"]["lr"] == 0.003
    assert {p["config"]["sweep"]["id"] for p in planned} == {sweep.sweep_id(spec_for(demo_root, repeats=2))}
    assert sweep.sweep_id(spec_for(demo_root)) != sweep.sweep_id(spec_for(demo_root, repeats=2))


@pytest.mark.parametrize("bad, message", [
    ({"grid": {}}, "at least one setting"),
    ({"grid": {"optim.lr": 0.1}}, "non-empty list"),
    ({"grid": {"optim.lr": [0.1]}, "repeats": 0}, "repeats must be"),
    ({"grid": {"optim.nope": [1]}}, "sweep run 0"),
])
def test_bad_specs_are_refused_before_any_run(bad, message, tmp_path):
    with pytest.raises(TrainingError, match=message):
        sweep.expand(bad)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_sweep_runs_each_point_once_and_a_second_start_resumes(demo_root, tmp_path, capsys):
    spec = spec_for(demo_root)
    spec["grid"] = {"optim.lr": [0.01, 0.003]}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    out = tmp_path / "runs"
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    found = sweep.sweep_runs(out, sweep.sweep_id(spec))
    assert sorted(found) == [0, 1] and all(r.state == "finished" for r in found.values())
    assert [found[i].config["optim"]["lr"] for i in (0, 1)] == [0.01, 0.003]
    # A sweep killed before its second run: started again, it keeps the first and trains the second.
    shutil.rmtree(found[1].path)
    first = found[0].id
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert f"finished before ({first})" in log and "2 of 2 runs finished" in log
    again = sweep.sweep_runs(out, sweep.sweep_id(spec))
    assert again[0].id == first and again[1].state == "finished"
    assert len(runs.list_runs(out)) == 2


@pytest.mark.slow
def test_launch_sweep_trains_in_the_background(demo_root, tmp_path):
    import time

    spec = spec_for(demo_root)
    spec["grid"] = {"optim.lr": [0.01]}
    out = tmp_path / "runs"
    sid = sweep.launch_sweep(spec, out)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        found = sweep.sweep_runs(out, sid)
        if 0 in found and found[0].state == "finished":
            break
        time.sleep(0.2)
    assert sweep.sweep_runs(out, sid)[0].state == "finished"
    assert (out / "sweeps" / f"{sid}.json").is_file()
    assert "1 of 1 runs finished" in _wait_for_text(out / "sweeps" / f"{sid}.log", "runs finished")


def _wait_for_text(path, text, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {path} after {timeout} s")
