"""Hostile round 3 (issue 27): a proxy in front of the app, formula cells, markdown in run files,
weight paths, wrong tokens, damaged files that parse badly, concurrent imports and trainings."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from lesion_core import access
from lesion_core import inference
from lesion_core import training
from tests.test_pages import goto, texts


class TcpForwarder:
    """A plain TCP forwarder on loopback (what `socat TCP-LISTEN:8080,fork TCP:127.0.0.1:8501`
    or an nginx stream block does): it adds no header, the app sees a loopback peer."""

    def __init__(self, target_port: int):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.listener.close()


@pytest.mark.e2e
@pytest.mark.slow
def test_a_tcp_forwarder_in_front_of_a_loopback_server_cannot_skip_a_set_token(tmp_path, demo_root):
    from playwright.sync_api import sync_playwright

    from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS, Server, require_chromium, seed_demo_cache

    require_chromium()
    seed_demo_cache(tmp_path / "cache", demo_root)
    env = {"LESION_LAB_CACHE": str(tmp_path / "cache"), "LESION_LAB_RUNS": str(tmp_path / "runs"),
           access.TOKEN_ENV: "open-sesame", "OMP_NUM_THREADS": "1"}
    server = Server(env, log=tmp_path / "server.log")  # bound to 127.0.0.1, as the README advises
    forwarder = None
    try:
        server.wait_healthy()
        forwarder = TcpForwarder(server.port)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(60_000)
                page.goto(f"http://127.0.0.1:{forwarder.port}/")
                box = page.locator("input[aria-label='Access token']")
                box.wait_for()
                assert page.get_by_text("Usable images").count() == 0
                box.fill("wrong")
                box.press("Enter")
                page.get_by_text("That is not the access token.").wait_for()
                box.fill("open-sesame")
                box.press("Enter")
                page.get_by_text("Usable images").first.wait_for()
            finally:
                browser.close()
    finally:
        if forwarder:
            forwarder.close()
        server.stop()


@pytest.mark.parametrize("peer, headers, required", [
    (None, {}, False),  # a page script run alone (no browser)
    ("127.0.0.1", {"Host": "127.0.0.1:8501"}, False),
    ("127.0.0.1", {"Host": "localhost:8501"}, False),
    ("::1", {"Host": "[::1]:8501"}, False),
    ("192.168.1.7", {"Host": "127.0.0.1:8501"}, True),  # a connection from elsewhere
    ("unknown", {}, True),
    ("127.0.0.1", {"Host": "lab.example.org:8080"}, True),  # a TCP forwarder on 0.0.0.0: the browser names it
    ("127.0.0.1", {"Host": "10.0.0.5:8080"}, True),
    ("127.0.0.1", {"Host": "localhost", "X-Forwarded-For": "203.0.113.9"}, True),  # an HTTP proxy on this machine
    ("127.0.0.1", {"Host": "localhost", "Forwarded": 'for="203.0.113.9";proto=https'}, True),
    ("127.0.0.1", {"Host": "localhost", "X-Real-IP": "203.0.113.9"}, True),
    ("127.0.0.1", {"Host": "localhost", "X-Forwarded-For": "127.0.0.1"}, True),  # forwarding, proxy not trusted
])
def test_who_must_give_a_token_when_none_is_set(monkeypatch, peer, headers, required):
    monkeypatch.delenv(access.TOKEN_ENV, raising=False)
    assert access.token_required("127.0.0.1", peer, headers) is required
    assert access.token_required("0.0.0.0", peer, headers) is True


def test_a_trusted_proxy_forwarding_a_local_browser_is_local(monkeypatch):
    monkeypatch.delenv(access.TOKEN_ENV, raising=False)
    monkeypatch.setenv(access.TRUSTED_PROXIES_ENV, "127.0.0.1")
    local = {"Host": "localhost", "X-Forwarded-For": "127.0.0.1"}
    assert access.token_required("127.0.0.1", "127.0.0.1", local) is False
    assert access.token_required("127.0.0.1", "127.0.0.1", {"Host": "localhost", "X-Forwarded-For": "203.0.113.9"})
    assert access.client_key("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}) == "203.0.113.9"
    assert access.client_key("127.0.0.1", {}) == "127.0.0.1"


def test_a_set_token_is_always_required(monkeypatch):
    monkeypatch.setenv(access.TOKEN_ENV, "open-sesame")
    for peer in (None, "127.0.0.1", "::1"):
        assert access.token_required("127.0.0.1", peer, {"Host": "localhost"})


def test_wrong_tokens_lock_the_client_out_for_longer_and_longer():
    now = [0.0]
    throttle = access.Throttle(clock=lambda: now[0])
    waits = [throttle.failed("203.0.113.9") for _ in range(8)]
    assert waits[:4] == [0, 0, 0, 0] and waits[4:] == [2, 4, 8, 16]
    assert throttle.wait_s("203.0.113.9") == 16 and throttle.wait_s("198.51.100.1") == 0  # per client
    now[0] += 16
    assert throttle.wait_s("203.0.113.9") == 0
    throttle.succeeded("203.0.113.9")
    assert throttle.failed("203.0.113.9") == 0  # a right token starts the count again


@pytest.fixture
def exposed(monkeypatch):
    from streamlit import config as st_config

    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    monkeypatch.setenv(access.TOKEN_ENV, "open-sesame")
    monkeypatch.setattr(access, "THROTTLE", access.Throttle())  # a fresh count for this server
    yield
    st_config.set_option("server.address", before)


def test_fifteen_wrong_tokens_are_not_answered_at_page_speed(exposed, app):
    app.run()
    for attempt in range(15):
        app.text_input(key="access_token_input").set_value(f"guess-{attempt}").run()
    assert not app.exception and "Too many wrong tokens" in app.error[0].value
    app.text_input(key="access_token_input").set_value("open-sesame").run()  # even the right one, while locked
    assert "Too many wrong tokens" in app.error[0].value and not app.metric
    assert access.THROTTLE._failures["local"][0] == 5  # tries while locked out are not even checked


# ---------------------------------------------------------------- run files: markdown, nesting, size, bytes


def sound_run(demo_root):
    """A finished tiny run in the app's runs folder."""
    from lesion_core import paths
    from tests.test_pages import LENET

    config = {"data": {"root": str(demo_root)}, "model": LENET, "image_size": 32, "epochs": 1,
              "batch_size": 8, "augment": [], "eval_augment": []}
    return training.run_training(config, paths.runs_dir())


def markdown_bodies(app) -> str:
    """Everything a page hands to the browser as markdown (which the browser renders)."""
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader", "title")
             for e in getattr(app, kind)]
    parts += [e.proto.text for e in app.get("progress")]
    return "\n".join(str(p) for p in parts)


def test_a_status_message_is_shown_as_text_not_as_markdown(app, demo_root):
    import json
    import re

    run = sound_run(demo_root)
    status = json.loads((run / "status.json").read_text())
    status["message"] = "done ![b](http://127.0.0.1:9/beacon.png) [click](http://127.0.0.1:9/) :red[x] <b>hi</b>"
    (run / "status.json").write_text(json.dumps(status))
    app.session_state["keep_run"] = run.name
    for page in ("results", "train", "home"):
        goto(app, page)
        body = markdown_bodies(app)
        assert not re.search(r"(?<!\\)!(?<!\\)\[|(?<!\\)\]\(|(?<!\\):red(?<!\\)\[|(?<!\\)<b>", body), page
    goto(app, "results")
    assert r"!\[b\](http://127.0.0.1:9/beacon.png)" in markdown_bodies(app)  # shown, as typed


# ---------------------------------------------------------------- CSV cells that would run as formulas

HOSTILE_IDS = ['=HYPERLINK("http://x","open")', "+SUM(1+1)", "-2+3", "@SUM(1)", "\tTAB", "\rCR", "'=quoted", "plain_01"]


def test_every_csv_the_product_writes_neutralises_formulas_and_reads_back_the_same_ids(tmp_path):
    import csv
    import io

    import numpy as np
    from lesion_core.evaluation import explain, external

    names = ("melanoma", "-nevus", "keratosis")
    probs = np.full((len(HOSTILE_IDS), 3), 1 / 3)
    path = tmp_path / "predictions_test.csv"
    meta = {i: {"site": "=cmd|' /C calc'!A0"} for i in HOSTILE_IDS}
    inference.write_predictions(path, HOSTILE_IDS, [0, 1, 2, 0, 1, 2, 0, 1], probs, names, meta)
    explain.add_focus_columns(path, {HOSTILE_IDS[0]: (0.5, True)})  # rewrites the file: no double escape
    texts = [path.read_text(encoding="utf-8"),
             external.predictions_csv([{"file": i, "melanoma": 0.2, "-nevus": 0.3, "keratosis": 0.5, "pred": "-nevus",
                                        "uncertain": False} for i in HOSTILE_IDS], names)]
    for text in texts:
        for row in csv.reader(io.StringIO(text)):
            for value in row:
                assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    frame = inference.read_predictions(path)
    assert list(frame["id"]) == HOSTILE_IDS and set(frame["site"]) == {"=cmd|' /C calc'!A0"}
    focus = list(frame["focus"].astype(str))
    assert list(frame["label"][:2]) == ["melanoma", "-nevus"] and focus.count("0.5") + focus.count("0.5000") == 1


def test_an_exposed_server_does_not_tell_which_weight_files_exist(exposed, app):
    import json

    seen = []
    for path in ("/etc/hostname", "/etc/no-such-file-here"):
        app.query_params["token"] = "open-sesame"
        app.query_params["model"] = json.dumps({"name": "lenet", "weights": "file", "weights_path": path})
        app.session_state["url_restored"] = False
        goto(app, "model")
        shown = texts(app)
        assert "checkpoint not found" not in shown and "not a checkpoint" not in shown
        seen.append(shown.replace(path, "<path>"))
    assert "weights file not available" in seen[0] and seen[0] == seen[1]


RUN_FILES = ("status.json", "config.json", "metrics_val.json", "metrics_test.json", "history.jsonl",
             "patient_model.json", "calibration.json", "threshold.json", "robustness_test.json",
             "predictions_test.csv", "predictions_val.csv", "train.log", "console.log")


def spoil(path, kind: str) -> None:
    """Deeply nested, huge (a sparse file past safejson.MAX_BYTES) or non-UTF-8 content."""
    if kind == "deep":
        deep = b"[" * 100_000 + b"]" * 100_000
        if path.name == "history.jsonl":  # one line of it among the trainer's
            path.write_bytes(path.read_bytes() + deep + b"\n")
        else:
            path.write_bytes(deep)
    elif kind == "huge":
        path.write_bytes(b'{"state": "finished", "message": "')
        os.truncate(path, 32 * 2**20)  # twice safejson.MAX_BYTES; no disk used
    else:
        path.write_bytes(b'{"state": "\xff\xfe\xc0\x80"}\n' + bytes(range(128, 256)))


def test_every_run_file_reader_contains_deep_huge_and_non_utf8_content(app, demo_root):
    import json
    import shutil

    from lesion_core import runs

    sound = sound_run(demo_root)
    spoilt = {}
    for n, (name, kind) in enumerate((n, k) for n in RUN_FILES for k in ("deep", "huge", "bytes")):
        run_dir = shutil.copytree(sound, sound.parent / f"{sound.name[:-4]}{n:04d}")
        spoil(run_dir / name, kind)
        spoilt[run_dir.name] = (name, kind)
    listed = {r.id: r for r in runs.list_runs(sound.parent)}
    assert listed[sound.name].damage == [] and len(listed) == len(spoilt) + 1
    for run_id, (name, kind) in spoilt.items():
        if name.endswith((".json", ".jsonl")) and name not in ("calibration.json", "threshold.json",
                                                                "robustness_test.json"):
            assert any(p.startswith(name) for p in listed[run_id].damage), (name, kind)
        runs.read_history(listed[run_id].path), runs.log_tail(listed[run_id].path)
    goto(app, "home")
    assert sound.name in " ".join(map(str, app.dataframe[-1].value.iloc[:, 0]))
    # Pages: each file spoilt one way, the ways taking turns (every page with every run: 4 minutes)
    for run_id, (name, kind) in spoilt.items():
        if kind != ("deep", "huge", "bytes")[RUN_FILES.index(name) % 3]:
            continue
        app.session_state["keep_run"] = run_id
        for page in ("results", "train", "predictions"):
            goto(app, page)  # no exception
    app.session_state["keep_run"] = sound.name
    goto(app, "results")
    assert json.loads((sound / "status.json").read_text())["state"] == "finished"


# ---------------------------------------------------------------- one line, not a traceback (item 7), sweep size (15)


def cli(*args, cwd=None, timeout=300):
    import subprocess
    import sys

    from tests.e2e_helpers import REPO

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "lesion_core", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd or REPO)


def one_line_error(done, *words) -> str:
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(("usage:", " "))]
    assert len(lines) == 1, done.stderr[-2000:]  # argparse prints its usage first
    assert all(word in lines[-1] for word in words), lines[-1]
    return lines[-1]


def test_a_bad_sweep_spec_or_threshold_is_one_line(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    one_line_error(cli("sweep", deep, "--out", tmp_path / "runs"), "deep.json", "nested too deeply")
    typed = tmp_path / "typed.json"
    typed.write_text('{"base": {"optim": 5}, "grid": {"optim.lr": [0.1, 0.01]}}')
    one_line_error(cli("sweep", typed, "--out", tmp_path / "runs"), "optim", "not an object")
    one_line_error(cli("threshold", tmp_path, "--class", "melanoma", "--specificity", "1.5"), "from 0 to 1", "1.5")


def test_a_sweep_of_a_million_runs_is_refused_at_once_with_its_count(tmp_path):
    import json
    import time

    spec = tmp_path / "huge.json"
    spec.write_text(json.dumps({"grid": {"optim.lr": [0.001 * (i + 1) for i in range(100)], "seed": list(range(100)),
                                         "epochs": list(range(1, 101))}}))
    started = time.monotonic()
    one_line_error(cli("sweep", spec, "--out", tmp_path / "runs"), "1,000,000 runs", "at most 1,000")
    assert time.monotonic() - started < 30
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 1.5 MB tmpfs: a real full disk (needs root and mount; skipped otherwise)."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()[:100]}): "
                    "the full-disk case needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_training_into_a_full_disk_names_the_file_in_one_line(small_disk, demo_root):
    done = cli("train", "--data", demo_root, "--model", "resnet18", "--pretrained", "random", "--epochs", "1",
               "--image-size", "32", "--batch-size", "8", "--max-size", "16", "--out", small_disk / "runs")
    line = one_line_error(done, "no space left", str(small_disk))
    assert "cannot write or read a file" not in line and "Traceback" not in done.stdout


def test_an_image_replaced_with_its_times_restored_is_decoded_again(tmp_path, demo_root):
    import shutil

    from PIL import Image

    from lesion_core import data

    root = shutil.copytree(demo_root, tmp_path / "demo")
    dataset = data.load_dataset(root)
    record = dataset.records[0]
    image_path = record.image_path

    def put(color):  # the same size in bytes whatever the colour: an uncompressed PNG
        Image.new("RGB", (64, 48), color).save(image_path, format="PNG", compress_level=0)

    put((255, 0, 0))
    stamp = os.stat(image_path)
    red = data.LesionDataset([record], max_side=64)[0]["image"]
    put((0, 0, 255))  # as cp -p or rsync -t would: same size, the old times put back
    os.utime(image_path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert os.stat(image_path).st_size == stamp.st_size
    blue = data.LesionDataset([record], max_side=64)[0]["image"]
    assert red[..., 0].mean() > 200 and blue[..., 2].mean() > 200 and blue[..., 0].mean() < 50


def test_a_resume_refused_for_an_invalid_config_changes_nothing(demo_root, tmp_path):
    import json

    from lesion_core.errors import LesionLabError

    run = sound_run(demo_root)
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps(dict(status, state="stopped")))
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(dict(config, image_size=1_000_000)))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(LesionLabError, match="image_size"):
        training.run_training(resume=run)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


# ---------------------------------------------------------------- trainings: one per device, stale claims


def tiny_config(demo_root, **extra):
    from tests.test_pages import LENET

    return {"data": {"root": str(demo_root)}, "model": LENET, "image_size": 32, "epochs": 1, "batch_size": 8,
            "augment": [], "eval_augment": [], "device": "cpu", **extra}


def test_two_runs_folders_still_train_one_at_a_time_per_device(demo_root, tmp_path):
    from lesion_core.errors import TrainingError

    started, release, done = threading.Event(), threading.Event(), []

    def hold(*_):
        started.set()
        release.wait(60)

    first = threading.Thread(target=lambda: done.append(training.run_training(
        tiny_config(demo_root), tmp_path / "A", on_batch=hold)))
    first.start()
    try:
        assert started.wait(120)
        with pytest.raises(TrainingError, match="another training is using cpu"):
            training.run_training(tiny_config(demo_root), tmp_path / "B")
        with pytest.raises(TrainingError, match="another training is using cpu"):
            training.launch(tiny_config(demo_root), tmp_path / "C")
        assert not (tmp_path / "B").exists() or not any((tmp_path / "B").iterdir())
        assert not (tmp_path / "C").exists() or not any((tmp_path / "C").iterdir())
    finally:
        release.set()
        first.join(120)
    assert done and (done[0] / "best.pt").is_file()
    assert (training.run_training(tiny_config(demo_root), tmp_path / "B") / "best.pt").is_file()  # free again


def test_a_running_claim_by_a_process_that_is_not_its_trainer_is_stale(demo_root):
    import json

    from lesion_core import paths, runs

    run = sound_run(demo_root)
    status = json.loads((run / "status.json").read_text())
    status.update(state="running", pid=1)
    status.pop("pid_start", None)
    (run / "status.json").write_text(json.dumps(status))
    assert runs.run_info(run).state == runs.INTERRUPTED
    assert runs.active_run(paths.runs_dir()) is None and not runs.is_active(run)


# ---------------------------------------------------------------- uploads: shared, never clobbered


def demo_zip(demo_root, tmp_path) -> bytes:
    import shutil

    return Path(shutil.make_archive(str(tmp_path / "lesions"), "zip", demo_root.parent, demo_root.name)).read_bytes()


def test_the_same_zip_uploaded_by_four_sessions_at_once_is_imported_once(demo_root, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from lesion_core import data

    content, folder = demo_zip(demo_root, tmp_path), tmp_path / "uploads"
    barrier = threading.Barrier(4)

    def upload(_):
        barrier.wait()
        return data.import_upload("lesions.zip", content, folder, check=data.load_dataset)

    with ThreadPoolExecutor(4) as pool:
        roots = list(pool.map(upload, range(4)))  # raises here if any upload failed
    assert len(set(roots)) == 1 and len(data.load_dataset(roots[0]).records) == 60
    assert [p.name for p in folder.iterdir()] == [roots[0].relative_to(folder).parts[0]]


def test_uploading_the_same_zip_again_leaves_the_dataset_a_run_uses_in_place(demo_root, tmp_path):
    from lesion_core import data

    content, folder = demo_zip(demo_root, tmp_path), tmp_path / "uploads"
    root = data.import_upload("lesions.zip", content, folder, check=data.load_dataset)
    image = data.load_dataset(root).records[0].image_path
    inode = os.stat(image).st_ino
    (root / "in-use-by-a-run").write_text("x")  # what a training sees must not vanish under it
    again = data.import_upload("lesions.zip", content, folder, check=data.load_dataset)
    assert again == root and os.stat(image).st_ino == inode and (root / "in-use-by-a-run").exists()


def test_check_data_on_100000_missing_images_summarises_by_kind(tmp_path):
    import json
    import time

    root = tmp_path / "big"
    (root / "images").mkdir(parents=True)
    rows = "".join(f"missing_{i:06d},{i % 3}\n" for i in range(30_000))
    (root / "labels.csv").write_text("id,label\n" + rows)
    started = time.monotonic()
    done = cli("check-data", root)
    took = time.monotonic() - started
    assert len(done.stdout) + len(done.stderr) < 5_000, (len(done.stdout), done.stdout[-500:])
    shown = done.stdout + done.stderr
    assert "[missing_image] 30000 rows, for example:" in shown and "29997 more [missing_image]" in shown, shown
    full = cli("check-data", root, "--json")
    assert len(json.loads(full.stdout)["problems"]) >= 30_000
    print(f"check-data on 100,000 missing images: {took:.1f} s")


# ---------------------------------------------------------------- many sessions: run folders parsed once per change


def test_run_folders_are_parsed_again_only_when_a_file_changes(demo_root, monkeypatch):
    import json

    from lesion_core import paths, runs

    run = sound_run(demo_root)
    first = runs.run_info(run)

    def no_reading(*_):
        raise AssertionError("a run folder whose files did not change was parsed again")

    with monkeypatch.context() as patched:
        patched.setattr(runs, "read_config", no_reading)
        patched.setattr(runs, "run_problems", no_reading)
        again = runs.list_runs(paths.runs_dir())[0]
    assert again.config == first.config and again.best == first.best and again.state == first.state
    again.config["model"]["name"] = "changed by a caller"  # callers get their own copy
    assert runs.run_info(run).config == first.config
    status = json.loads((run / "status.json").read_text())
    runs.atomic_write_json(run / "status.json", dict(status, message="edited"))
    assert runs.run_info(run).status["message"] == "edited"


def test_damaged_predictions_are_named_for_what_is_wrong(demo_root, tmp_path):
    from lesion_core.errors import LesionLabError
    from lesion_core.evaluation import compare

    path = tmp_path / "predictions_test.csv"
    path.write_text("id,label,prob_a,prob_b,pred\nx1,a,0.5,0.5,a\nx2,zebra,0.5,0.5,b\n")
    with pytest.raises(LesionLabError, match="label 'zebra' is not one of the classes") as caught:
        inference.read_predictions(path)
    assert "922337" not in str(caught.value)
    run_a, run_b = sound_run(demo_root), sound_run(demo_root)
    (run_b / "predictions_test.csv").write_bytes(b"\xff\xfe not a csv \x00")
    with pytest.raises(LesionLabError) as caught:
        compare.compare_runs(run_a, run_b, "test")
    assert "predictions_test.csv is damaged" in str(caught.value)
    assert "written when the run finishes" not in str(caught.value)
