"""The one network probe: lets code that would download fail fast and clearly offline."""

from __future__ import annotations

import socket
import threading


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to host:port opens within timeout seconds, name lookup included.

    The probe runs in a daemon thread because the socket timeout does not cover DNS, and a
    resolver that does not answer can block getaddrinfo for tens of seconds.
    """
    result = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
