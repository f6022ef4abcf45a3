"""What the live-console browser tests share: logging in, and changing the world from the server
(the reviewers' `team` fixture is in conftest.py).

Tests of the queue's live rows create and decide requests beside the page, the way agents and
other reviewers would, and watch the page follow.
"""

import threading

from django.db import connection
from playwright.sync_api import Page, expect

from approvals import realtime
from approvals.models import ApprovalRequest
from tests.factories import PASSWORD, ApprovalRequestFactory


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Waiting for a decision")).to_be_visible()
    expect_up_to_date(page)


def expect_up_to_date(page: Page) -> None:
    """Wait until the live list is connected and has nothing left to re-read: its socket is open
    and no re-read or counts refresh is due or on the wire (the list is not `aria-busy`).
    Until then its rows may be replaced under whatever reads them."""
    expect(page.locator("#live-status")).to_have_text("Live")
    expect(page.locator("[aria-busy='true']")).to_have_count(0)


def off_loop(function, /, **kwargs):
    """Run server-side code on its own thread: Playwright's event loop owns this one, and the
    realtime push (async_to_sync) refuses to run inside a running loop."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["value"] = function(**kwargs)
        except BaseException as error:  # re-raised below, in the test's thread
            result["error"] = error
        finally:
            connection.close()  # back to the pool: threads do not do it themselves

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=20)
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


def submit(**fields: object) -> ApprovalRequest:
    """A new request, announced the way approval_request_create announces it."""

    def create() -> ApprovalRequest:
        approval = ApprovalRequestFactory(**fields)
        realtime.publish_approval_changed(approval.pk)
        return approval

    return off_loop(create)


def axe_serious(results) -> list[str]:
    """axe-core's serious and critical violations in a run's results, one line each."""
    return [
        f"{violation['id']} ({violation['impact']}): "
        + "; ".join(node["target"][0] for node in violation["nodes"][:5])
        for violation in results.response["violations"]
        if violation["impact"] in {"serious", "critical"}
    ]
