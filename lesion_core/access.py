"""Who may see what when the app is reachable from other machines: data roots and the access token.

Folder datasets are opened only under the allowed roots ($LESION_LAB_DATA_ROOTS, else the
folder the app was started in; the cache, which holds the demo and uploaded ZIPs, always),
so a visitor cannot browse the server's other folders by typing paths.

The access token ($LESION_LAB_TOKEN, else one made at start and printed on the server's
console) is asked before any page shows data (token_required):
- always when $LESION_LAB_TOKEN is set: a proxy in front of the app cannot skip it;
- else when the server listens on anything but loopback, or the browser's connection does not
  come from this machine, or the address the browser asked for (the Host header) is not
  loopback (a TCP forwarder on 0.0.0.0: the browser names the forwarder's public address),
  or the request carries forwarding headers (X-Forwarded-For, Forwarded, X-Real-IP) that are
  not all loopback or come from a peer not listed in $LESION_LAB_TRUSTED_PROXIES.
Wrong tokens are counted per client (Throttle): from the fifth in a row, that client waits.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from lesion_core import paths
from lesion_core.errors import DataError
from lesion_core.i18n import N_

ROOTS_ENV = "LESION_LAB_DATA_ROOTS"  # folders separated by os.pathsep (":" on Linux and macOS)
TOKEN_ENV = "LESION_LAB_TOKEN"
# Proxies whose forwarding headers are believed (addresses separated by commas).
TRUSTED_PROXIES_ENV = "LESION_LAB_TRUSTED_PROXIES"
_FORWARD_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
# The folder the process started in, taken at import, before anything could change it.
START_DIR = Path.cwd()
_GENERATED_TOKEN = secrets.token_urlsafe(24)


def allowed_roots() -> list[Path]:
    """Folders under which datasets may be opened (resolved): $LESION_LAB_DATA_ROOTS or the
    start folder, plus the cache and the folder $LESION_LAB_DATA names (chosen by whoever
    started the server)."""
    configured = [p for p in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    roots = [Path(p).expanduser() for p in configured] or [START_DIR]
    roots.append(paths.cache_dir())
    if os.environ.get("LESION_LAB_DATA"):
        roots.append(Path(os.environ["LESION_LAB_DATA"]).expanduser())
    return [root.resolve() for root in roots]


def check_data_folder(folder) -> Path:
    """The resolved folder when it is a folder under an allowed root; DataError otherwise, with
    the same message whether it exists or not (a visitor learns nothing about the server's
    folders) and naming only what the visitor typed."""
    typed = str(folder)
    try:
        resolved = Path(folder).expanduser().resolve()  # symlinks followed: a link out is refused
        allowed = any(resolved.is_relative_to(root) for root in allowed_roots()) and resolved.is_dir()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        allowed = False
    if not allowed:
        raise DataError(N_("dataset folder not available: {folder} is not a folder under the folders this "
                           "server shares: the folder the app was started in, or those its {setting} setting "
                           "lists. Copy the data there, or start the app again with {setting}=/path/to/data").format(
            folder=repr(typed), setting=ROOTS_ENV))
    return resolved


def check_weights_file(path) -> Path:
    """The resolved path when it is a file under an allowed root (uploaded checkpoints live in
    the cache, always one); DataError otherwise, the same whether the file exists or not."""
    typed = str(path)
    try:
        resolved = Path(path).expanduser().resolve()
        allowed = any(resolved.is_relative_to(root) for root in allowed_roots()) and resolved.is_file()
    except (OSError, RuntimeError, ValueError):
        allowed = False
    if not allowed:
        raise DataError(N_("weights file not available: {path} is not a file under the folders this server shares; "
                           "upload the checkpoint instead").format(path=repr(typed)))
    return resolved


def is_loopback(address: str | None) -> bool:
    """True when a server bound to address is reachable from this machine only. Unset or
    empty means every interface (Streamlit's default)."""
    if not address:
        return False
    if address.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _host_of(host_header: str) -> str:
    """The host part of a Host header ("127.0.0.1:8501" -> "127.0.0.1", "[::1]:80" -> "::1")."""
    host = host_header.strip()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _forwarded_addresses(headers: dict) -> list[str]:
    """The client addresses a proxy wrote into forwarding headers (every hop)."""
    found = []
    for name, value in headers.items():
        name = name.lower()
        if name == "forwarded":
            for part in value.replace(",", ";").split(";"):
                key, _, hop = part.strip().partition("=")
                if key.strip().lower() == "for":
                    found.append(hop.strip().strip('"'))
        elif name in _FORWARD_HEADERS:
            found += [hop.strip() for hop in value.split(",")]
    return found


def trusted_proxies() -> set[str]:
    """Peers whose forwarding headers are believed: $LESION_LAB_TRUSTED_PROXIES."""
    return {p.strip() for p in os.environ.get(TRUSTED_PROXIES_ENV, "").split(",") if p.strip()}


def token_required(address: str | None, peer: str | None = None, headers: dict | None = None) -> bool:
    """Whether a request must give the access token. address: the address the server listens
    on; peer: the address the browser's connection comes from (None where no browser is behind
    the session, as in tests that run a page script alone); headers: the request's headers."""
    if os.environ.get(TOKEN_ENV) or not is_loopback(address):
        return True  # a token that is set is always asked, whatever is in front of the app
    if peer is None:
        return False
    headers = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    if not is_loopback(peer) or not is_loopback(_host_of(headers.get("host", "localhost"))):
        return True
    hops = _forwarded_addresses(headers)
    if hops and (peer not in trusted_proxies() or not all(is_loopback(_host_of(h)) for h in hops)):
        return True  # a proxy on this machine, forwarding someone from elsewhere
    return False


class Throttle:
    """Wrong tokens per client (its address): from the FREE+1-th in a row, the client is locked
    out for 2, 4, 8 ... seconds (at most MAX_S), the right token included; a right token
    given when not locked out clears the count. One per server process, shared by sessions."""

    FREE = 4
    MAX_S = 300.0

    def __init__(self, clock=None):
        import threading
        import time

        self._clock = clock or time.monotonic
        self._failures: dict[str, tuple[int, float]] = {}  # client -> (wrong in a row, locked until)
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds this client must still wait before a token is checked (0 when it may try)."""
        with self._lock:
            _, until = self._failures.get(client, (0, 0.0))
            return max(0.0, until - self._clock())

    def failed(self, client: str) -> float:
        """Count a wrong token; the seconds the client is now locked out (0 while it is free)."""
        with self._lock:
            count = self._failures.get(client, (0, 0.0))[0] + 1
            wait = min(self.MAX_S, 2.0 ** (count - self.FREE)) if count > self.FREE else 0.0
            self._failures[client] = (count, self._clock() + wait)
            return wait

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


THROTTLE = Throttle()


def client_key(peer: str | None, headers: dict | None = None) -> str:
    """Whom Throttle counts: the connection's address, or the client a trusted proxy names."""
    hops = _forwarded_addresses({str(k).lower(): str(v) for k, v in (headers or {}).items()})
    if hops and peer in trusted_proxies():
        return hops[0]
    return peer or "local"


def expected_token() -> str:
    """$LESION_LAB_TOKEN, else the token made when this process started."""
    return os.environ.get(TOKEN_ENV) or _GENERATED_TOKEN


def token_generated() -> bool:
    """True when the token was made here (so the server must print it), not set by the user."""
    return not os.environ.get(TOKEN_ENV)


def token_ok(given) -> bool:
    """Whether given is the access token (compared in constant time)."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected_token().encode())
