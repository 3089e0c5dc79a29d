"""Fixtures of the browser tests: the app serving the example case over real HTTP, and
Debian's Chromium driven by Playwright (never a browser downloaded by the test tool).

Without /usr/bin/chromium (``make browser`` installs it) the tests fail when ``CI=true``
and skip elsewhere, saying so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhir_service.api import create_app
from fhir_service.cli.load import load_all, providers_first
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore, upgrade
from tests.served import serve

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CASE = REPO_ROOT / "examples" / "ivc-leiomyosarcoma" / "case.yaml"
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
UNREACHABLE_REMOTE = "http://127.0.0.1:9/fhir"
"""A sync remote the served app allows and no server answers (port 9, discard)."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def served_case(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on a fresh SQLite file holding the example case, served by uvicorn on a free
    port in a background thread; yields the origin (``http://127.0.0.1:PORT``)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'fhir.sqlite3'}"
    upgrade(url)
    store = SqlStore.open(url)
    try:
        report = load_all(store, providers_first([EXAMPLE_CASE], anchor_date=date(2022, 3, 1)))
    finally:
        store.close()
    assert not report.failed, report.failed
    settings = Settings(database_url=url, base_url=None, sync_remotes=[UNREACHABLE_REMOTE])
    with serve(create_app(settings)) as origin:
        yield origin


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's Chromium, or a failure in CI / a skip elsewhere when it is missing."""
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"Chromium not installed at {CHROMIUM}: run `make browser`"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="package")
def browser(chromium_path: Path) -> Iterator[Any]:
    """A headless Chromium launched by Playwright through ``executable_path``, for the tests
    of this package only: Playwright's sync API keeps an event loop running on the main
    thread while it is open, and ``asyncio.run`` in a later test would refuse to start."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Watched:
    """A page with every JavaScript error and console error it produced."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def script_errors(self) -> list[str]:
        """Errors of the scripts: uncaught exceptions and console errors, leaving out the
        browser's own notes on HTTP answers (the pages probe optional endpoints)."""
        return [e for e in self.errors if "Failed to load resource" not in e]


def _watch(page: Any) -> Watched:
    watched = Watched(page)
    page.on("pageerror", lambda exc: watched.errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: watched.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    return watched


@pytest.fixture
def laptop(browser: Any) -> Iterator[Watched]:
    """A page in a laptop-sized window."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        yield _watch(context.new_page())
    finally:
        context.close()


@pytest.fixture
def phone(browser: Any) -> Iterator[Watched]:
    """A page in a phone-sized window."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    try:
        yield _watch(context.new_page())
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Write a full-page screenshot to test-artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
