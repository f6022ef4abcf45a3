"""A reviewer gets a browser notification for a request routed to their team, in real Chromium.

The operating system's notification centre is the edge of the world here: an init script
records what the page hands to the Notification API instead of showing it.
"""

import time

import pytest
from django.db import transaction
from playwright.sync_api import Page, expect

from approvals.notifications import notifications_on_submitted
from tests.factories import PASSWORD, ApprovalRequestFactory, TeamFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_NOTIFICATIONS = """
window.__shown = [];
class RecordedNotification {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.__shown.push({ title: title, body: options.body }); }
}
window.Notification = RecordedNotification;
"""


def _wait_until(page: Page, expression: str, timeout: float = 10) -> None:
    # wait_for_function evaluates through new Function(), which our CSP rightly forbids.
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(200)


def test_a_routed_request_raises_a_browser_notification(live_console, page: Page) -> None:
    rita = UserFactory(username="rita")
    team = TeamFactory(name="payments", members=[rita])
    page.add_init_script(RECORD_NOTIFICATIONS)
    page.goto(f"{live_console.url}/notifications/")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Notifications")).to_be_visible()
    # The first poll only remembers where the reviewer is.
    _wait_until(page, "window.localStorage.getItem('approvals.lastNotificationId') !== null")

    approval = ApprovalRequestFactory(team=team, summary="Refund <b>order</b> 1042")
    with transaction.atomic():
        notifications_on_submitted(approval=approval)

    # The page polls every 15 s.
    _wait_until(page, "window.__shown.length > 0", timeout=25)
    shown = page.evaluate("window.__shown")
    assert shown == [
        {
            "title": "Approval needed: tool “issue_refund”",
            "body": "The agent says “Refund <b>order</b> 1042”",
        }
    ]
