"""Run folder format: atomic writes, tolerant readers, listing, liveness, stop requests."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lesion_core import locks, metrics, runs

REPO = Path(__file__).resolve().parents[1]


def _config(model="lenet"):
    return {"model": {"name": model}, "epochs": 2}


def test_atomic_write_json_replaces_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "status.json"
    runs.atomic_write_json(path, {"a": 1})
    runs.atomic_write_json(path, {"a": 2, "nan": math.nan, "arr": np.arange(3)})
    assert json.loads(path.read_text()) == {"a": 2, "nan": None, "arr": [0, 1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_umask_mode_not_mkstemps_owner_only(tmp_path, umask, mode):
    old = os.umask(umask)  # this test's own process; the product never sets the umask
    try:
        runs.atomic_write_text(tmp_path / "train.log", "x\n")
        runs.append_line(tmp_path / "history.jsonl", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "train.log").stat().st_mode & 0o777 == mode
    assert (tmp_path / "history.jsonl").stat().st_mode & 0o777 == mode


def test_the_engine_never_sets_the_process_umask():
    """os.umask can only be read by setting it, process-wide: in a multithreaded server another
    thread's file would get the temporary value."""
    found = [str(path) for path in (REPO / "lesion_core").rglob("*.py") if "os.umask(" in path.read_text()]
    assert found == []


def test_append_line_from_two_processes_at_once_loses_no_line(tmp_path):
    """Lines are appended (O_APPEND), not the file rewritten: two writers interleave whole lines."""
    target = tmp_path / "train.log"
    script = ("import sys\nfrom lesion_core import runs\n"
              "for i in range(300):\n    runs.append_line(sys.argv[1], f'{sys.argv[2]} {i}')\n")
    writers = [subprocess.Popen([sys.executable, "-c", script, str(target), name]) for name in ("a", "b")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    lines = target.read_text().splitlines()
    assert sorted(lines) == sorted(f"{name} {i}" for name in "ab" for i in range(300))


def test_append_line_ends_a_cut_short_last_line_first(tmp_path):
    target = tmp_path / "train.log"
    target.write_text("first\nsecond, cut sh")
    runs.append_line(target, "third")
    assert target.read_text() == "first\nsecond, cut sh\nthird\n"


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "config.json"
    runs.atomic_write_json(path, {"ok": True})
    try:
        runs.atomic_write_json(path, {"bad": object()})
    except TypeError:
        pass
    else:
        raise AssertionError("an unserialisable object must raise")
    assert json.loads(path.read_text()) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_create_run_writes_config_and_queued_status(tmp_path):
    run_dir = runs.create_run(tmp_path / "runs", _config("efficientnet_lite0"))
    assert run_dir.parent == tmp_path / "runs"
    assert "-efficientnet_lite0-" in run_dir.name
    assert runs.read_config(run_dir) == _config("efficientnet_lite0")
    assert runs.read_status(run_dir)["state"] == "queued"


def test_run_ids_are_unique_and_sortable(tmp_path):
    ids = [runs.create_run(tmp_path, _config()).name for _ in range(5)]
    assert len(set(ids)) == 5
    # the timestamp leads (so names sort by start time), then the model, then a random suffix
    assert all(re.fullmatch(r"\d{8}-\d{6}-lenet-[0-9a-f]{4}", i) for i in ids)


def test_read_history_skips_a_cut_short_last_line(tmp_path):
    runs.append_line(tmp_path / "history.jsonl", json.dumps({"epoch": 1, "phase": "train"}))
    runs.append_line(tmp_path / "history.jsonl", json.dumps({"epoch": 1, "phase": "val"}))
    with open(tmp_path / "history.jsonl", "a") as handle:
        handle.write('{"epoch": 2, "pha')
    assert runs.read_history(tmp_path) == [{"epoch": 1, "phase": "train"}, {"epoch": 1, "phase": "val"}]


def test_readers_of_a_missing_or_garbled_folder_return_empty(tmp_path):
    (tmp_path / "status.json").write_text("{not json")
    assert runs.read_status(tmp_path) == {}
    assert runs.read_config(tmp_path / "missing") == {}
    assert runs.read_history(tmp_path) == []


def test_a_garbled_run_folder_does_not_break_the_listing(tmp_path):
    """list_runs feeds the sidebar of every page: one damaged folder must not break them all."""
    run_dir = runs.create_run(tmp_path, _config())
    (run_dir / "history.jsonl").write_bytes(b'\xff\xfe binary\n1\n[2]\n{"epoch": 1, "phase": "val", "loss": 0.5}\n')
    (run_dir / "status.json").write_text("null")
    assert runs.read_history(run_dir) == [{"epoch": 1, "phase": "val", "loss": 0.5}]
    assert runs.read_status(run_dir) == {}
    (run_dir / "config.json").write_text("[1, 2]")
    assert runs.read_config(run_dir) == {}
    (listed,) = runs.list_runs(tmp_path)
    assert listed.best == {"metric": "val_loss", "value": 0.5, "epoch": 1}


def test_dead_pid_shows_as_interrupted_and_inactive(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run_dir = runs.create_run(tmp_path, _config())
    runs.write_status(run_dir, state="running", pid=proc.pid)
    assert runs.run_info(run_dir).state == "interrupted"
    assert not runs.is_active(run_dir)
    assert runs.active_run(tmp_path) is None


def test_zombie_process_counts_as_dead(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        # the child exits but stays a zombie until proc.wait() reaps it
        while locks.pid_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not locks.pid_alive(proc.pid)
    finally:
        proc.wait()


def test_a_reused_pid_is_not_taken_for_the_trainer(tmp_path):
    """After a reboot or container restart another process (even a thread of the new
    server) may hold the dead trainer's pid: its start time tells them apart."""
    run_dir = runs.create_run(tmp_path, _config())
    runs.write_status(run_dir, state="running", pid=os.getpid())
    status = runs.read_status(run_dir)
    assert status["pid_start"] == locks.process_start(os.getpid()) is not None
    with locks.run(run_dir):  # this test stands in for the trainer, which holds the run's lock
        assert runs.run_info(run_dir).state == "running"
        runs.atomic_write_json(run_dir / "status.json", dict(status, pid_start="1"))  # an older process's
        assert runs.run_info(run_dir).state == "interrupted"
        assert runs.active_run(tmp_path) is None


def test_live_pid_is_the_active_run(tmp_path):
    run_dir = runs.create_run(tmp_path, _config())
    runs.write_status(run_dir, state="running", pid=os.getpid())
    with locks.run(run_dir):  # this test stands in for the trainer, which holds the run's lock
        assert runs.is_active(run_dir)
        assert runs.active_run(tmp_path).path == run_dir
        runs.write_status(run_dir, state="finished")
        assert runs.active_run(tmp_path) is None
    runs.write_status(run_dir, state="running")
    assert not runs.is_active(run_dir)  # a live pid alone, with nobody holding the lock, is no trainer


def test_list_runs_newest_first_with_best_from_history(tmp_path):
    first = runs.create_run(tmp_path, _config())
    second = runs.create_run(tmp_path, _config("resnet18"))
    os.rename(first, tmp_path / ("00000000-000000-" + first.name.split("-", 2)[2]))
    for epoch, auc in ((1, 0.6), (2, 0.8), (3, 0.7)):
        runs.append_line(second / "history.jsonl",
                         json.dumps({"epoch": epoch, "phase": "val", "mean_auc": auc, "loss": 1.0}))
    (tmp_path / "not_a_run").mkdir()
    listed = runs.list_runs(tmp_path)
    assert [r.path for r in listed][0] == second
    assert len(listed) == 2
    assert listed[0].model == "resnet18"
    assert listed[0].best == {"metric": "val_mean_auc", "value": 0.8, "epoch": 2}
    assert listed[1].best is None


def test_two_runs_started_in_the_same_second_list_by_their_creation_time(tmp_path):
    # The ids share their second and differ in the random suffix, which sorts the wrong way here.
    for suffix, created in (("ffff", 100.0), ("0000", 200.0)):
        run_dir = tmp_path / f"20261208-010000-lenet-{suffix}"
        run_dir.mkdir()
        runs.atomic_write_json(run_dir / "config.json", _config())
        runs.atomic_write_json(run_dir / "status.json", {"state": "done", "created": created})
    (tmp_path / "20261208-010001-lenet-aaaa").mkdir()  # a second later, with a damaged creation time
    runs.atomic_write_json(tmp_path / "20261208-010001-lenet-aaaa" / "config.json", _config())
    runs.atomic_write_json(tmp_path / "20261208-010001-lenet-aaaa" / "status.json", {"state": "done", "created": "x"})
    assert [r.id[-4:] for r in runs.list_runs(tmp_path)] == ["aaaa", "0000", "ffff"]


def test_best_falls_back_to_val_loss_when_auc_undefined():
    history = [{"epoch": 1, "phase": "val", "mean_auc": None, "loss": 0.9},
               {"epoch": 2, "phase": "val", "mean_auc": None, "loss": 0.5},
               {"epoch": 2, "phase": "train", "mean_auc": 0.9, "loss": 0.1}]
    assert runs.best_from_history(history) == {"metric": "val_loss", "value": 0.5, "epoch": 2}


def test_a_running_run_with_a_stop_request_shows_as_stopping(tmp_path):
    run_dir = runs.create_run(tmp_path, _config())
    runs.write_status(run_dir, state="running", pid=os.getpid())
    runs.request_stop(run_dir)
    with locks.run(run_dir):  # this test stands in for the trainer, which holds the run's lock
        assert runs.run_info(run_dir).state == "stopping"
        assert runs.is_active(run_dir)


def test_request_stop_and_clear(tmp_path):
    assert not runs.stop_requested(tmp_path)
    runs.request_stop(tmp_path)
    assert runs.stop_requested(tmp_path)
    runs.clear_stop(tmp_path)
    assert not runs.stop_requested(tmp_path)


def test_list_runs_of_a_missing_folder_is_empty(tmp_path):
    assert runs.list_runs(tmp_path / "nope") == []


def test_progress_never_moves_back_within_an_epoch():
    """train -> calibrate -> val: the bar must not drop back while BatchNorm is recalibrated."""
    base = {"epochs": 4, "epoch": 2, "n_iters": 10}
    seen = [runs.progress({**base, "phase": "train", "iteration": i})[0] for i in (1, 5, 10)]
    seen += [runs.progress({**base, "phase": phase, "iteration": 3})[0] for phase in ("calibrate", "val")]
    assert seen == sorted(seen) and seen[-1] == 2 / 5  # 2 of 4 epochs, then the final scoring to come
    # the bar is not full while the best model is still being scored (and the ETA still counts)
    final = runs.progress({**base, "phase": "evaluate", "epoch": 4, "eta_s": 30})
    assert 0.8 < final[0] < 1.0 and final[1] == "epoch 4/4 · evaluating the best model on val and test · ETA 0:27–0:34"
    calibrating = runs.progress({**base, "phase": "calibrate"})[1]
    assert calibrating == "epoch 2/4 · recomputing BatchNorm statistics"  # as the trainer's message names it
    assert runs.progress({"state": "queued", "message": "waiting for the trainer to start"}) == (
        0.0, "waiting for the trainer to start")
    text = runs.progress({**base, "phase": "val", "iteration": 3, "images_per_s": 12.34, "eta_s": 125.7})[1]
    assert text == "epoch 2/4 · val batch 3/10 · 12.3 images/s · ETA 1:44–2:48"


def test_read_metrics_is_none_until_written_and_for_garbage(tmp_path):
    assert runs.read_metrics(tmp_path, "test") is None
    (tmp_path / "metrics_test.json").write_text("[1, 2")
    assert runs.read_metrics(tmp_path, "test") is None
    runs.atomic_write_json(tmp_path / "metrics_test.json", {"accuracy": 0.5})  # the wrong shape
    assert runs.read_metrics(tmp_path, "test") is None
    result = metrics.to_jsonable(metrics.compute_metrics([0, 1, 2, 1], np.eye(3)[[0, 1, 2, 2]], ["a", "b", "c"]))
    runs.atomic_write_json(tmp_path / "metrics_test.json", result | {"n": 4})
    assert runs.read_metrics(tmp_path, "test")["accuracy"] == 0.75


def test_a_run_that_ended_between_reading_its_status_and_its_lock_is_not_called_interrupted(tmp_path):
    """The trainer writes its last status, then lets go of the run's lock. A reader holding the
    status from just before (running) and finding the lock free must read the status again:
    the run stopped, it was not interrupted (a torchrun test saw 'interrupted' here)."""
    run_dir = runs.create_run(tmp_path, _config())
    before = runs.write_status(run_dir, state="running", pid=os.getpid(), pid_start=locks.process_start(os.getpid()))
    runs.write_status(run_dir, state="stopped", message="stopped during epoch 2")  # then the lock is let go
    assert runs.effective_state(before, run_dir) == "stopped"
    runs.write_status(run_dir, state="running")  # running, and no trainer holds the lock
    assert runs.effective_state(runs.read_status(run_dir), run_dir) == "interrupted"
