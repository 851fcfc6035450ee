"""Browser tests: Debian's Chromium driven by Playwright against a real `parley serve`.

Never downloads a browser: the tests use /usr/bin/chromium (installed by `make system-deps`)
and skip, with that reason, only when it is missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.e2e.helpers import Web
from tests.support.server import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Where the committed screenshots go when PARLEY_SCREENSHOTS=1 (else a temp dir).
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module (keeps Playwright's own loop away from asyncio tests)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (`make system-deps` installs the Debian package)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _check(w: Web) -> None:
    w.close()
    assert not w.dialogs, f"a dialog fired: {w.dialogs}"
    assert not w.problems, "\n".join(w.problems)


@pytest.fixture
def web(browser: Browser, server: ServerProcess) -> Iterator[Web]:
    """Browser contexts on the default server; fails the test on CSP errors or dialogs."""
    w = Web(browser, server)
    yield w
    _check(w)


@pytest.fixture
def web_on(browser: Browser) -> Iterator[Callable[[ServerProcess], Web]]:
    """Like `web`, for a server the test started itself (e.g. with other flags)."""
    made: list[Web] = []

    def make(server: ServerProcess) -> Web:
        made.append(Web(browser, server))
        return made[-1]

    yield make
    for w in made:
        _check(w)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Screenshot folder: docs/screenshots with PARLEY_SCREENSHOTS=1, else a temp dir."""
    if os.environ.get("PARLEY_SCREENSHOTS") == "1":
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        return SCREENSHOT_DIR
    return tmp_path
