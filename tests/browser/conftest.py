"""Headless Chromium for the browser login tests, driven by Playwright.

Skipped, with the reason, only when Debian's chromium (/usr/bin/chromium) or the playwright package
is missing; under CI=true a missing one fails them instead (CI installs both). Screenshots go to
$MCP_SYNC_AUTH_ARTIFACTS, else to a folder under pytest's temporary path; the summary at the end of
the run names it.
"""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("MCP_SYNC_AUTH_CHROMIUM", "/usr/bin/chromium")
# Debian's chromium, headless, with nothing of its own talking to the network or a profile kept.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]
ARTIFACTS_VARIABLE = "MCP_SYNC_AUTH_ARTIFACTS"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


def _missing():
    if sync_playwright is None:
        return "the playwright package is not installed (pip install playwright; no `playwright install` needed)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


def _need_chromium():
    why = _missing()
    if why is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and the browser login tests cannot run: {why}")
    pytest.skip(f"the browser login tests need headless Chromium: {why}")


_saved = []


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """Where the screenshots go (kept after the run)."""
    given = os.environ.get(ARTIFACTS_VARIABLE)
    folder = Path(given) if given else tmp_path_factory.mktemp("browser-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def screenshot(artifacts, request):
    """``screenshot(page, "name")`` saves ``<test>-<name>.png`` in the artifacts folder."""

    def take(page, name):
        path = artifacts / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        _saved.append(path)
        return path

    return take


@pytest.fixture(scope="session")
def _playwright():
    _need_chromium()
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture
def chromium(tmp_path, _playwright):
    """A fresh headless Chromium (its own new profile) for one test."""
    profile = tmp_path / "chromium-profile"
    context = _playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    context.set_default_timeout(30_000)
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    if _saved:
        folders = sorted({str(path.parent) for path in _saved})
        terminalreporter.write_line(f"browser login screenshots ({len(_saved)}): {', '.join(folders)}")
