"""The Docker deployment as far as this machine can check it without a Docker engine: docker-compose.yml's
structure (parsed as YAML), and docker/entrypoint.sh run with a stand-in ``triplegain`` (exit codes and signals).

What the compose file must say: the daemon has a health check; the database password reaches both containers as
a secret file, never as an environment variable or inside a URL (so ``docker inspect`` cannot show it and no
character of it needs escaping); restarts happen on failure only, and the entry point turns exit 2 (a user's
mistake) into 0 so that a configuration error does not restart in a loop. The profile ``scale-out`` adds NATS with
JetStream, an agents service and two coordinators taking their views from it, one with a hot standby.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from triplegain.errors import UserError
from triplegain.store.database import DATABASE_PASSWORD_FILE_ENV, password_from_file

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
STAND_IN = """#!/bin/sh
if [ "$1" = "serve" ]; then
    trap 'echo "got TERM"; exit 0' TERM
    echo ready
    while :; do sleep 1 & wait $!; done
fi
echo "error: a mistake" >&2
exit "$1"
"""


def test_the_compose_file_keeps_the_password_out_of_the_environment_and_checks_the_daemon() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    daemon, postgres = compose["services"]["triplegain"], compose["services"]["postgres"]
    assert compose["secrets"]["db_password"] == {"environment": "TRIPLEGAIN_DB_PASSWORD"}
    for service in (daemon, postgres):
        assert service["secrets"] == ["db_password"]
        assert not [value for value in service["environment"].values() if "DB_PASSWORD" in str(value)]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert daemon["environment"][DATABASE_PASSWORD_FILE_ENV] == "/run/secrets/db_password"
    assert daemon["environment"]["TRIPLEGAIN_DATABASE_URL"] == "postgresql://triplegain@postgres:5432/triplegain"
    assert daemon["healthcheck"]["test"][:3] == ["CMD", "python", "-c"]
    assert "http://127.0.0.1:8080/healthz" in daemon["healthcheck"]["test"][3]
    assert daemon["command"] == ["run", "--http", "0.0.0.0:8080"]
    assert daemon["ports"] == ["127.0.0.1:8080:8080"]
    assert daemon["restart"] == "on-failure"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY docker/entrypoint.sh /usr/local/bin/triplegain-entrypoint" in dockerfile
    assert 'ENTRYPOINT ["/usr/local/bin/triplegain-entrypoint"]' in dockerfile


def test_the_scale_out_profile_runs_nats_one_agents_service_and_two_coordinators_with_a_standby() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    scaled = {name for name, service in services.items() if service.get("profiles") == ["scale-out"]}
    assert scaled == {"nats", "agents", "coordinator-a", "coordinator-a-standby", "coordinator-b"}
    assert "profiles" not in services["triplegain"]  # the default stays one process, without NATS
    assert "--jetstream" in services["nats"]["command"]
    assert services["agents"]["command"] == ["agents"]
    commands = {name: services[name]["command"] for name in scaled - {"nats", "agents"}}
    assert commands == {
        "coordinator-a": ["run", "--agents", "remote", "--account", "a"],
        "coordinator-a-standby": ["run", "--agents", "remote", "--account", "a", "--standby"],
        "coordinator-b": ["run", "--agents", "remote", "--account", "b"],
    }
    for name in scaled - {"nats"}:
        service = services[name]
        assert service["environment"]["TRIPLEGAIN_NATS_URL"] == "nats://nats:4222"
        assert service["depends_on"]["nats"] == {"condition": "service_healthy"}
        assert service["secrets"] == ["db_password"]
        assert not [value for value in service["environment"].values() if "DB_PASSWORD" in str(value)]
    for account in ("a", "b"):
        check = services[f"coordinator-{account}"]["healthcheck"]["test"]
        assert check == ["CMD", "triplegain", "coordinator", "status", "--account", account, "--healthcheck"]
    assert "natsdata" in compose["volumes"]


@pytest.fixture
def path_with_stand_in(tmp_path: Path) -> dict[str, str]:
    stand_in = tmp_path / "triplegain"
    stand_in.write_text(STAND_IN)
    stand_in.chmod(0o755)
    return {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize(("code", "passed_on"), [(0, 0), (1, 1), (2, 0), (75, 75)])
def test_exit_2_is_not_a_failure_to_restart_and_others_pass_through(
    path_with_stand_in: dict[str, str], code: int, passed_on: int
) -> None:
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), str(code)], env=path_with_stand_in, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == passed_on
    assert "error: a mistake" in done.stderr
    assert ("not restarted until it is fixed" in done.stderr) is (code == 2)


def test_sigterm_reaches_triplegain_and_its_exit_code_is_passed_on(path_with_stand_in: dict[str, str]) -> None:
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "serve"], env=path_with_stand_in, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"  # the stand-in runs and waits for a signal
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert process.stdout.read() == "got TERM\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_password_file_is_read_whole_whatever_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATABASE_PASSWORD_FILE_ENV, raising=False)
    assert password_from_file() is None
    secret = tmp_path / "db_password"
    secret.write_text("p@ss:w/o#rd %20\n")
    monkeypatch.setenv(DATABASE_PASSWORD_FILE_ENV, str(secret))
    assert password_from_file() == "p@ss:w/o#rd %20"
    monkeypatch.setenv(DATABASE_PASSWORD_FILE_ENV, str(tmp_path / "missing"))
    with pytest.raises(UserError) as missing:
        password_from_file()
    assert str(missing.value) == (
        f"{DATABASE_PASSWORD_FILE_ENV}: cannot read {tmp_path / 'missing'} (No such file or directory)"
    )
