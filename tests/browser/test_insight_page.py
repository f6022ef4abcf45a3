"""The insight dashboard in real Chromium at phone width: its wide tables scroll inside their
cards, by touch or by keyboard, instead of running off the side of the screen."""

from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone
from playwright.sync_api import Page, expect

from approvals.models import Status
from tests.browser.live import axe_serious, log_in, off_loop
from tests.factories import AgentFactory, UserFactory, decided_approval

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_at_phone_width_the_wide_tables_scroll_inside_their_cards(
    live_console, phone_page: Page, team, artifacts
) -> None:
    def decided() -> None:
        now = timezone.now()
        decided_approval(
            agent=AgentFactory(name="refund-bot"),
            status=Status.DENIED,
            reviewer=UserFactory(username="rita"),
            created_at=now - timedelta(days=1, minutes=1),
            decided_at=now - timedelta(days=1),
        )
        UserFactory(username="boss", is_staff=True)

    off_loop(decided)
    page = phone_page
    log_in(page, live_console.url, "boss")
    page.goto(f"{live_console.url}/insight/")
    expect(page.locator("#drift table")).to_be_visible()
    page.screenshot(path=str(artifacts / "insight-phone.png"))

    # Nothing runs off the side: a phone would zoom the whole page out to fit it.
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"
    # The drift table is wider than the screen: its last column is reached by scrolling its box.
    scroller = page.locator("#drift .table-scroll")
    assert scroller.evaluate("el => el.scrollWidth > el.clientWidth")
    assert axe_serious(Axe().run(page)) == []


def test_at_desktop_width_a_tool_name_stays_on_one_line(live_console, page: Page, team) -> None:
    """The drift table's first column is narrow next to ten others: its tool name was broken
    mid-word ("send_emai" / "l") to make it narrower still."""

    def decided() -> None:
        now = timezone.now()
        agent = AgentFactory(name="support-agent")
        for tool in ("send_email", "issue_refund_to_customer"):
            decided_approval(
                agent=agent,
                tool=tool,
                status=Status.APPROVED,
                reviewer=UserFactory(),
                created_at=now - timedelta(hours=2),
                decided_at=now - timedelta(hours=1),
            )
        UserFactory(username="boss", is_staff=True)

    off_loop(decided)
    page.set_viewport_size({"width": 1400, "height": 900})
    log_in(page, live_console.url, "boss")
    page.goto(f"{live_console.url}/insight/")
    names = page.locator("#drift table td:first-child code")
    expect(names).to_have_count(2)
    lines = names.evaluate_all("codes => codes.map(code => code.getClientRects().length)")
    assert lines == [1, 1], lines
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"
