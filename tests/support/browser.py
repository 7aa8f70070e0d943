"""Headless Chromium for page tests: Debian's /usr/bin/chromium driven by the `playwright` package.

Playwright's own browser download does not work here (shared/NOTES.md), so it launches the
system Chromium. Tests that need it skip, saying why, when either piece is missing. CI installs
them with `apt-get install -y chromium chromium-driver` and `pip install playwright`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.processes import ROOT

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = ROOT / "artifacts"


def missing_browser() -> str | None:
    """Why no browser test can run here, or None when one can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install playwright (it needs no browser download)"
    return None


# For a test module: `pytestmark = needs_browser`, checked before any fixture starts a process.
needs_browser = pytest.mark.skipif(missing_browser() is not None, reason=missing_browser() or "")


@contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator:
    """A fresh page in headless Chromium; the browser is closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def watch_csp(page) -> list[str]:
    """The Content-Security-Policy violations Chromium reports on `page` from now on (it logs
    each refused script, style or connection to the console)."""
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    return violations


def admin_login(page, base_url: str, username: str, password: str, next_path: str) -> None:
    """Log in through the admin's own login form, landing on `next_path`."""
    page.goto(f"{base_url}/admin/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}{next_path}")


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
