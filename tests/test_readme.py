"""The product as a new user starts it: a fresh copy of the checkout, the README's own
commands, relative paths, an empty HOME and no LESION_LAB_* variables.

Every other test sets absolute runs and cache folders, which is how a Launch that never
trained from a fresh clone (a relative runs folder) slipped through. These tests set
nothing: they read the commands out of README.md and run them as written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS, REPO, Server, artifacts_dir, require_chromium, wait_for

README = REPO / "README.md"


def readme_commands() -> tuple[str, str]:
    """(start command, test command): the two bash blocks of the README's set-up section."""
    text = README.read_text(encoding="utf-8")
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", setup, flags=re.S)
    assert len(blocks) == 2, f"the set-up section should hold exactly two commands, found {blocks}"
    return blocks[0].strip(), blocks[1].strip()


def fresh_checkout(dest: Path) -> Path:
    """Copy what a clone holds (tracked files, and new files not ignored) to dest."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def clean_env(home: Path, **extra) -> dict:
    """The environment of a user who never heard of our variables, with an empty HOME."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LESION_LAB_")}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1", **extra)
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture
def checkout(tmp_path) -> Path:
    return fresh_checkout(tmp_path / "lesion-lab")


VENV = "python3 -m venv .venv"


def as_tested(command: str) -> str:
    """The README's command as the tests run it: its virtual environment sees the packages of
    the Python running the suite (--system-site-packages), so installing finds torch already
    there instead of downloading 6 GB; everything else as written. Such a venv gets no
    `streamlit` script of its own (pip finds the package installed outside it), and the one
    outside would run the outside Python, where another copy of Lesion Lab is installed: so
    `streamlit run` becomes `python -m streamlit run`, the venv's Python, as a fresh venv has it."""
    assert command.startswith(VENV + " && "), f"the README's command should make its venv first: {command}"
    command = command.replace(VENV, f"{Path(sys.executable).resolve()} -m venv --system-site-packages .venv", 1)
    return command.replace("&& streamlit run ", "&& python -m streamlit run ")


def test_the_readme_commands_make_a_venv_and_install_the_package():
    start, _tests = readme_commands()
    assert start.startswith(VENV + " && . .venv/bin/activate && pip install -e . && ")
    assert start.endswith("streamlit run app.py")


def test_ci_runs_exactly_the_readme_test_command():
    _start, tests = readme_commands()
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert tests in ci.splitlines(), f".ci/run must call the README's test command: {tests}"


def _run(command: list[str] | str, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                            shell=isinstance(command, str), executable="/bin/bash" if isinstance(command, str) else None)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _one_run(runs_dir: Path) -> Path:
    found = [p for p in runs_dir.iterdir() if (p / "config.json").is_file()] if runs_dir.is_dir() else []
    return found[0] if len(found) == 1 else None


def _state(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "status.json").read_text()).get("state")
    except (OSError, ValueError):
        return None


def _history_epochs(run_dir: Path) -> set:
    try:
        lines = (run_dir / "history.jsonl").read_text().splitlines()
    except OSError:
        return set()
    return {json.loads(line)["epoch"] for line in lines if '"phase": "val"' in line}


@pytest.mark.slow
def test_the_cli_from_a_fresh_clone_with_relative_paths(checkout, tmp_path):
    """Install as the README says, then train (interrupted with Ctrl-C, then resumed),
    evaluate and predict with relative paths only."""
    env = clean_env(tmp_path / "home", OMP_NUM_THREADS="1")
    start, _tests = readme_commands()
    _run(as_tested(start).rsplit("&&", 1)[0].strip(), checkout, env)  # all but `streamlit run`
    venv = checkout / ".venv" / "bin"
    # `lesion-lab --help` from the install, in another folder: the console script, not the checkout.
    helped = _run([str(venv / "lesion-lab"), "--help"], tmp_path, env).stdout
    assert helped.startswith("usage: lesion-lab") and "train" in helped
    python = [str(venv / "python"), "-m", "lesion_core"]

    trainer = subprocess.Popen(python + ["train", "--data", "demo", "--out", "runs", "--epochs", "2",
                                         "--image-size", "64"], cwd=checkout, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run_dir = wait_for(lambda: _one_run(checkout / "runs"), "the run folder under ./runs", 300)
        wait_for(lambda: 1 in _history_epochs(run_dir), "epoch 1 to finish", 1200)
        trainer.send_signal(signal.SIGINT)  # Ctrl-C: stop after the current batch
        output, _ = trainer.communicate(timeout=300)
    finally:
        if trainer.poll() is None:
            trainer.kill()
    assert trainer.returncode == 0, output
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "stopped", status
    assert f"train --resume {run_dir}" in output  # says how to continue
    relative = f"runs/{run_dir.name}"

    resumed = _run(python + ["train", "--resume", relative], checkout, env)
    assert "finished" in resumed.stdout
    assert _history_epochs(run_dir) == {1, 2}
    assert "resuming after epoch" in (run_dir / "train.log").read_text()
    assert not (run_dir / "runs").exists()
    config = json.loads((run_dir / "config.json").read_text())
    assert Path(config["data"]["split"]["root"]).is_relative_to(tmp_path / "home")  # the demo in the empty HOME

    evaluated = _run(python + ["evaluate", relative], checkout, env)
    assert re.search(r"test: \d+ images, accuracy", evaluated.stdout)
    image = Path(config["data"]["split"]["root"]) / "images"
    shutil.copy(next(image.iterdir()), checkout / "lesion.jpg")
    predicted = _run(python + ["predict", relative, "lesion.jpg"], checkout, env).stdout
    assert "melanoma" in predicted and "Traceback" not in predicted


def _stop_trainers(runs_dir: Path) -> None:
    from lesion_core import locks, runs

    for run in runs.list_runs(runs_dir):
        if run.state in runs.ACTIVE_STATES and locks.pid_alive(run.status.get("pid")):
            os.kill(run.status["pid"], signal.SIGTERM)


@pytest.mark.slow
@pytest.mark.e2e
def test_launch_stop_resume_from_a_fresh_clone_in_the_browser(checkout, tmp_path):
    """Start the app with the README's command, press Launch with the defaults, Stop, Resume,
    wait for 'finished', and find the run on Results and Predictions."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    start, _tests = readme_commands()
    server = Server(clean_env(tmp_path / "home"), tmp_path / "server.log", shell_command=as_tested(start), cwd=checkout)
    try:
        server.wait_healthy(timeout=600)  # the command installs the requirements first
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            idle = "[data-testid='stApp'][data-test-script-state='notRunning']"

            page.goto(f"{server.url}/train")
            page.get_by_role("button", name="Launch").click()  # the defaults, on the demo made in the empty HOME
            page.locator("[data-testid='stProgress']").first.wait_for()
            run_dir = wait_for(lambda: _one_run(checkout / "runs"), "the run folder under ./runs", 60)
            wait_for(lambda: 1 in _history_epochs(run_dir), "epoch 1 to finish", 1200)
            page.get_by_role("button", name="Stop").click()
            # Waits follow the run folder, which moves however busy the machine is; the page
            # then has a short while to show it.
            wait_for(lambda: _state(run_dir) == "stopped", "the run to stop", 900)
            page.get_by_text("stopped during").first.wait_for(timeout=60_000)
            # The live part redraws the whole page once the run has ended: press Resume on
            # that page, not on the last live refresh it replaces.
            page.wait_for_selector(idle)
            page.get_by_role("button", name="Resume").click()
            page.locator("[data-testid='stProgress']").first.wait_for()
            wait_for(lambda: _state(run_dir) in ("finished", "failed"), "the resumed run to end", 1800)
            # The state line itself ("finished" alone also matches the time estimate's caption),
            # and the ended run's whole-page redraw: the sidebar's "Training:" note goes. Only
            # then is a click on the navigation not lost to that last redraw.
            page.get_by_text(re.compile(r"^finished: ")).first.wait_for(timeout=60_000)
            page.locator("[data-testid='stSidebar']").get_by_text("Training:").wait_for(state="detached")
            page.wait_for_selector(idle)
            status = json.loads((run_dir / "status.json").read_text())
            assert status["state"] == "finished", status
            assert "resuming after epoch" in (run_dir / "train.log").read_text()
            assert page.locator("[data-testid='stException']").count() == 0
            page.screenshot(path=str(artifacts_dir() / "readme-train-finished.png"), full_page=True)

            page.locator("[data-testid='stSidebarNav'] a[href$='/results']").click()
            page.get_by_role("heading", name="Results").first.wait_for()
            page.get_by_text(f"Run {run_dir.name}").first.wait_for()
            page.get_by_text("Confusion matrix (counts)").wait_for()
            page.locator("[data-testid='stSidebarNav'] a[href$='/predictions']").click()
            page.get_by_role("heading", name="Predictions").first.wait_for()
            page.get_by_text(f"Run {run_dir.name}").first.wait_for()
            page.locator("[data-testid='stImage'] img").first.wait_for()
            page.wait_for_selector(idle)
            assert page.locator("[data-testid='stException']").count() == 0
            page.screenshot(path=str(artifacts_dir() / "readme-predictions.png"), full_page=True)
            browser.close()
    finally:
        server.stop()
        _stop_trainers(checkout / "runs")
