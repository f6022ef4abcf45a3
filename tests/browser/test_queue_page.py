"""The queue as an on-call reviewer uses it, in real Chromium: what fits a phone, what is said
aloud, the due-soon group, the true count, bulk decisions, no console errors while other
reviewers work, and axe-core's accessibility rules on the reviewer pages."""

from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from approvals.models import ApprovalRequest, Impact, Status
from approvals.reviews import (
    approval_claim_take,
    check_approval_request_approve,
    check_approval_request_deny,
)
from approvals.services import OutcomeReport, approval_outcome_report
from tests.browser.live import axe_serious, expect_up_to_date, log_in, off_loop, submit
from tests.factories import AgentFactory, ApprovalRequestFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1400, "height": 900}


@pytest.fixture
def second_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


@pytest.fixture
def third_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def _console_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def _realistic_queue(team) -> dict[str, ApprovalRequest]:
    """A shift's worth of requests, from two agents, one of them due within minutes."""
    support = AgentFactory(name="support-bot")
    ops = AgentFactory(name="deploy-bot")
    soon = timezone.now() + timedelta(minutes=3)
    return {
        "email": submit(
            team=team,
            agent=support,
            tool="send_email",
            impact=Impact.LOW,
            confidence=0.93,
            summary="Reply to Ana Ruiz that her refund was sent on 3 December.",
            hold_reason="Matched rule: every outbound email to a customer needs a person",
            deadline_at=soon,
        ),
        "refund": submit(
            team=team,
            agent=support,
            tool="issue_refund",
            impact=Impact.CRITICAL,
            confidence=0.41,
            summary="Refund 1,200.00 EUR to order 88213: the parcel never arrived.",
            hold_reason="Matched rule: refunds above 500 EUR need a person (critical)",
        ),
        "deploy": submit(
            team=team,
            agent=ops,
            tool="deploy_service",
            impact=Impact.HIGH,
            confidence=0.77,
            summary="Deploy billing-api 4.12.1 to production (3 commits since 4.12.0).",
        ),
        "tag": submit(
            team=team,
            agent=ops,
            tool="label_ticket",
            impact=Impact.LOW,
            confidence=0.88,
            summary="Tag ticket 5521 as duplicate of 5519.",
        ),
    }


def test_it_fits_the_navigation_and_folds_the_filters_at_phone_width(
    live_console, browser: Browser, team, artifacts
) -> None:
    team.members.filter(username="alice").update(is_staff=True)  # the longest navigation
    requests = _realistic_queue(team)
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    log_in(page, live_console.url, "alice")
    widths = page.evaluate(
        "() => ({page: document.documentElement.scrollWidth,"
        " topbar: document.querySelector('.topbar').scrollWidth})"
    )
    assert widths["page"] <= PHONE["width"] and widths["topbar"] <= PHONE["width"], widths
    logout = page.get_by_role("button", name="Log out")
    box = logout.bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"]
    # The filters are one folded line; the first request is on the first screen.
    expect(page.locator("details.filters-panel")).not_to_have_attribute("open", "")
    expect(page.get_by_label("Agent", exact=True)).to_be_hidden()  # the filter, not the rows
    first = page.locator("#queue-rows > li").first
    expect(first).to_have_id(f"approval-{requests['email'].code}")
    row_box = first.bounding_box()
    assert row_box is not None and row_box["y"] + row_box["height"] <= PHONE["height"], row_box
    page.screenshot(path=str(artifacts / "queue-390x844.png"))
    context.close()


def test_it_shows_the_summary_as_the_headline_and_the_due_soon_group_first(
    live_console, page: Page, team, artifacts
) -> None:
    page.set_viewport_size(DESKTOP)
    requests = _realistic_queue(team)
    log_in(page, live_console.url, "alice")
    rows = page.locator("#queue-rows > li")
    expect(rows).to_have_count(4)
    # Due within the window first, whatever its risk; then critical, high, low.
    expect(rows.nth(0)).to_have_id(f"approval-{requests['email'].code}")
    expect(rows.nth(0)).to_have_class(_has_class("due-soon"))
    expect(rows.nth(1)).to_have_id(f"approval-{requests['refund'].code}")
    expect(rows.nth(1)).not_to_have_class(_has_class("due-soon"))
    # Where the risk order starts is said in words, also after the live re-read (log_in waits
    # for it to settle).
    expect(rows.nth(0)).to_have_class(_has_class("due-soon"))
    divider = rows.nth(1).evaluate("row => getComputedStyle(row, '::before').content")
    assert "Then by risk" in divider, divider
    heading = page.locator("#due-soon-heading")
    expect(heading).to_be_visible()
    expect(heading).to_contain_text("due within 5 minutes")
    # The headline is the agent's summary, marked as the agent's words.
    headline = rows.nth(1).locator(".headline")
    expect(headline).to_contain_text("Agent says")
    expect(headline.locator("q.agent-claim")).to_have_text(
        "Refund 1,200.00 EUR to order 88213: the parcel never arrived."
    )
    # The held reason only on demand.
    reason = rows.nth(1).locator(".held-reason")
    expect(reason).to_be_hidden()
    rows.nth(1).get_by_text("Why held").click()
    expect(reason).to_be_visible()
    expect(reason).to_contain_text("refunds above 500 EUR")
    rows.nth(1).get_by_text("Why held").click()
    page.screenshot(path=str(artifacts / "queue-1400x900.png"))
    # All four rows fit the first screen at desktop size.
    last = rows.nth(3).bounding_box()
    assert last is not None and last["y"] + last["height"] <= DESKTOP["height"], last


def _has_class(name: str):
    import re

    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


def test_the_count_is_the_total_over_every_page(live_console, page: Page, team) -> None:
    agent = AgentFactory()
    off_loop(lambda: ApprovalRequestFactory.create_batch(55, team=team, agent=agent))
    log_in(page, live_console.url, "alice")
    expect(page.locator("#queue-rows > li")).to_have_count(50)  # one page
    expect(page.locator("#pending-count")).to_have_text("55")  # all of them
    submit(team=team, agent=agent, impact=Impact.CRITICAL)
    expect(page.locator("#pending-count")).to_have_text("56")  # follows live pushes


def test_no_page_logs_a_console_error_while_another_reviewer_works(
    live_console, page: Page, second_page: Page, third_page: Page, team
) -> None:
    watched = submit(team=team, tool="issue_refund", summary="Refund order 1.")
    errors = {
        "queue": _console_errors(page),
        "detail": _console_errors(second_page),
        "history": _console_errors(third_page),
    }
    log_in(page, live_console.url, "alice")
    log_in(second_page, live_console.url, "alice")
    second_page.goto(f"{live_console.url}/requests/{watched.code}/")
    log_in(third_page, live_console.url, "alice")
    third_page.goto(f"{live_console.url}/history/")
    expect(third_page.locator("#live-status")).to_have_text("Live")

    bob = team.members.get(username="bob")
    other = submit(team=team, tool="send_email", summary="Send the invoice.")
    expect(page.locator(f"#approval-{other.code}")).to_be_visible()
    off_loop(approval_claim_take, approval=watched, reviewer=bob)
    expect(page.locator(f"#approval-{watched.code}")).to_contain_text("Claimed by bob")
    off_loop(check_approval_request_deny, approval=other, reviewer=bob, reason="Not now.")
    expect(page.locator(f"#approval-{other.code}")).to_have_count(0)
    expect(third_page.locator(f"#approval-{other.code}")).to_be_visible()
    off_loop(check_approval_request_deny, approval=watched, reviewer=bob, reason="Duplicate.")
    expect(third_page.locator(f"#approval-{watched.code}")).to_be_visible()
    expect(second_page.locator("main")).to_contain_text("Duplicate.")
    expect(page.locator(f"#approval-{watched.code}")).to_have_count(0)
    expect_up_to_date(page)  # the debounced counts refresh after the last push has run
    assert errors == {"queue": [], "detail": [], "history": []}


def test_the_favicon_answers(live_console) -> None:
    answer = httpx.get(f"{live_console.url}/favicon.ico", follow_redirects=True)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("image/svg")


def test_bulk_approve_takes_low_impact_only_and_bulk_deny_sends_one_reason(
    live_console, page: Page, team, artifacts
) -> None:
    requests = _realistic_queue(team)
    log_in(page, live_console.url, "alice")
    bulk = page.locator("#bulk-form")
    expect(bulk.get_by_role("button", name="Deny selected…")).to_be_hidden()
    for name in ("email", "tag", "refund"):
        page.locator(f"#approval-{requests[name].code} input.bulk-pick").check()
    expect(page.locator("#bulk-picked")).to_have_text("3 selected.")
    bulk.get_by_role("button", name="Approve selected (low impact only)…").click()

    # The confirmation lists every ticked request; the critical one is left out, with why.
    expect(page.get_by_role("heading", name="Approve these low-impact requests?")).to_be_visible()
    items = page.locator(".bulk-list > li")
    expect(items).to_have_count(3)
    refund = page.locator(f'.bulk-list > li[data-code="{requests["refund"].code}"]')
    expect(refund).to_contain_text("Left out")
    expect(refund).to_contain_text("low-impact requests only")
    page.screenshot(path=str(artifacts / "queue-bulk-confirm.png"))
    page.get_by_role("button", name="Approve 2 requests").click()
    expect(page.get_by_role("heading", name="Approved: 2 of 2")).to_be_visible()

    statuses = dict(
        ApprovalRequest.objects.filter(pk__in=[r.pk for r in requests.values()]).values_list(
            "tool", "status"
        )
    )
    assert statuses == {
        "send_email": Status.APPROVED,
        "label_ticket": Status.APPROVED,
        "issue_refund": Status.PENDING,
        "deploy_service": Status.PENDING,
    }

    page.get_by_role("link", name="Back to the queue").click()
    for name in ("refund", "deploy"):
        page.locator(f"#approval-{requests[name].code} input.bulk-pick").check()
    page.locator("#bulk-form").get_by_role("button", name="Deny selected…").click()
    expect(page.get_by_role("heading", name="Deny these requests?")).to_be_visible()
    page.get_by_label("Reason, sent to each agent (required)").fill("Change freeze tonight.")
    page.get_by_role("button", name="Deny 2 requests").click()
    expect(page.get_by_role("heading", name="Denied: 2 of 2")).to_be_visible()
    for name in ("refund", "deploy"):
        approval = ApprovalRequest.objects.get(pk=requests[name].pk)
        assert approval.status == Status.DENIED
        assert approval.decision.note == "Change freeze tonight."


def test_the_queue_announces_arrivals_and_departures(live_console, page: Page, team) -> None:
    log_in(page, live_console.url, "alice")
    announcer = page.locator("#announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    arrived = submit(team=team, summary="Refund order 77.")
    expect(announcer).to_have_text("New request. Agent says \u201cRefund order 77.\u201d.")
    bob = team.members.get(username="bob")
    off_loop(check_approval_request_deny, approval=arrived, reviewer=bob, reason="No.")
    expect(announcer).to_contain_text(
        "Left the queue (decided or moved): Agent says \u201cRefund order 77.\u201d."
    )
    # Without a summary the tool is said as a name: before, "Approved" was said bare, as
    # though the agent had said it, or the console.
    submit(team=team, summary="", tool="Approved")
    expect(announcer).to_have_text("New request. tool \u201cApproved\u201d, no summary given.")


def _report_failure(code: UUID) -> None:
    approval_outcome_report(
        approval=ApprovalRequest.objects.get(code=code),
        report=OutcomeReport(status="failed", error="card_declined"),
    )


def test_axe_finds_nothing_serious_on_the_reviewer_pages(live_console, page: Page, team) -> None:
    team.members.filter(username="alice").update(is_staff=True)
    requests = _realistic_queue(team)
    off_loop(
        check_approval_request_deny,
        approval=requests["deploy"],
        reviewer=team.members.get(username="bob"),
        reason="Change freeze.",
    )
    # An earlier refund alice approved that failed when it ran: the decision page's track record
    # and similar decisions, history, insight and alice's notifications all show it.
    earlier = submit(
        team=team, agent=requests["refund"].agent, tool="issue_refund", impact=Impact.LOW
    )
    off_loop(
        check_approval_request_approve,
        approval=earlier,
        reviewer=team.members.get(username="alice"),
    )
    off_loop(_report_failure, code=earlier.code)
    UserFactory(username="carol")
    log_in(page, live_console.url, "alice")
    axe = Axe()
    found = {}
    for name, path in {
        "queue": "/",
        "decision page": f"/requests/{requests['refund'].code}/",
        "history": "/history/",
        "insight": "/insight/",
        "notifications": "/notifications/",
        "preferences": "/notifications/preferences",
        "agents": "/agents/",
    }.items():
        page.goto(f"{live_console.url}{path}")
        page.wait_for_load_state("networkidle")
        found[name] = axe_serious(axe.run(page))
        if name == "decision page":  # the outcomes were on the page axe read
            expect(page.locator("#track-record-outcomes")).to_contain_text("1 failed")
    assert found == {name: [] for name in found}


def test_a_decided_row_keeps_its_badges_on_one_line(live_console, page: Page, team) -> None:
    # The queue's one-column row layout once applied to every row: on the history page each
    # badge then stretched across the whole row, one per line.
    page.set_viewport_size(DESKTOP)
    approval = ApprovalRequestFactory(team=team, tool="send_email", impact=Impact.LOW)
    off_loop(
        check_approval_request_approve,
        approval=approval,
        reviewer=team.members.get(username="alice"),
    )
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/history/")
    expect(page.locator(f"#approval-{approval.code} .badge.status-approved")).to_be_visible()
    # Measured in one go in the page, as often as needed: a live page may re-render its rows
    # (its socket's first open re-reads them) between two reads from here.
    page.wait_for_function(
        """code => {
            const row = document.getElementById("approval-" + code);
            const status = row && row.querySelector(".badge.status-approved");
            const impact = row && row.querySelector(".badge.impact-low");
            if (!status || !impact) return false;
            const r = row.getBoundingClientRect(), s = status.getBoundingClientRect();
            const i = impact.getBoundingClientRect();
            return s.width < r.width / 4 && Math.abs(s.top - i.top) < s.height;
        }""",
        arg=str(approval.code),
        timeout=5000,
    )


def test_a_very_long_tool_name_never_widens_the_page_at_phone_width(
    live_console, phone_page: Page, team, artifacts
) -> None:
    tool = "delete_records_in_the_customer_database_permanently_without_any_backup"
    submit(team=team, tool=tool, summary="Delete 900 inactive customer records.")
    log_in(phone_page, live_console.url, "alice")
    expect(phone_page.locator("#queue-rows")).to_contain_text(tool)
    phone_page.screenshot(path=str(artifacts / "queue-long-tool-390x844.png"))

    # Wider than the screen, a phone would zoom the whole queue out to fit it.
    overflow = phone_page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the queue is {overflow}px wider than the screen"
