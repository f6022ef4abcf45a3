"""Real Chromium, driven by Playwright, against the live console.

Never `playwright install`: the machine's Debian chromium is used. Without it the browser tests
skip with a message, except under CI=true, where a missing browser fails the run.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.factories import TeamFactory, UserFactory

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make to set
# up data are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).exists():
        return
    message = (
        "Chromium not found: install it with `apt-get install chromium` (or set CHROMIUM_PATH)"
    )
    if os.environ.get("CI") == "true":
        raise pytest.UsageError(f"CI=true and {message}")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=message))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def team(transactional_db):
    """The reviewers' team of the live-console tests: alice and bob."""
    return TeamFactory(
        name="payments", members=[UserFactory(username="alice"), UserFactory(username="bob")]
    )


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    """A second page, in a phone's viewport (390x844, touch)."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    yield context.new_page()
    context.close()
