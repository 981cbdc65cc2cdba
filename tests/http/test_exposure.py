"""Where ``--http`` may listen: without a token only on loopback, refused at once (exit 2) otherwise."""

from __future__ import annotations

import pytest

from tests.e2e.cli import run_cli
from triplegain.errors import UserError
from triplegain.http.exposure import TOKEN_VARIABLE, check_exposure, http_token, is_loopback

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.4", False),
        ("example.org", False),
        ("::", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_only_loopback_without_a_token() -> None:
    check_exposure("127.0.0.1", None)
    check_exposure("0.0.0.0", "a-token")
    with pytest.raises(UserError, match=TOKEN_VARIABLE):
        check_exposure("0.0.0.0", None)
    assert http_token({TOKEN_VARIABLE: "  "}) is None
    assert http_token({TOKEN_VARIABLE: " t "}) == "t"


def test_run_refuses_a_public_address_without_a_token_before_anything_starts() -> None:
    refused = run_cli("run", "--source", "synthetic", "--http", "0.0.0.0:8080")
    assert refused.returncode == 2
    assert f"set {TOKEN_VARIABLE}" in refused.stderr
    assert "Traceback" not in refused.stderr
    malformed = run_cli("run", "--source", "synthetic", "--http", "localhost")
    assert malformed.returncode == 2
    assert "HOST:PORT" in malformed.stderr
