"""What a control command imports: the CLI loads the modules of other commands only when they run, and package
namespaces import their names on first use (``triplegain.lazy``). Timing is a benchmark's job
(``python -m benchmarks.control``); this checks the imports that make it, in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "triplegain.daemon.run",
    "triplegain.system.assembly",
    "triplegain.review.report",
    "triplegain.store.writer",
    "triplegain.execution.broker",
    "numpy",
    "matplotlib",
    "openai",
    "anthropic",
    "ccxt",
)
PROBE = """
import json, sys
from triplegain.cli import main
try:
    main(["coordinator", "status", "--help"])
except SystemExit:
    pass
import triplegain.config, triplegain.control
print(json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)))
"""


def test_a_control_command_imports_neither_the_daemon_nor_the_agents_nor_the_sdks() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY)], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_a_lazily_exported_name_is_the_module_s_own() -> None:
    from triplegain.market import Candle
    from triplegain.market.candle import Candle as Defined
    from triplegain.store import open_database
    from triplegain.store.database import open_database as opened

    assert (Candle, open_database) == (Defined, opened)
