"""The live lists miss nothing around their socket's opening.

A page's rows are rendered before its websocket joins its groups: whatever happens in between is
pushed to nobody. And the rows the page then re-reads are a snapshot, older than a push that
arrives while the re-read is on the wire. Both gaps are opened on purpose here, in a fixed order.
"""

import re
import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection
from playwright.sync_api import APIResponse, Page, Request, Route, WebSocketRoute, expect

from approvals import realtime
from approvals.models import ApprovalRequest
from approvals.reviews import approval_request_review_deny
from tests.factories import PASSWORD, ApprovalRequestFactory, TeamFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Waiting for a decision")).to_be_visible()
    expect(page.locator("#live-status")).to_have_text("Live")


def _off_loop(function, /, **kwargs):  # type: ignore[no-untyped-def]
    """Run server-side code on its own thread: Playwright's event loop owns this one, and the
    realtime push (async_to_sync) refuses to run inside a running loop."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["value"] = function(**kwargs)
        except BaseException as error:  # re-raised below, in the test's thread
            result["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=20)
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


def _submit(**fields: object) -> ApprovalRequest:
    """A new request, announced the way approval_request_create announces it."""

    def create() -> ApprovalRequest:
        approval = ApprovalRequestFactory(**fields)
        realtime.publish_approval_changed(approval.pk)
        return approval

    return _off_loop(create)  # type: ignore[no-any-return]


@pytest.fixture
def team(transactional_db):  # type: ignore[no-untyped-def]
    return TeamFactory(
        name="payments", members=[UserFactory(username="alice"), UserFactory(username="bob")]
    )


def _navigations(page: Page) -> list[str]:
    """Every document the page loads from now on: a reload would show up here."""
    loaded: list[str] = []

    def seen(request: Request) -> None:
        if request.is_navigation_request() and request.frame == page.main_frame:
            loaded.append(request.url)

    page.on("request", seen)
    return loaded


def _open_socket_after(page: Page, then: Callable[[], object]) -> None:
    """Hold the page's websocket until `then()` has run: the page is rendered, its socket not
    yet in its groups, so whatever `then` changes reaches the page by no push."""

    def route(ws: WebSocketRoute) -> None:
        then()
        ws.connect_to_server()

    page.route_web_socket("**/ws/queue/*", route)


def test_a_request_created_before_the_socket_opens_appears_without_a_reload(
    live_console, page: Page, team
) -> None:  # type: ignore[no-untyped-def]
    _log_in(page, live_console.url, "alice")
    created: list[ApprovalRequest] = []
    _open_socket_after(page, lambda: created.append(_submit(team=team, tool="in_the_gap")))
    loaded = _navigations(page)

    page.goto(f"{live_console.url}/")
    expect(page.locator("#live-status")).to_have_text("Live")
    assert len(created) == 1, "the socket was never held: the gap was not opened"
    expect(page.locator(f"#approval-{created[0].code}")).to_be_visible()
    expect(page.locator("#pending-count")).to_have_text("1")
    assert loaded == [f"{live_console.url}/"]  # no reload


def test_a_decision_made_before_the_socket_opens_appears_in_the_history(
    live_console, page: Page, team
) -> None:  # type: ignore[no-untyped-def]
    approval = _submit(team=team, tool="decided_in_the_gap")
    _log_in(page, live_console.url, "alice")
    bob = team.members.get(username="bob")
    denied: list[bool] = []

    def deny() -> None:
        _off_loop(approval_request_review_deny, approval=approval, reviewer=bob, reason="No.")
        denied.append(True)

    _open_socket_after(page, deny)
    loaded = _navigations(page)

    page.goto(f"{live_console.url}/history/")
    expect(page.locator("#live-status")).to_have_text("Live")
    assert denied, "the socket was never held: the gap was not opened"
    row = page.locator(f"#approval-{approval.code}")
    expect(row).to_be_visible()
    expect(row).to_contain_text("by bob")
    expect(page.locator("#history-count")).to_have_text("1")
    assert loaded == [f"{live_console.url}/history/"]


def test_pushes_that_arrive_while_the_rows_are_re_read_outlive_the_older_snapshot(
    live_console, page: Page, team
) -> None:  # type: ignore[no-untyped-def]
    decided_meanwhile = _submit(team=team, tool="decided_meanwhile")
    _log_in(page, live_console.url, "alice")
    # The page's re-read of its rows is read by the server at once, and its answer held on the
    # wire until two pushes newer than it have reached the page.
    held: list[tuple[Route, APIResponse]] = []

    def hold(route: Route) -> None:
        held.append((route, route.fetch()))

    page.route(lambda url: "fragment=rows" in url, hold)
    page.goto(f"{live_console.url}/")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    assert held, "the page never re-read its rows after its socket opened"
    route, snapshot = held[0]
    page.evaluate(
        "() => { window.pushes = 0;"
        " document.addEventListener('htmx:wsBeforeMessage', () => { window.pushes += 1; }); }"
    )

    _off_loop(
        approval_request_review_deny,
        approval=decided_meanwhile,
        reviewer=team.members.get(username="bob"),
        reason="No.",
    )
    pushed_meanwhile = _submit(team=team, tool="pushed_meanwhile")
    deadline = time.monotonic() + 10
    # Not wait_for_function: it evaluates through new Function(), which our CSP forbids.
    while page.evaluate("window.pushes") < 2:
        assert time.monotonic() < deadline, "the pushes never reached the page"
        page.wait_for_timeout(20)
    # The snapshot predates both: it still lists the decided request, and not the new one.
    assert str(decided_meanwhile.code) in snapshot.text()
    assert str(pushed_meanwhile.code) not in snapshot.text()
    route.fulfill(response=snapshot)

    expect(page.locator(f"#approval-{pushed_meanwhile.code}")).to_be_visible()
    expect(page.locator(f"#approval-{decided_meanwhile.code}")).to_have_count(0)
    expect(page.locator("#pending-count")).to_have_text("1")
    page.wait_for_timeout(400)  # the debounced count refresh after the pushes: nothing changes
    expect(page.locator("#queue-rows > li")).to_have_count(1)
    expect(page.locator(f"#approval-{pushed_meanwhile.code}")).to_be_visible()


def test_re_read_rows_never_wipe_the_filter_form_a_reviewer_is_typing_in(
    live_console, page: Page, team
) -> None:  # type: ignore[no-untyped-def]
    """The re-read on the socket's opening brings the filter form (with fresh counts) along;
    landing while the reviewer types, it replaced what they typed (CI caught a Filter click that
    then sent an empty search)."""
    _submit(team=team, tool="issue_refund")
    _log_in(page, live_console.url, "alice")
    held: list[tuple[Route, APIResponse]] = []
    page.route(
        lambda url: "fragment=rows" in url, lambda route: held.append((route, route.fetch()))
    )
    page.goto(f"{live_console.url}/")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    assert held, "the page never re-read its rows after its socket opened"
    search = page.get_by_label("Search")
    search.fill("refund")  # focused, typed into, while the re-read is on the wire
    route, answer = held[0]
    route.fulfill(response=answer)
    page.wait_for_timeout(300)
    expect(search).to_have_value("refund")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"[?&]q=refund(&|$)"))
