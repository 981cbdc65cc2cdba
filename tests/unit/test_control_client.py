"""The quick way's reading of a command: only the forms it reads in full, everything else the database way."""

from __future__ import annotations

from pathlib import Path

import pytest

from triplegain.control_client import database_digest, request_of, socket_path

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["coordinator", "status"], {"verb": "status", "account": None, "healthcheck": False}),
        (["coordinator", "status", "--account", "btc", "--healthcheck"], {"account": "btc", "healthcheck": True}),
        (["coordinator", "pause", "-r", "news at 14:00"], {"verb": "pause", "reason": "news at 14:00", "wait": 5.0}),
        (["coordinator", "pause", "--reason=x", "--wait=2.5"], {"reason": "x", "wait": 2.5}),
        (["coordinator", "resume", "--force", "--account=paper"], {"force": True, "account": "paper"}),
        (["coordinator", "halt", "--flatten", "--reason", "check"], {"flatten": True, "reason": "check"}),
    ],
)
def test_the_forms_it_reads(argv: list[str], expected: dict[str, object]) -> None:
    request = request_of(argv)
    assert request is not None
    assert {key: request[key] for key in expected} == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "x.yaml", "coordinator", "status"],  # a global option may name another database
        ["coordinator"],
        ["coordinator", "stop"],
        ["coordinator", "status", "--force"],  # not an option of status: the database way says so
        ["coordinator", "pause", "--flatten"],
        ["coordinator", "status", "--reason", "x"],
        ["coordinator", "pause", "--wait", "soon"],
        ["coordinator", "pause", "--wait", "0"],
        ["coordinator", "pause", "--wait", "3601"],
        ["coordinator", "pause", "--reason"],
        ["coordinator", "pause", "--account", "../other"],
        ["coordinator", "pause", "--help"],
        ["decisions", "list"],
    ],
)
def test_anything_else_goes_the_database_way(argv: list[str]) -> None:
    assert request_of(argv) is None


def test_a_socket_is_named_for_its_database_never_its_password(tmp_path: Path) -> None:
    with_password = {"TRIPLEGAIN_DATABASE_URL": "postgresql://alice:s3cret@db.example:5432/trading"}
    other_password = {"TRIPLEGAIN_DATABASE_URL": "postgresql://alice:other@db.example:5432/trading"}
    other_database = {"TRIPLEGAIN_DATABASE_URL": "postgresql://alice:s3cret@db.example:5432/research"}
    assert database_digest(with_password) == database_digest(other_password)
    assert database_digest(with_password) != database_digest(other_database)
    assert database_digest({}) != database_digest(with_password)
    path = socket_path(tmp_path, "paper", with_password)
    assert path.parent == tmp_path / "control"
    assert path.name.startswith("paper.")
    assert "s3cret" not in str(path)
