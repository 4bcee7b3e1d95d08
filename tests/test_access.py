"""The app reachable from other machines: allowed data roots and the access token."""

from __future__ import annotations

import os
import shutil

import pytest
from streamlit import config as st_config

from lesion_core import access
from lesion_core.errors import DataError
from tests.test_pages import goto, texts


@pytest.fixture
def shared(tmp_path, monkeypatch, demo_root):
    """A data root holding a copy of the demo, and a folder outside it holding another."""
    root = tmp_path / "shared"
    inside = shutil.copytree(demo_root, root / "demo")
    outside = shutil.copytree(demo_root, tmp_path / "private" / "clinic")
    monkeypatch.setenv(access.ROOTS_ENV, str(root))
    return inside, outside


def test_folders_outside_the_roots_are_refused_alike_whether_or_not_they_exist(shared, tmp_path):
    inside, outside = shared
    assert access.check_data_folder(inside) == inside.resolve()
    messages = []
    for folder in (outside, tmp_path / "private" / "nothing-here"):
        with pytest.raises(DataError) as caught:
            access.check_data_folder(folder)
        messages.append(str(caught.value).replace(str(folder), "<typed>"))
    assert messages[0] == messages[1]
    assert str(tmp_path / "shared") not in messages[0]  # the roots themselves are not listed


def test_a_symlink_out_of_the_roots_is_refused(shared):
    inside, outside = shared
    link = inside.parent / "link"
    os.symlink(outside, link)
    with pytest.raises(DataError, match="not available.*the folder the app was started in"):
        access.check_data_folder(link)


def test_the_cache_is_always_a_root(monkeypatch, tmp_path):
    from lesion_core import paths

    monkeypatch.setenv(access.ROOTS_ENV, str(tmp_path / "elsewhere"))
    (paths.cache_dir() / "uploads" / "x").mkdir(parents=True)
    assert access.check_data_folder(paths.cache_dir() / "uploads" / "x")


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("127.0.0.2", True),
    (None, False), ("", False), ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("myhost", False)])
def test_which_addresses_need_a_token(address, loopback):
    assert access.token_required(address) is (not loopback)


def test_the_dataset_page_refuses_a_folder_outside_the_roots(app, shared):
    inside, outside = shared
    goto(app, "dataset")
    app.radio(key="keep_ds_source").set_value("folder").run()
    errors = []
    for folder in (outside, outside.parent / "missing"):
        app.text_input(key="keep_ds_folder").set_value(str(folder)).run()
        app.button(key="ds_open_folder").click().run()
        assert not app.exception
        errors.append(app.error[0].value.replace(str(folder), "<typed>"))
        assert "Current dataset: **demo**" in texts(app)
    assert errors[0] == errors[1] and "not available" in errors[0]
    app.text_input(key="keep_ds_folder").set_value(str(inside)).run()
    app.button(key="ds_open_folder").click().run()
    assert not app.error and "Current dataset: **demo**" in texts(app)  # the copy is also named demo


@pytest.fixture
def exposed(monkeypatch):
    """The server bound to every interface, with a known token."""
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    monkeypatch.setenv(access.TOKEN_ENV, "open-sesame")
    yield
    st_config.set_option("server.address", before)


def test_an_exposed_server_shows_no_data_without_the_token(exposed, app):
    app.run()
    assert not app.exception
    assert not app.metric and not app.dataframe and not app.sidebar.selectbox
    app.text_input(key="access_token_input").set_value("guess").run()
    assert "not the access token" in app.error[0].value and not app.metric
    goto_blocked = app.switch_page("app_pages/results.py").run()
    assert not goto_blocked.dataframe and not goto_blocked.download_button
    app.text_input(key="access_token_input").set_value("open-sesame").run()
    assert not app.exception and "No runs yet" in texts(app)  # the Results page itself now
    app.switch_page("app_pages/home.py").run()
    assert {m.label for m in app.metric} >= {"Dataset", "Usable images"}


def test_the_token_in_the_address_opens_the_session(exposed, app):
    app.query_params["token"] = "open-sesame"
    app.switch_page("app_pages/home.py").run()
    assert not app.exception and app.metric
    assert "token" not in app.query_params
    app.switch_page("app_pages/results.py").run()  # the session stays open without it
    assert not app.exception and not app.get("text_input")
