"""Where the HTTP surface may listen: without ``TRIPLEGAIN_HTTP_TOKEN`` only on a loopback address (anyone on the
machine may then read and command, as the CLI may). Standard library only: the CLI checks it before anything starts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from triplegain.errors import UserError

TOKEN_VARIABLE = "TRIPLEGAIN_HTTP_TOKEN"


def http_token(environ: Mapping[str, str]) -> str | None:
    """The bearer token the HTTP surface asks for; None when unset or blank."""
    token = environ.get(TOKEN_VARIABLE, "").strip()
    return token or None


def is_loopback(host: str) -> bool:
    """``localhost``, or an address of the loopback network (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """``UserError`` when ``host`` is reachable from other machines and no token protects it."""
    if token is None and not is_loopback(host):
        raise UserError(
            f"--http {host}: serving beyond this machine needs a bearer token; set {TOKEN_VARIABLE} "
            "(or listen on 127.0.0.1)"
        )
