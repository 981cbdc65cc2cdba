"""README's own path, as written and in order, on one database: the Quickstart's run, then the commands of its
"Then, for example" block (the real BTC replay on its own account, status, the decision list, results, the report,
the accounts). The commands are read from README.md, so the README cannot drift from what works.

Needs the real candles in ``../shared/data`` (beside the checkout); skipped, saying so, where they are absent.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.e2e.cli import REPO, run_cli

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(420)]

README = REPO / "README.md"
DATA = REPO.parent / "shared" / "data" / "BTC_USDT-5m.csv"


def quickstart_commands() -> list[list[str]]:
    """The ``triplegain …`` commands of the Quickstart section's code blocks, in order, without comments."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            for part in line.split("#", 1)[0].split("&&"):
                words = shlex.split(part)
                if words[:1] == ["triplegain"]:
                    commands.append(words[1:])
    return commands


@pytest.mark.skipif(not DATA.exists(), reason=f"the real candles are not here ({DATA})")
def test_the_readme_path_works_as_written(empty_database_url: str, tmp_path: Path) -> None:
    commands = quickstart_commands()
    assert [command[:1] for command in commands] == [
        ["run"],
        ["run"],
        ["coordinator"],
        ["decisions"],
        ["results"],
        ["report"],
        ["account"],
    ]
    env = {"TRIPLEGAIN_DATABASE_URL": empty_database_url}
    outputs = []
    for command in commands:
        if command[0] == "report":  # written into this test's folder, not the checkout
            command = [*command[: command.index("--out") + 1], str(tmp_path / "report.html")]
        done = run_cli(*command, env=env, timeout=300)
        assert done.returncode == 0, (command, done.stderr[-2000:])
        assert "Traceback" not in done.stderr
        outputs.append(done.stdout)
    quickstart, btc, status, decisions, results, report, accounts = outputs
    assert "account       paper" in quickstart
    assert "account       btc" in btc
    assert "candles       10,999" in btc
    assert "round trips   " in btc
    assert status.startswith("account      btc on ")
    assert decisions.startswith("decisions of run 2 (account btc): 10 of ")
    assert "max drawdown  15.03 %" in results
    assert "halt          halt by breaker:max_drawdown" in results
    page = Path(report.strip()).read_text(encoding="utf-8")
    assert "<h2>Results</h2>" in page
    assert "halt (breaker)" in page  # the breaker's halt, marked on the equity plot
    assert [line.split()[0] for line in accounts.splitlines()[1:]] == ["btc", "paper"]
