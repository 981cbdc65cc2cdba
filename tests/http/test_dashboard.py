"""The dashboard in a real browser (Debian's chromium driven by Playwright, no browser download): it loads without
a console error, shows the running replay's equity moving, opens a decision's page with its LLM prompt, and its
pause button pauses the daemon, as the CLI then reports. A screenshot is kept as the test's artifact."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Locator, Page, sync_playwright

from tests.e2e.cli import run_cli
from tests.http.web_daemon import SEED, TOKEN, daemon_env, fresh_database, web_daemon

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(120)]
CHROMIUM = Path("/usr/bin/chromium")
ACCOUNT = "browser"
SCREENSHOT = "dashboard.png"


@pytest.fixture
def database_url(postgres_url: str, migrated_template: str) -> Iterator[str]:
    with fresh_database(postgres_url, migrated_template) as url:  # before the browser: it runs an event loop
        yield url


@pytest.fixture
def browser(database_url: str) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"no browser at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def test_the_dashboard_follows_a_replay_shows_a_decision_and_pauses(
    database_url: str, browser: Browser, tmp_path: Path
) -> None:
    env = daemon_env(database_url, tmp_path / "home", 260)
    args = ["--source", "synthetic", "--seed", SEED, "--account", ACCOUNT, "--speed", "3000"]
    with web_daemon(database_url, env, args) as web:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda message: _keep_error(message, errors))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("dialog", _accept)
        page.add_init_script(f"sessionStorage.setItem('triplegain-token', {TOKEN!r})")
        page.goto(web.url)
        page.wait_for_function("document.querySelector('#state').textContent === 'RUNNING'")
        first_equity = page.text_content("#equity")

        page.check("#filters input[name=conflicts_only]")
        page.click("#filters button[type=submit]")
        row = _row_with_llm_calls(page)
        row.click()
        page.wait_for_selector("#decision-page:not([hidden]) .llm-prompt")
        assert "conflict_resolution" in page.text_content("#llm-calls")
        assert page.locator(".llm-prompt").first.text_content()
        page.go_back()
        page.wait_for_selector("#overview:not([hidden])")
        page.uncheck("#filters input[name=conflicts_only]")
        page.click("#filters button[type=submit]")
        assert page.is_hidden("#decision-page")

        page.wait_for_function(
            "first => document.querySelector('#equity').textContent !== first", arg=first_equity, timeout=60_000
        )
        page.wait_for_function("document.querySelectorAll('#positions tbody tr').length > 0")
        page.screenshot(path=str(tmp_path / SCREENSHOT), full_page=True)

        page.click("#pause")
        page.wait_for_function("document.querySelector('#message').textContent.includes('PAUSED')")
        status = run_cli("coordinator", "status", "--account", ACCOUNT, env=env)
        assert "state        PAUSED" in status.stdout, status.stdout + status.stderr
        page.wait_for_function("document.querySelector('#state').textContent === 'PAUSED'")
        assert errors == []
    copy_to = _artifact_dir()
    if copy_to is not None:
        shutil.copy(tmp_path / SCREENSHOT, copy_to / SCREENSHOT)


def _row_with_llm_calls(page: Page) -> Locator:
    """The first decision row whose LLM-call column is not 0 (the table refreshes every few seconds)."""
    found = page.wait_for_function(
        "() => [...document.querySelectorAll('#decisions tbody tr')]"
        ".find(row => row.children[6].textContent !== '0')?.dataset.id",
        timeout=60_000,
    )
    return page.locator(f"#decisions tbody tr[data-id='{found.json_value()}']")


def _keep_error(message: ConsoleMessage, errors: list[str]) -> None:
    if message.type == "error":
        errors.append(message.text)


def _accept(dialog: Dialog) -> None:
    """Confirm every command; no flatten with a halt."""
    if "flatten" in dialog.message:
        dialog.dismiss()
    else:
        dialog.accept()


def _artifact_dir() -> Path | None:
    """Where CI collects artifacts (``TEST_ARTIFACTS_DIR``); the screenshot stays in the test's tmp dir too."""
    configured = os.environ.get("TEST_ARTIFACTS_DIR")
    return Path(configured) if configured else None
