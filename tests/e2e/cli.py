"""Run the installed ``triplegain`` command as a user would, from the repository root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Only the variables a user would have: none of the developer's TRIPLEGAIN_* settings leak into a test.
_BASE_ENV = {key: value for key, value in os.environ.items() if not key.startswith("TRIPLEGAIN_")}


def triplegain_executable() -> str:
    """The console script next to this interpreter (the virtualenv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("triplegain")
    return str(beside) if beside.exists() else (shutil.which("triplegain") or "triplegain")


def cli_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a command runs with: the user's, without TRIPLEGAIN_*, plus ``env``; its data directory is
    the test's (``TRIPLEGAIN_HOME``, set for every test by ``tests/conftest.py``) unless ``env`` names another, so
    no command writes into the developer's own."""
    home = {"TRIPLEGAIN_HOME": os.environ["TRIPLEGAIN_HOME"]} if "TRIPLEGAIN_HOME" in os.environ else {}
    return {**_BASE_ENV, "COLUMNS": "200", **home, **(env or {})}


def run_cli(*args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [triplegain_executable(), *args],
        cwd=REPO,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


STARTED: list[subprocess.Popen[str]] = []
"""Every long-running command started, so that what a failed test leaves running is stopped (``kill_started``)."""


def start_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start a long-running command (the daemon); its stdout and stderr are pipes."""
    process = subprocess.Popen(
        [triplegain_executable(), *args],
        cwd=REPO,
        env=cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    STARTED.append(process)
    return process


def kill_started(since: int) -> None:
    """SIGKILL the commands started since ``len(STARTED)`` was ``since`` that still run, and forget them."""
    for process in STARTED[since:]:
        if process.poll() is None:
            process.kill()
            process.wait()
    del STARTED[since:]
