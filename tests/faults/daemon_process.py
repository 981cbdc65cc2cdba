"""``triplegain run`` as a process whose JSON log lines are read as they come, for tests that kill it.

    daemon = DaemonProcess.start(["--source", "synthetic", "--seed", "3"], env=env)
    daemon.wait_for(lambda event: event["event"] == "coordinator started", within=60)
    daemon.kill()                        # SIGKILL, then reaped

Stdout and stderr are each read by a thread into a queue, so a test waits for a log event with a deadline
instead of a sleep, and a chatty daemon never blocks on a full pipe. The daemon runs unbuffered
(``PYTHONUNBUFFERED``), so a line is seen as soon as it is written.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from tests.e2e.cli import start_cli
from triplegain.clock import WallClock

Event = dict[str, Any]
_END = None


@dataclass
class DaemonProcess:
    """A running ``triplegain run --json-logs --log-level info``; its parsed stdout lines and its stderr."""

    process: subprocess.Popen[str]
    events: list[Event] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(cls, args: Sequence[str], *, env: Mapping[str, str], command: str = "run") -> DaemonProcess:
        """``triplegain COMMAND ARGS --json-logs --log-level info`` (``run``, or ``agents``)."""
        process = start_cli(
            command, *args, "--json-logs", "--log-level", "info", env={**env, "PYTHONUNBUFFERED": "1"}
        )
        daemon = cls(process)
        assert process.stdout is not None
        assert process.stderr is not None
        daemon._threads = [
            threading.Thread(target=_pump, args=(process.stdout, daemon._lines.put), daemon=True),
            threading.Thread(target=_pump, args=(process.stderr, daemon._keep_err), daemon=True),
        ]
        for thread in daemon._threads:
            thread.start()
        return daemon

    @property
    def pid(self) -> int:
        return self.process.pid

    def lines(self, within: float) -> Iterator[Event]:
        """Each log event as it arrives (a line that is not JSON is kept as ``{"text": line}``) until stdout
        closes; fails the test when ``within`` seconds pass first."""
        clock = WallClock()
        deadline = clock.monotonic() + within
        while True:
            remaining = deadline - clock.monotonic()
            try:
                line = self._lines.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                raise AssertionError(f"no log line within {within:g} s; stderr: {self.err()[-2000:]}") from None
            if line is _END:
                self._lines.put(_END)  # a later call sees the end too
                return
            event = _parse(line)
            self.events.append(event)
            yield event

    def wait_for(self, wanted: Callable[[Event], bool], *, within: float) -> Event:
        """The first new event ``wanted`` accepts; fails the test if the daemon exits or ``within`` passes first."""
        for event in self.lines(within):
            if wanted(event):
                return event
        raise AssertionError(f"the daemon exited (code {self.process.wait()}) first; stderr: {self.err()[-2000:]}")

    def send(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def kill(self) -> int:
        """SIGKILL (a stopped process dies too); its exit code once reaped."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        return self.finish(within=30)

    def finish(self, *, within: float) -> int:
        """Wait for the process to end and its pipes to be read to the end; its exit code."""
        code = self.process.wait(timeout=within)
        for thread in self._threads:
            thread.join(timeout=within)
        for _ in self.lines(within):
            pass
        return code

    def _keep_err(self, line: str | None) -> None:
        if line is not None:
            self.stderr.append(line)

    def err(self) -> str:
        return "".join(self.stderr)

    def summary(self) -> Event:
        """The run's summary: the last stdout line once the replay has ended (``--json-logs`` prints it as JSON)."""
        last = self.events[-1] if self.events else {}
        assert "final_equity" in last, f"no summary; stderr: {self.err()[-2000:]}"
        return last


def _pump(stream: TextIO, put: Callable[[str | None], None]) -> None:
    for line in stream:
        put(line)
    put(_END)


def _parse(line: str) -> Event:
    try:
        parsed = json.loads(line)
    except json.JSONDecodeError:
        return {"text": line.rstrip("\n")}
    return parsed if isinstance(parsed, dict) else {"text": line.rstrip("\n")}
