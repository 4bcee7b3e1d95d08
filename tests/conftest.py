"""Shared fixtures: real files in temporary folders, a small demo dataset, the real ISIC sample."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from lesion_core import paths, runs
from tests.e2e_helpers import REPO, seed_demo_cache


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache and runs folder, so tests never share generated state."""
    base = tmp_path_factory.mktemp("lesion_home")
    monkeypatch.setenv("LESION_LAB_CACHE", str(base / "cache"))
    monkeypatch.setenv("LESION_LAB_RUNS", str(base / "runs"))
    # The app opens folder datasets only under its data roots: the tests' own temporary
    # folders and the real ISIC sample.
    roots = [str(tmp_path_factory.getbasetemp()), os.environ.get("LESION_LAB_ISIC_DEV", "")]
    monkeypatch.setenv("LESION_LAB_DATA_ROOTS", os.pathsep.join(filter(None, roots)))


@pytest.fixture
def one_torch_thread():
    """Tiny images and models: a second intra-op thread only adds hand-offs on 2 shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A small demo dataset (notebook layout) made once per test session; treat as read-only."""
    from lesion_core.data.demo import generate_demo

    return generate_demo(tmp_path_factory.mktemp("demo") / "demo", n_per_class=20, size=96, seed=0)


@pytest.fixture(scope="session")
def isic_dev_root() -> Path:
    """The real ISIC 2017 sample (300 images, 100 per class) named by $LESION_LAB_ISIC_DEV."""
    root = os.environ.get("LESION_LAB_ISIC_DEV")
    if not root or not (Path(root) / "labels.csv").is_file():
        pytest.skip("real ISIC sample not available (set LESION_LAB_ISIC_DEV; .ci/run does)")
    return Path(root)


@pytest.fixture
def app(demo_root):
    """The app (AppTest, in-process) on its Home page, with the small demo as "the demo" and empty caches."""
    seed_demo_cache(paths.cache_dir(), demo_root)
    # st.cache_* live as long as the process: clear them so no test sees another's folders.
    st.cache_data.clear()
    st.cache_resource.clear()
    yield AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    # A test that failed mid-run must not leave its detached trainer running.
    active = runs.active_run(paths.runs_dir())
    if active is not None:
        os.kill(active.status["pid"], signal.SIGTERM)
