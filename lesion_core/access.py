"""Who may see what when the app is reachable from other machines: data roots and the access token.

Folder datasets are opened only under the allowed roots ($LESION_LAB_DATA_ROOTS, else the
folder the app was started in; the cache, which holds the demo and uploaded ZIPs, always),
so a visitor cannot browse the server's other folders by typing paths. A server listening
on anything but loopback asks for an access token ($LESION_LAB_TOKEN, else one made at
start and printed on the server's console) before any page shows data.
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


def token_required(address: str | None) -> bool:
    """Whether a server bound to address must ask for the access token."""
    return not is_loopback(address)


def expected_token() -> str:
    """$LESION_LAB_TOKEN, else the token made when this process started."""
    return os.environ.get(TOKEN_ENV) or _GENERATED_TOKEN


def token_generated() -> bool:
    """True when the token was made here (so the server must print it), not set by the user."""
    return not os.environ.get(TOKEN_ENV)


def token_ok(given) -> bool:
    """Whether given is the access token (compared in constant time)."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected_token().encode())
