"""The ``triplegain`` command line: every user-facing behaviour starts here.

``main`` first offers the command to a running daemon's control socket (``control_client``: ``triplegain
coordinator status | pause | resume | halt`` answered by the daemon on this machine, importing nothing but the
standard library), and otherwise runs the full command tree (``commands``: every command, their options, and
errors as one line with an exit code, 2 for a user's mistake).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from triplegain import control_client


def main(args: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the command ``args`` names (default ``sys.argv``)."""
    argv = list(sys.argv[1:] if args is None else args)
    code = control_client.run(argv)
    if code is not None:
        sys.exit(code)
    from triplegain.commands import run

    run(argv)
