"""The live lists miss nothing around their socket's opening.

A page's rows are rendered before its websocket joins its groups: whatever happens in between is
pushed to nobody. And the rows the page then re-reads are a snapshot, older than a push that
arrives while the re-read is on the wire. Both gaps are opened on purpose here, in a fixed order.
"""

import re
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import APIResponse, Page, Request, Route, WebSocketRoute, expect

from approvals.models import ApprovalRequest
from approvals.reviews import check_approval_request_deny
from tests.browser.live import expect_up_to_date, log_in, off_loop, submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _hold_first_rows_read(page: Page) -> list[tuple[Route, APIResponse]]:
    """Holds the page's first re-read of its rows: read by the server at once, its answer kept
    off the page until the test fulfils it. Later re-reads (after a Filter click, say) pass:
    fetching them too raced the test's end ("Request context disposed", seen in CI)."""
    held: list[tuple[Route, APIResponse]] = []

    def hold(route: Route) -> None:
        if held:
            route.continue_()
        else:
            held.append((route, route.fetch()))

    page.route(lambda url: "fragment=rows" in url, hold)
    return held


def _queue_opened_with_its_rows_read_held(page: Page, base_url: str) -> tuple[Route, APIResponse]:
    """Open the queue with its first re-read of rows held (`_hold_first_rows_read`): the route to
    fulfil and the answer the server already gave, once the page has asked."""
    held = _hold_first_rows_read(page)
    page.goto(f"{base_url}/")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    assert held, "the page never re-read its rows after its socket opened"
    return held[0]


@pytest.fixture(autouse=True)
def _routes_removed(page: Page) -> Iterator[None]:
    yield
    page.unroute_all(behavior="ignoreErrors")


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
) -> None:
    log_in(page, live_console.url, "alice")
    created: list[ApprovalRequest] = []
    _open_socket_after(page, lambda: created.append(submit(team=team, tool="in_the_gap")))
    loaded = _navigations(page)

    page.goto(f"{live_console.url}/")
    expect(page.locator("#live-status")).to_have_text("Live")
    assert len(created) == 1, "the socket was never held: the gap was not opened"
    expect(page.locator(f"#approval-{created[0].code}")).to_be_visible()
    expect(page.locator("#pending-count")).to_have_text("1")
    assert loaded == [f"{live_console.url}/"]  # no reload


def test_a_decision_made_before_the_socket_opens_appears_in_the_history(
    live_console, page: Page, team
) -> None:
    approval = submit(team=team, tool="decided_in_the_gap")
    log_in(page, live_console.url, "alice")
    bob = team.members.get(username="bob")
    denied: list[bool] = []

    def deny() -> None:
        off_loop(check_approval_request_deny, approval=approval, reviewer=bob, reason="No.")
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
) -> None:
    decided_meanwhile = submit(team=team, tool="decided_meanwhile")
    log_in(page, live_console.url, "alice")
    # The page's re-read of its rows is read by the server at once, and its answer held on the
    # wire until two pushes newer than it have reached the page.
    route, snapshot = _queue_opened_with_its_rows_read_held(page, live_console.url)
    page.evaluate(
        "() => { window.pushes = 0;"
        " document.addEventListener('htmx:wsBeforeMessage', () => { window.pushes += 1; }); }"
    )

    off_loop(
        check_approval_request_deny,
        approval=decided_meanwhile,
        reviewer=team.members.get(username="bob"),
        reason="No.",
    )
    pushed_meanwhile = submit(team=team, tool="pushed_meanwhile")
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
    expect_up_to_date(page)  # the debounced count refresh after the pushes: nothing changes
    expect(page.locator("#queue-rows > li")).to_have_count(1)
    expect(page.locator(f"#approval-{pushed_meanwhile.code}")).to_be_visible()


def test_the_list_says_it_is_busy_while_its_rows_are_re_read(
    live_console, page: Page, team
) -> None:
    """Rows re-read after the socket opens replace the whole list: until they land, the list is
    `aria-busy` (assistive technology waits to announce it, and so can anything reading rows;
    CI caught a test measuring a row in the instant it was replaced)."""
    submit(team=team, tool="issue_refund")
    log_in(page, live_console.url, "alice")
    route, answer = _queue_opened_with_its_rows_read_held(page, live_console.url)
    live = page.locator("#queue-live")
    expect(live).to_have_attribute("aria-busy", "true")
    route.fulfill(response=answer)
    expect(live).not_to_have_attribute("aria-busy", re.compile(".*"))
    expect(page.locator("#queue-rows > li")).to_have_count(1)


def test_re_read_rows_never_wipe_the_filter_form_a_reviewer_is_typing_in(
    live_console, page: Page, team
) -> None:
    """The re-read on the socket's opening brings the filter form (with fresh counts) along;
    landing while the reviewer types, it replaced what they typed (CI caught a Filter click that
    then sent an empty search)."""
    submit(team=team, tool="issue_refund")
    log_in(page, live_console.url, "alice")
    route, answer = _queue_opened_with_its_rows_read_held(page, live_console.url)
    search = page.get_by_label("Search")
    search.fill("refund")  # focused, typed into, while the re-read is on the wire
    route.fulfill(response=answer)
    expect_up_to_date(page)
    expect(search).to_have_value("refund")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"[?&]q=refund(&|$)"))


def test_the_keyboard_selection_outlives_re_read_rows(live_console, page: Page, team) -> None:
    """A re-read landing after `j` selected a row keeps it selected (htmx's settle step put the
    server's class back on the re-read row; CI caught the keyboard test losing it)."""
    first = submit(team=team, tool="drop_table")
    log_in(page, live_console.url, "alice")
    route, answer = _queue_opened_with_its_rows_read_held(page, live_console.url)
    page.keyboard.press("j")
    row = page.locator(f"#approval-{first.code}")
    expect(row).to_have_class(re.compile(r"(^|\s)selected(\s|$)"))
    route.fulfill(response=answer)
    expect_up_to_date(page)  # the re-read rows have been swapped in and settled
    expect(row).to_have_class(re.compile(r"(^|\s)selected(\s|$)"))
    expect(row).to_have_attribute("aria-current", "true")


def test_a_socket_closed_for_a_server_restart_reconnects_and_re_reads_its_rows(
    live_console, page: Page, team
) -> None:
    # A server that stops closes reviewer sockets with 1012 (Service Restart): the page says it
    # is reconnecting, opens a new socket (through the load balancer: another server) and
    # re-reads its rows, so a request created while it was away appears without a reload.
    log_in(page, live_console.url, "alice")
    sockets: list[WebSocketRoute] = []
    created: list[ApprovalRequest] = []

    def route(ws: WebSocketRoute) -> None:
        sockets.append(ws)
        if len(sockets) == 2:  # the reconnect: created while the page had no socket
            created.append(submit(team=team, tool="while_away"))
        ws.connect_to_server()

    page.route_web_socket("**/ws/queue/*", route)
    loaded = _navigations(page)
    page.goto(f"{live_console.url}/")
    expect(page.locator("#live-status")).to_have_text("Live")

    # Every status the page shows, however briefly (the reconnect may come within milliseconds).
    page.evaluate(
        """() => {
            const status = document.getElementById("live-status");
            window.shownStatuses = [];
            new MutationObserver(() => window.shownStatuses.push(status.textContent))
                .observe(status, {childList: true, characterData: true, subtree: true});
        }"""
    )
    sockets[0].close(code=1012, reason="Service Restart")
    page.wait_for_function("() => window.shownStatuses.includes('Live')", timeout=10_000)
    assert page.evaluate("() => window.shownStatuses") == ["Reconnecting…", "Live"]
    assert len(sockets) == 2 and len(created) == 1
    expect(page.locator(f"#approval-{created[0].code}")).to_be_visible()
    assert loaded == [f"{live_console.url}/"]  # no reload
