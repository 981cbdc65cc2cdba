"""The quick way to a running daemon: ``triplegain coordinator status | pause | resume | halt`` over the control
socket of a daemon on this machine.

While it runs, a daemon listens on ``<data directory>/control/<account>.<database>.sock``
(``daemon.control_socket``), readable and writable by its owner only; ``<database>`` is a digest of the server it
uses (``TRIPLEGAIN_DATABASE_URL`` without its password, or the embedded one), so daemons of other databases sharing
a data directory never answer for each other. Over the socket a command does what it does over the database — the
same command row, applied at once by the daemon, the same lines printed (``coordinator.controls``) — but this
process imports only the standard library: no settings, no database driver, so it answers in tens of milliseconds
instead of a second.

The quick way is taken for the forms read here in full: ``coordinator <verb>`` and its options (``--account``,
``--reason``/``-r``, ``--wait``, ``--force`` for resume, ``--flatten`` for halt, ``--healthcheck`` for status),
without ``--account`` only when one daemon of the database listens. For anything else, or when no daemon answers,
``run`` returns None and the command goes the database way (``triplegain.control``), which also reports every
mistake in the arguments.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from triplegain.paths import home_dir

if TYPE_CHECKING:  # each import costs start-up time here, the point of this module (see README, "Performance")
    from collections.abc import Mapping, Sequence
    from typing import Any

SOCKET_DIRECTORY = "control"
DATABASE_URL_ENV = "TRIPLEGAIN_DATABASE_URL"
MAX_WAIT_SECONDS = 3600.0
REPLY_MARGIN_SECONDS = 10.0
"""How much longer than the command's ``--wait`` the client waits for the daemon's answer."""

_FLAGS = {"status": ("--healthcheck",), "pause": (), "resume": ("--force",), "halt": ("--flatten",)}
_VALUES = {"--account": "account", "--reason": "reason", "-r": "reason", "--wait": "wait"}
_STATUS_VALUES = ("--account",)


def database_digest(environ: Mapping[str, str]) -> str:
    """A short digest naming the database a daemon uses: its URL's user, host, port, database and options (never
    the password), or the embedded server."""
    url = environ.get(DATABASE_URL_ENV, "").strip()
    if not url:
        identity = "embedded"
    else:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        identity = f"{parts.scheme}://{parts.username or ''}@{parts.hostname or ''}{port}{parts.path}?{parts.query}"
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


def socket_path(home: Path, account: str, environ: Mapping[str, str]) -> Path:
    """Where the daemon trading ``account`` on the database of ``environ`` listens."""
    return home / SOCKET_DIRECTORY / f"{account}.{database_digest(environ)}.sock"


def request_of(argv: Sequence[str]) -> dict[str, Any] | None:
    """The request ``argv`` (after ``triplegain``) makes of a daemon, or None when it is not one read here."""
    if len(argv) < 2 or argv[0] != "coordinator" or argv[1] not in _FLAGS:
        return None
    verb = argv[1]
    request: dict[str, Any] = {"verb": verb, "account": None, "reason": "", "wait": 5.0}
    request.update(dict.fromkeys((flag.removeprefix("--") for flag in _FLAGS[verb]), False))
    values = _STATUS_VALUES if verb == "status" else tuple(_VALUES)
    words = list(argv[2:])
    while words:
        word = words.pop(0)
        name, equals, inline = word.partition("=")
        if word in _FLAGS[verb]:
            request[word.removeprefix("--")] = True
        elif name in values and (equals or words):
            request[_VALUES[name]] = inline if equals else words.pop(0)
        else:
            return None
    try:
        request["wait"] = float(request["wait"])
    except ValueError:
        return None
    account = request["account"]
    if not 0.1 <= request["wait"] <= MAX_WAIT_SECONDS or (account is not None and account != Path(account).name):
        return None
    return request


def run(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> int | None:
    """Do ``argv`` through a running daemon's control socket and print its answer: the exit code, or None when the
    command is not for the quick way or no daemon answers before it is sent."""
    request = request_of(argv)
    if request is None:
        return None
    path = _listening(home_dir(), request["account"], environ)
    if path is None:
        return None
    request["operator"] = operator_name()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(request["wait"] + REPLY_MARGIN_SECONDS)
        try:
            connection.connect(str(path))
        except OSError:
            return None  # a socket left by a daemon that was killed: the database way
        try:
            connection.sendall(json.dumps(request).encode() + b"\n")
            with connection.makefile("rb") as answers:
                answer = json.loads(answers.readline() or b"null")
        except (OSError, ValueError) as error:
            answer = None
            reason = str(error)
        else:
            reason = "it closed the connection"
    if not isinstance(answer, dict):
        print(
            f"error: the daemon's control socket {path} gave no answer ({reason}); "
            f"see triplegain coordinator status",
            file=sys.stderr,
        )
        return 1
    stream = sys.stderr if answer.get("stderr") else sys.stdout
    for line in answer.get("lines", []):
        print(line, file=stream)
    code: int = answer.get("exit_code", 1)
    return code


def _listening(home: Path, account: str | None, environ: Mapping[str, str]) -> Path | None:
    """The socket of ``account``'s daemon on this database; without an account, that of the one daemon listening."""
    if account is not None:
        path = socket_path(home, account, environ)
        return path if path.is_socket() else None
    sockets = list((home / SOCKET_DIRECTORY).glob(f"*.{database_digest(environ)}.sock"))
    return sockets[0] if len(sockets) == 1 and sockets[0].is_socket() else None


def operator_name() -> str:
    """Who asks, as a command row records it: ``operator:<login>``."""
    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):
        return "operator"
