"""``triplegain db migrate`` and ``db status`` as a user runs them, against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.cli import run_cli
from triplegain.store import describe_url

pytestmark = pytest.mark.postgres


def test_migrate_then_status_on_a_server_given_by_url(empty_database_url: str) -> None:
    env = {"TRIPLEGAIN_DATABASE_URL": empty_database_url}
    first = run_cli("db", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    server = describe_url(empty_database_url)
    assert first.stdout.splitlines() == [
        f"{server}: applied 001_initial.sql",
        f"{server}: applied 002_coordinator.sql",
        f"{server}: applied 003_execution.sql",
        f"{server}: applied 004_llm_call_provenance.sql",
        f"{server}: applied 005_command_idempotency.sql",
        f"{server}: applied 006_alerts.sql",
    ]
    again = run_cli("db", "migrate", env=env)
    assert again.stdout.splitlines() == [f"{server}: schema up to date"]
    status = run_cli("db", "status", env=env)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == f"server: {server}"
    assert lines[1] == "migrations: 6 applied, 0 pending"
    assert lines[2].split()[:3] == ["001", "initial", "applied"]
    assert lines[3].split()[:3] == ["002", "coordinator", "applied"]
    assert lines[4].split()[:3] == ["003", "execution", "applied"]
    assert lines[5].split()[:3] == ["004", "llm_call_provenance", "applied"]
    assert lines[6].split()[:3] == ["005", "command_idempotency", "applied"]
    assert lines[7].split()[:3] == ["006", "alerts", "applied"]


def test_status_before_migrating_lists_pending(empty_database_url: str) -> None:
    status = run_cli("db", "status", env={"TRIPLEGAIN_DATABASE_URL": empty_database_url})
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[1:] == [
        "migrations: 0 applied, 6 pending",
        "  001 initial                  pending",
        "  002 coordinator              pending",
        "  003 execution                pending",
        "  004 llm_call_provenance      pending",
        "  005 command_idempotency      pending",
        "  006 alerts                   pending",
    ]


def test_the_embedded_server_is_started_migrated_and_stopped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run_cli("db", "migrate", env={"TRIPLEGAIN_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    server = f"embedded PostgreSQL in {home / 'pgdata'}"
    applied = (
        "001_initial.sql",
        "002_coordinator.sql",
        "003_execution.sql",
        "004_llm_call_provenance.sql",
        "005_command_idempotency.sql",
        "006_alerts.sql",
    )
    assert result.stdout == "".join(f"{server}: applied {name}\n" for name in applied)
    assert result.stderr == ""
    assert not (home / "pgdata" / "postmaster.pid").exists(), "the server was left running"
    status = run_cli("db", "status", env={"TRIPLEGAIN_HOME": str(home)})
    assert status.stdout.splitlines()[1] == "migrations: 6 applied, 0 pending"


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    result = run_cli("db", "status", env={"TRIPLEGAIN_DATABASE_URL": "postgresql://u:canary-pw@127.0.0.1:9/x"})
    assert result.returncode == 1
    assert result.stderr == "error: cannot connect to 127.0.0.1:9/x: connection refused\n"
    assert "canary-pw" not in result.stdout + result.stderr


def test_a_url_that_is_not_postgresql_is_the_users_mistake() -> None:
    result = run_cli("db", "migrate", env={"TRIPLEGAIN_DATABASE_URL": "mysql://root:pw@127.0.0.1/x"})
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "pw" not in result.stderr
