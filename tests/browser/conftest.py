"""Fixtures for the browser tests.

Playwright (pip `playwright==1.65.2`) is only the driver: it never downloads a browser (`playwright install`
is never run). It drives Debian's Chromium at /usr/bin/chromium, which `scripts/install_browser.sh` installs.
Without either, the tests skip and say why. Screenshots of every step go to test-artifacts/browser/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from infra.local.client import running_stack
from infra.local.template import ROOT

CHROMIUM = Path(os.environ.get("PORTRAIT_CHROMIUM", "/usr/bin/chromium"))
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
ARTIFACTS = ROOT / "test-artifacts" / "browser"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the web page in Debian's Chromium (scripts/install_browser.sh)")


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM}: run scripts/install_browser.sh")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_path: Path) -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the Playwright driver is not installed: pip install playwright==1.65.2"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def stack(chromium_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The whole local stack in a subprocess, shared by the module's tests (started after the skip checks)."""
    with running_stack(tmp_path_factory.mktemp("browser-stack")) as state:
        yield state


class PageWatch:
    """What a page did that it should not: uncaught errors, CSP violations, requests off this machine."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.csp: list[str] = []
        self.requests: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)
        page.on("request", lambda request: self.requests.append(request.url))

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.csp.append(message.text)

    def foreign_requests(self) -> list[str]:
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).hostname not in LOCAL_HOSTS
        ]

    def assert_clean(self) -> None:
        assert not self.errors, f"uncaught errors on the page: {self.errors}"
        assert not self.csp, f"Content-Security-Policy violations: {self.csp}"
        assert not self.foreign_requests(), f"requests to third parties: {self.foreign_requests()}"


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., tuple[Any, PageWatch]]]:
    """Open a page in a fresh browser context (its own sessionStorage); closed after the test."""
    contexts: list[Any] = []

    def opener(**options: Any) -> tuple[Any, PageWatch]:
        context = browser.new_context(accept_downloads=True, **options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        return page, PageWatch(page)

    yield opener
    for context in contexts:
        context.close()


@pytest.fixture
def shoot(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """Save a full-page screenshot of a step: test-artifacts/browser/<test>-<nn>-<step>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    for old in ARTIFACTS.glob(f"{test}-*.png"):
        old.unlink()
    counter = iter(range(1, 100))

    def screenshot(page: Any, step: str, full_page: bool = True) -> Path:
        target = ARTIFACTS / f"{test}-{next(counter):02d}-{step}.png"
        page.screenshot(path=str(target), full_page=full_page)
        return target

    return screenshot
