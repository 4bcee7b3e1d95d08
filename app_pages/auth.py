"""The access token: asked of every request that must give it (lesion_core.access decides
which), throttled per client; app.py calls require_token() before anything shows data."""

from __future__ import annotations

import math

import streamlit as st

from app_pages.lang import _
from lesion_core import access


@st.cache_resource(show_spinner=False)
def _announce_token() -> None:
    """Print a token made at start on the server's console, once per server process."""
    import sys

    print(f"Lesion Lab is reachable from other machines: open it with ?token={access.expected_token()} "
          f"at the end of its address (or set {access.TOKEN_ENV} to choose the token)", file=sys.stderr, flush=True)


TOKEN_OK = "access_token_ok"


TOKEN_TRIED = "access_token_tried"  # the last wrong token counted


EXPOSED = "exposed"  # this session's requests must give the token: server files are shared only under the roots


def _request() -> tuple[str | None, dict]:
    """(the address the browser's connection comes from, the headers of its request) for this
    session; (None, {}) when no server runs the page (a page script run alone, in tests). Where
    a server runs but does not tell, the peer is "unknown": not loopback, so the token is asked."""
    from unittest import mock

    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if not runtime.exists() or isinstance(runtime.get_instance(), mock.NonCallableMock):
        return None, {}  # AppTest stands a mock in for the server's runtime
    try:
        context = runtime.get_instance().get_client(get_script_run_ctx().session_id).client_context
        headers = {}
        for name, value in context.headers:  # a header given twice keeps both values
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return context.remote_ip or "unknown", headers
    except Exception:  # a Streamlit without this internal API: ask for the token
        return "unknown", {}


def require_token() -> None:
    """Stop this run, showing only a token prompt, when this request must give the access token
    (access.token_required) and this browser session has not given it (?token=... or the
    prompt). Wrong tokens are throttled per client (access.THROTTLE)."""
    peer, headers = _request()
    st.session_state[EXPOSED] = access.token_required(st.get_option("server.address"), peer, headers)
    if st.session_state.get(TOKEN_OK) or not st.session_state[EXPOSED]:
        return
    if access.token_generated():
        _announce_token()
    client = access.client_key(peer, headers)
    given = st.query_params.get("token") or st.session_state.get("access_token_input")
    wait = access.THROTTLE.wait_s(client) if given else 0
    if given and not wait:
        if access.token_ok(given):
            access.THROTTLE.succeeded(client)
            st.session_state[TOKEN_OK] = True
            st.query_params.pop("token", None)  # out of the address bar and the browser history
            return
        if st.session_state.get(TOKEN_TRIED) != given:  # a rerun with the same wrong token is no new guess
            st.session_state[TOKEN_TRIED] = given
            wait = access.THROTTLE.failed(client)
    st.title(_("Lesion Lab"))
    st.text_input(_("Access token"), type="password", key="access_token_input",
                  help=_("This server is reachable from other machines: give the token printed on its "
                         "console when it started (or the {env} it was started with)", env=access.TOKEN_ENV))
    if wait:
        st.error(_("Too many wrong tokens from your address: try again in {seconds} s.", seconds=math.ceil(wait)),
                 icon=":material/lock:")
    elif given:
        st.error(_("That is not the access token."), icon=":material/lock:")
    st.stop()
