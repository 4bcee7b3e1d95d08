"""A real `streamlit run app.py` server and a headless Chromium for the end-to-end tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def artifacts_dir() -> Path:
    """Where screenshots go: $LESION_LAB_ARTIFACTS or ./test-artifacts (gitignored)."""
    path = Path(os.environ.get("LESION_LAB_ARTIFACTS") or REPO / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_chromium() -> None:
    """Skip when Chromium is absent on a developer machine; in CI its absence is a failure."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} not found; CI must install chromium (see .ci/run)")
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium to run the browser tests")


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed_demo_cache(cache: Path, demo_root: Path) -> Path:
    """Put a small demo where demo_dir() looks, so the app starts on it without generating
    300 images; return that copy."""
    from lesion_core.data.demo import DEMO_VERSION

    return Path(shutil.copytree(demo_root, cache / f"demo-{DEMO_VERSION}"))


class Server:
    """`streamlit run app.py` in its own process group on a free port; stop() kills the group."""

    def __init__(self, env: dict, log: Path, shell_command: str | None = None, cwd: Path = REPO):
        """shell_command: run this bash command line instead (the README's own), with the port
        and headless mode given through Streamlit's environment variables."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
                   "--server.address", "127.0.0.1", "--server.headless", "true",
                   "--browser.gatherUsageStats", "false"]
        if shell_command is not None:
            command = ["bash", "-c", shell_command]
            env = dict(env, STREAMLIT_SERVER_PORT=str(self.port), STREAMLIT_SERVER_HEADLESS="true",
                       STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
        self._out = open(log, "wb")
        # A new session makes the server the leader of its own process group, so stop() ends
        # it and its helpers at once. Trainers it launches detach into their own sessions
        # (a run outlives the server); the tests stop those by their pid.
        self.process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **env} if shell_command is None else env,
                                        stdout=self._out, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait_healthy(self, timeout: float = 60) -> None:
        # (a shell_command that installs first takes longer: give it a larger timeout)
        """Poll /_stcore/health until it answers ok; fail with the server log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.25)
        pytest.fail(f"streamlit did not become healthy in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._out.close()


@contextmanager
def demo_server(home: Path, demo_root: Path, **env):
    """A Streamlit server of this checkout on the demo data: its decoded cache seeded, runs in
    home/runs (server.runs), more environment from env; healthy when yielded, stopped after."""
    require_chromium()
    demo = seed_demo_cache(home / "cache", demo_root)
    server = Server({"LESION_LAB_CACHE": str(home / "cache"), "LESION_LAB_RUNS": str(home / "runs"),
                     "OMP_NUM_THREADS": "1", **env}, log=home / "server.log")
    server.demo, server.runs = demo, home / "runs"
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def wait_for(predicate, what: str, timeout: float = 60.0):
    """Poll predicate() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextmanager
def browser_tab(timeout_ms: int, height: int = 1000, **context):
    """A headless Chromium tab, 1400 px wide, with timeout_ms as its default wait (closed after)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_context(viewport={"width": 1400, "height": height}, **context).new_page()
            tab.set_default_timeout(timeout_ms)
            yield tab
        finally:
            browser.close()
