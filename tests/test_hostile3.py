"""Hostile round 3 (issue 27): a proxy in front of the app, formula cells, markdown in run files,
weight paths, wrong tokens, damaged files that parse badly, concurrent imports and trainings."""

from __future__ import annotations

import socket
import threading

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
