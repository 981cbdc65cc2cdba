"""The import rules of docs/ARCHITECTURE.md hold: a module imports only its own layer or lower, and the pure
cores (decisions, risk, fills, accounting) import nothing that does I/O.

The rules are import-linter contracts in pyproject.toml. The first test checks the package against them; the
second proves the check has teeth: a contract breaks on a copy of the package given one forbidden import.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def _lint(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contract, on the ``triplegain`` package found in ``package_parent``."""
    shutil.copy(ROOT / "pyproject.toml", package_parent / "pyproject.toml")
    return subprocess.run(
        [sys.executable, "-c", "import sys, importlinter.cli as c; sys.exit(c.lint_imports(no_cache=True))"],
        cwd=package_parent,
        env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=50,
    )


def test_the_package_keeps_its_layers(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "triplegain", tmp_path / "triplegain")
    result = _lint(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("bus/bus.py", "import triplegain.config"),
        ("risk/models.py", "import triplegain.agents.regime"),
        ("store/decisions.py", "import triplegain.coordinator.state"),
        ("execution/exchange.py", "import triplegain.store.execution"),
        ("coordinator/decision.py", "import triplegain.bus"),
        ("model/names.py", "import triplegain.market.candle"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, upward: str) -> None:
    shutil.copytree(ROOT / "triplegain", tmp_path / "triplegain")
    target = tmp_path / "triplegain" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{upward}  # an upward import\n", encoding="utf-8")
    result = _lint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    imported = upward.removeprefix("import ")
    assert imported in result.stdout


def test_docs_architecture_lists_the_contracts_layers() -> None:
    """The layer table a reader sees in docs/ARCHITECTURE.md is the contract the test above checks."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    [layers] = [contract["layers"] for contract in contracts["contracts"] if contract["type"] == "layers"]
    declared = [sorted(re.split(r"\s*[|:]\s*", layer)) for layer in layers]
    table = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| \d+ \| (.+?) \| ", table, flags=re.MULTILINE)
    documented = [sorted(re.findall(r"`([a-z_]+)`", row)) for row in rows]
    assert documented == declared
