"""net.reachable: the probe that lets downloads fail fast offline."""

from __future__ import annotations

import socket
import time

from lesion_core.net import reachable


def test_a_closed_port_is_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends
    assert not reachable("127.0.0.1", port, timeout=1)


def test_a_listening_port_is_reachable():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert reachable(*server.getsockname(), timeout=1)


def test_an_unresolvable_name_answers_within_the_timeout():
    start = time.monotonic()
    assert not reachable("no-such-host.invalid", 443, timeout=2)
    assert time.monotonic() - start < 5
