"""Loader seeding and torchrun: batches independent of workers and process count; a 2-process
gloo run writes one run folder, scores each image once and matches a 1-process run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lesion_core import locks, runs
from lesion_core.settings import loading
from lesion_core import errors
from lesion_core import settings
from lesion_core import training

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- sampling, workers


@pytest.mark.parametrize("n, world", [(10, 1), (10, 2), (11, 2), (7, 3)])
def test_shares_cover_every_index_and_are_equal_in_length(n, world):
    gen = torch.Generator()
    shares = []
    for rank in range(world):
        gen.manual_seed(5)
        shares.append(list(loading.SeededSampler(n, True, gen, rank, world)))
    assert len({len(s) for s in shares}) == 1 and len(shares[0]) == -(-n // world)
    assert {i for share in shares for _, i in share} == set(range(n))
    seeds = {i: seed for share in shares for seed, i in share}
    gen.manual_seed(5)
    alone = dict((i, seed) for seed, i in loading.SeededSampler(n, True, gen))
    assert seeds == alone  # an image gets the same augmentation seed whatever the process count


def test_epochs_draw_new_orders_and_seeds():
    gen = torch.Generator().manual_seed(0)
    sampler = loading.SeededSampler(20, True, gen)
    first, second = list(sampler), list(sampler)
    assert first != second and sorted(i for _, i in first) == list(range(20))


def test_auto_workers_follow_the_cores_and_the_device():
    cores = loading.cpu_count()
    cpu = torch.device("cpu")
    expected = 0 if cores <= 2 else min(cores - 1, loading.MAX_AUTO_WORKERS)
    assert loading.resolve_num_workers("auto", cpu) == expected
    assert loading.resolve_num_workers(3, cpu) == 3
    assert loading.resolve_num_workers("auto", torch.device("cuda"), world_size=cores) == 0
    assert loading.loader_options(2, torch.device("cuda")) == {
        "num_workers": 2, "pin_memory": True, "persistent_workers": True, "prefetch_factor": 4}
    assert loading.loader_options(0, cpu) == {"num_workers": 0, "pin_memory": False}


def test_batches_are_the_same_with_or_without_worker_processes(demo_root):
    config = settings.validate_config({
        "data": {"root": str(demo_root)}, "model": {"name": "lenet", "weights": "random"}, "image_size": 32,
        "batch_size": 6, "augment": "default_train"})
    records = settings.load_data(config).split("train")[:12]
    batches = {}
    for workers in (0, 2):
        gen = torch.Generator()
        loader = settings.make_loader(records, config["augment"], dict(config, num_workers=workers), True, gen)
        batches[workers] = []
        for epoch in (1, 2):
            gen.manual_seed(epoch)
            batches[workers] += [(images, ids) for images, _, ids in loader]
    assert [ids for _, ids in batches[0]] == [ids for _, ids in batches[2]]
    assert batches[0][0][1] != batches[0][2][1]  # epoch 2 is shuffled anew
    for (a, _), (b, _) in zip(batches[0], batches[2]):
        assert torch.equal(a, b)


def test_num_workers_must_be_auto_or_a_count():
    with pytest.raises(errors.TrainingError, match='num_workers must be "auto" or an integer >= 0'):
        settings.validate_config({"num_workers": "many"})


# --------------------------------------------------------------------------- torchrun (gloo, CPU)


def ddp_config(root: Path, **overrides) -> dict:
    """LeNet at 32 px, fp32 (bf16 rounding would hide what this compares), no class weights
    (each process would weight its own half of a batch)."""
    config = {
        "data": {"root": str(root), "val_fraction": 0.3},
        "model": {"name": "lenet", "weights": "random"},
        "optim": {"optimizer": "adamw", "lr": 0.01},
        "image_size": 32, "epochs": 1, "batch_size": 8, "num_workers": 0, "amp": "off",
        "class_weights": "none", "bn_recalibration_images": 0,
        "augment": [{"name": "RandomResizedCrop", "params": {"size": 32, "scale_min": 0.5}},
                    {"name": "RandomHorizontalFlip", "params": {"p": 0.5}}],
        "eval_augment": [],
        # the recipe a dataset folder gets: warm-up, label smoothing and TTA scoring across ranks too
        "recipe": "standard",
    }
    config.update(overrides)
    return config


def torchrun(tmp_path: Path, *args: str, processes: int = 2, **popen) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "lesion_core", "train", *args]
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **popen)


def finished(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def predictions(run_dir: Path, split: str) -> dict[str, list[float]]:
    with open(run_dir / f"predictions_{split}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "an image was scored twice"
    return {r["id"]: [float(v) for k, v in r.items() if k.startswith("prob_")] for r in rows}


@pytest.mark.slow
# The second: the head alone in epoch 1 (DDP must expect parameters without gradients), and the
# moving average of the weights validated and kept.
@pytest.mark.parametrize("extra", [{}, {"epochs": 2, "freeze_epochs": 1, "ema": 0.9}], ids=["plain", "freeze-ema"])
def test_two_gloo_processes_train_one_run_like_one_process(demo_root, tmp_path, extra):
    (tmp_path / "config.json").write_text(json.dumps(ddp_config(demo_root, **extra)))
    finished(torchrun(tmp_path, "--config", "config.json", "--out", "ddp"))
    single = training.run_training(ddp_config(demo_root, **extra), tmp_path / "single")

    (run_dir,) = [p for p in (tmp_path / "ddp").iterdir() if p.is_dir()]  # one folder, rank 0's
    assert runs.read_status(run_dir)["state"] == "finished"
    resolved = runs.read_config(run_dir)["resolved"]
    assert (resolved["world_size"], resolved["global_batch"], resolved["local_batch"]) == (2, 8, 4)
    assert runs.read_config(run_dir)["processes"] == 2  # what Resume on the Train page starts again
    split = settings.load_data(settings.validate_config(ddp_config(demo_root)))
    for name in ("val", "test"):
        ddp, alone = predictions(run_dir, name), predictions(single, name)
        assert sorted(ddp) == sorted(r.id for r in split.split(name))  # every image, once
        # Same images, batches and augmentation draws; only the order of float sums differs.
        for sid in alone:
            assert ddp[sid] == pytest.approx(alone[sid], abs=1e-4), sid
    rows = [runs.read_history(d) for d in (run_dir, single)]
    for a, b in zip(*rows):
        assert (a["phase"], a["n_images"]) == (b["phase"], b["n_images"])
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4)


@pytest.mark.slow
def test_a_stop_request_stops_every_rank_and_the_run_resumes_under_torchrun(demo_root, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(ddp_config(demo_root, epochs=40, batch_size=2)))
    proc = torchrun(tmp_path, "--config", "config.json", "--out", "ddp")
    deadline = time.monotonic() + 600  # generous: a loaded 2-core machine starts torch slowly
    run_dir = None
    while time.monotonic() < deadline and proc.poll() is None:
        folders = [p for p in (tmp_path / "ddp").glob("*") if p.is_dir()]
        # An epoch validated: a stop is next checked in epoch 2, after last.pt of epoch 1 is saved.
        if folders and any(row["phase"] == "val" for row in runs.read_history(folders[0])):
            run_dir = folders[0]
            break
        time.sleep(0.2)
    assert run_dir is not None, proc.communicate()[0][-3000:]
    runs.request_stop(run_dir)
    finished(proc)  # both ranks left: torchrun returns only then
    status = runs.read_status(run_dir)
    assert status["state"] == "stopped", status
    # the way to continue it by hand is torchrun's: train --resume alone is refused for 2 processes
    assert status["message"].endswith(f"or torchrun --nproc_per_node=2 -m lesion_core train --resume {run_dir}")
    done = len([r for r in runs.read_history(run_dir) if r["phase"] == "val"])
    assert 1 <= done < 40

    config = json.loads((run_dir / "config.json").read_text())
    config["epochs"] = done + 1  # resume only one more epoch, to keep the test short
    (run_dir / "config.json").write_text(json.dumps(config))
    finished(torchrun(tmp_path, "--resume", str(run_dir)))
    assert runs.read_status(run_dir)["state"] == "finished"
    epochs = [r["epoch"] for r in runs.read_history(run_dir) if r["phase"] == "val"]
    assert epochs == list(range(1, done + 2))


# --------------------------------------------------------------------------- launching from the app


def test_the_device_choice_lists_every_gpu_then_the_first_k_and_maps_back_to_a_config():
    four = settings.device_choices([("NVIDIA H200", 143 * 2**30)] * 4)
    assert [c for c in four if c not in ("auto", "cpu", "mps")] == [
        "cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda*2", "cuda*3", "cuda*4"]
    assert four["cuda:2"] == "GPU 2: NVIDIA H200, 143 GiB"
    assert four["cuda*3"] == "3 GPUs (0 to 2), one torchrun process each"
    assert settings.split_device_choice("cuda*4") == ("cuda", 4)
    assert settings.split_device_choice("cuda:1") == ("cuda:1", 1)
    for choice in four:  # every choice, put in a config, is found again
        device, processes = settings.split_device_choice(choice)
        assert settings.device_choice({"device": device, "processes": processes}, four) == choice
    assert settings.device_choice({"device": "auto", "processes": 2}, four) == "cuda*2"  # a torchrun job's auto
    one = settings.device_choices([("NVIDIA T4", 15 * 2**30)])
    assert "cuda*2" not in one and settings.device_choice({"device": "cuda", "processes": 2}, one) == "auto"
    assert settings.device_choice({"device": "cuda:3", "processes": 1}, one) == "auto"  # a GPU it lacks
    assert settings.device_choice({"device": "cpu", "processes": 2}, one) == "cpu"  # the page has no CPU processes
    assert settings.device_choice({"device": "cpu"}, one) == "cpu"  # a config from before processes existed


def test_this_machine_lists_the_gpus_it_has():
    choices = settings.device_choices()
    gpus = [c for c in choices if c.startswith("cuda:")]
    assert list(choices)[:2] == ["auto", "cpu"] and len(gpus) == settings.gpu_count()  # none here or in CI


def test_several_processes_train_through_torchrun_one_alone_does_not(tmp_path):
    alone = training.trainer_command(tmp_path, "--run-dir")
    assert alone == [sys.executable, "-m", "lesion_core", "train", "--run-dir", str(tmp_path)]
    assert training.trainer_command(tmp_path, "--resume", 4) == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4",
        "-m", "lesion_core", "train", "--resume", str(tmp_path)]


def wait_for(run_dir: Path, done, what: str, timeout: float = 600):
    deadline = time.monotonic() + timeout  # generous: a loaded 2-core machine starts torch slowly
    while time.monotonic() < deadline:
        info = runs.run_info(run_dir)
        if done(info):
            return info
        time.sleep(0.2)
    log = (run_dir / "console.log").read_text(errors="replace")[-3000:]
    raise AssertionError(f"{what} not reached in {timeout}s: {runs.run_info(run_dir).status}\n{log}")


@pytest.mark.slow
def test_launch_and_resume_start_two_processes_through_torchrun_and_stop_reaches_both(demo_root, tmp_path):
    """What the Train page does with "2 GPUs": launch() and launch_resume() start torchrun;
    here with gloo on the CPU (processes 2, device cpu), since no GPU is at hand."""
    run_dir = training.launch(ddp_config(demo_root, epochs=40, batch_size=2, device="cpu", processes=2),
                           tmp_path / "runs")
    launcher = runs.read_status(run_dir)["pid"]
    wait_for(run_dir, lambda info: any(r["phase"] == "val" for r in runs.read_history(run_dir)), "a validated epoch")
    status = runs.read_status(run_dir)
    assert status["state"] == "running" and status["pid"] != launcher  # rank 0 took over from torchrun
    runs.request_stop(run_dir)
    info = wait_for(run_dir, lambda info: info.state not in runs.ACTIVE_STATES, "the stop")
    assert info.state == "stopped", info.status
    wait_for(run_dir, lambda info: not locks.pid_alive(launcher), "torchrun's exit")  # both ranks left
    assert runs.read_config(run_dir)["resolved"]["world_size"] == 2
    done = len([r for r in runs.read_history(run_dir) if r["phase"] == "val"])

    config = json.loads((run_dir / "config.json").read_text())
    config["epochs"] = done + 1  # resume only one more epoch, to keep the test short
    (run_dir / "config.json").write_text(json.dumps(config))
    training.launch_resume(run_dir)  # rank 0 finds the run queued for its parent, torchrun
    info = wait_for(run_dir, lambda info: info.state not in runs.ACTIVE_STATES, "the end of the resumed run")
    assert info.state == "finished", info.status
    assert [r["epoch"] for r in runs.read_history(run_dir) if r["phase"] == "val"] == list(range(1, done + 2))


def test_a_config_for_several_processes_is_refused_outside_torchrun(demo_root, tmp_path):
    with pytest.raises(errors.TrainingError, match="start it with torchrun --nproc_per_node=2"):
        training.run_training(ddp_config(demo_root, device="cpu", processes=2), tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
