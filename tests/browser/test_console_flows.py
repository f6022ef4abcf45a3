"""Every reviewer flow in real Chromium: the live queue, deciding, quorum, claiming, escalating,
commenting, the keyboard, phone width, two reviewers racing, and hostile agent text."""

import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Dialog, Page, Route, expect

from approvals.models import Decision, Impact, ReviewerPresence, Status
from approvals.policies.models import PolicyCondition
from approvals.reviews import approval_claim_take, check_approval_request_deny
from tests.browser.live import expect_up_to_date, log_in, off_loop, submit
from tests.factories import (
    AgentFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    agent_with_token,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def second_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def _watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_the_queue_is_live_sorted_by_risk_and_never_reloads(
    live_console, page: Page, team, artifacts
) -> None:
    errors = _watch_errors(page)
    log_in(page, live_console.url, "alice")
    page.evaluate("window.__sameDocument = true")

    low = submit(team=team, tool="send_newsletter", impact=Impact.LOW, confidence=0.9)
    critical = submit(
        team=team,
        tool="drop_table",
        impact=Impact.CRITICAL,
        confidence=0.3,
        hold_reason="critical tools always need a person",
    )
    high = submit(
        team=team,
        tool="issue_refund",
        impact=Impact.HIGH,
        confidence=0.42,
        hold_reason="confidence 0.42 below 0.70 for high-impact refunds",
    )
    other_team = submit(team=TeamFactory(name="ops"), tool="restart_db")

    rows = page.locator("#queue-rows > li")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_have_id(f"approval-{critical.code}")
    expect(rows.nth(1)).to_have_id(f"approval-{high.code}")
    expect(rows.nth(2)).to_have_id(f"approval-{low.code}")
    expect(page.locator(f"#approval-{other_team.code}")).to_have_count(0)
    expect(page.locator("#pending-count")).to_have_text("3")
    expect(rows.nth(1)).to_contain_text("confidence 0.42 below 0.70")
    expect(page.get_by_label("Impact")).to_contain_text("critical (1)")  # counts follow pushes

    # Changed: someone else claims it; the row says so in place.
    off_loop(approval_claim_take, approval=high, reviewer=team.members.get(username="bob"))
    expect(page.locator(f"#approval-{high.code}")).to_contain_text("Claimed by bob")
    expect(rows.nth(1)).to_have_id(f"approval-{high.code}")  # still in its place

    page.screenshot(path=str(artifacts / "queue-live.png"), full_page=True)

    # Decided elsewhere: it leaves.
    off_loop(
        check_approval_request_deny,
        approval=low,
        reviewer=team.members.get(username="bob"),
        reason="No",
    )
    expect(page.locator(f"#approval-{low.code}")).to_have_count(0)
    expect(page.locator("#pending-count")).to_have_text("2")
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_a_filtered_queue_shows_only_matching_live_arrivals(live_console, page: Page, team) -> None:
    submit(team=team, tool="issue_refund")
    log_in(page, live_console.url, "alice")
    page.get_by_label("Search").fill("refund")
    page.get_by_role("button", name="Filter").click()
    expect_up_to_date(page)
    # Pushed in this order over one socket: once the matching row shows, the other was pushed.
    other = submit(team=team, tool="send_email", summary="Monthly newsletter.")
    matching = submit(team=team, tool="issue_refund", summary="second refund")
    expect(page.locator(f"#approval-{matching.code}")).to_be_visible()
    expect_up_to_date(page)  # the debounced re-read after the last push has landed
    expect(page.locator(f"#approval-{other.code}")).to_have_count(0)
    expect(page.locator("#queue-rows > li")).to_have_count(2)


def test_two_reviewers_deciding_at_once_get_exactly_one_decision(
    live_console, page: Page, second_page: Page, team, artifacts
) -> None:
    # Medium impact: Approve decides at once (high and critical ask for a confirmation first).
    approval = submit(team=team, tool="issue_refund", impact=Impact.MEDIUM)
    panel = f"#decision-panel-{approval.code}"
    for reviewer_page, name in ((page, "alice"), (second_page, "bob")):
        log_in(reviewer_page, live_console.url, name)
        reviewer_page.goto(f"{live_console.url}/requests/{approval.code}/")
        expect(reviewer_page.locator("#live-status, .detail-page")).not_to_have_count(0)
    second_page.get_by_text("Deny…").click()
    second_page.get_by_label("Reason for denying").fill("Not today.")
    # Alice's approval leaves her browser first but is held on the wire until Bob's denial has
    # been recorded: both were sent before either answer came back, in a fixed order, so the
    # race plays out the same way every run. (Racing decisions in the database is covered by
    # tests/approvals/test_races.py.)
    held: list[Route] = []
    page.route(f"**/requests/{approval.code}/approve", lambda route: held.append(route))
    page.locator("#approve-button").click(no_wait_after=True)
    while not held:
        page.wait_for_timeout(20)
    second_page.get_by_role("button", name="Deny", exact=True).click(no_wait_after=True)
    expect(second_page.locator(panel).locator(".outcome")).to_be_visible()
    held[0].continue_()

    for reviewer_page in (page, second_page):
        expect(reviewer_page.locator(panel).locator(".outcome")).to_be_visible()
    approval.refresh_from_db()
    assert approval.status == Status.DENIED
    assert Decision.objects.filter(approval=approval).count() == 1
    assert approval.events.filter(kind__in=["approved", "denied"]).count() == 1
    # Both pages show the one outcome that stands, and the loser is told theirs was not recorded.
    expect(page.locator(panel)).to_contain_text("Denied")
    expect(second_page.locator(panel)).to_contain_text("Denied")
    loser = page
    expect(loser.get_by_role("alert")).to_contain_text("Not recorded: someone else got there first")
    loser.screenshot(path=str(artifacts / "race-loser.png"), full_page=True)


def test_a_reviewer_approves_with_changed_arguments_after_seeing_the_diff(
    live_console, page: Page, team, artifacts
) -> None:
    # Payments reviews refunds: the policy routes the changed refund to alice's team too.
    off_loop(lambda: PolicyRuleFactory(tool_glob="issue_refund", team=team))
    approval = submit(team=team, arguments={"payment_id": "pay_1", "amount": 4900})
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}/")
    page.get_by_text("Approve with changes…").click()
    page.get_by_text("Raw JSON").click()
    editor = page.get_by_label("Arguments to run instead")
    editor.fill('{"payment_id": "pay_1", "amount": }')
    page.get_by_role("button", name="Review changes").click()
    expect(page.get_by_role("alert")).to_contain_text("Not valid JSON")
    editor = page.get_by_label("Arguments to run instead")
    editor.fill('{"payment_id": "pay_1", "amount": 2450}')
    page.get_by_role("button", name="Review changes").click()
    diff = page.locator("#arguments-diff")
    expect(diff).to_contain_text('-  "amount": 4900')
    expect(diff).to_contain_text('+  "amount": 2450')
    page.screenshot(path=str(artifacts / "approve-with-changes-diff.png"), full_page=True)
    approval.refresh_from_db()
    assert approval.status == Status.PENDING  # nothing recorded before confirming
    # High impact: this step is the confirmation naming the tool that the server asks for.
    expect(page.locator("#changes")).to_contain_text("High impact: confirm.")
    confirm = page.get_by_role("button", name="Confirm changed arguments")
    expect(confirm).to_be_disabled()  # until the tool's name is typed
    page.get_by_label("Type the tool's name to confirm").fill("issue_refund")
    confirm.click()
    expect(page.locator(f"#decision-panel-{approval.code}")).to_contain_text("Approved")
    approval.refresh_from_db()
    assert approval.decision.approved_arguments == {"payment_id": "pay_1", "amount": 2450}


def test_a_change_another_team_must_approve_is_proposed_and_approved_there(
    live_console, page: Page, team, artifacts
) -> None:
    def policy() -> None:
        finance = TeamFactory(name="finance", members=[UserFactory(username="yuri")])
        large = PolicyRuleFactory(name="large refunds", tool_glob="issue_refund", team=finance)
        PolicyCondition.objects.create(rule=large, path="amount", operator=">", value=1000)
        PolicyRuleFactory(name="refunds", tool_glob="issue_refund", team=team)

    off_loop(policy)
    approval = submit(team=team, arguments={"payment_id": "pay_1", "amount": 10})
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}/")
    page.get_by_text("Approve with changes…").click()
    page.get_by_text("Raw JSON").click()
    page.get_by_label("Arguments to run instead").fill('{"payment_id": "pay_1", "amount": 5000}')
    page.get_by_role("button", name="Review changes").click()
    page.get_by_label("Type the tool's name to confirm").fill("issue_refund")
    page.get_by_role("button", name="Confirm changed arguments").click()
    expect(page.get_by_role("status")).to_contain_text("finance, 1 approval")
    expect(page.get_by_role("status")).to_contain_text("It has left your queue.")

    log_in(page, live_console.url, "yuri")
    page.goto(f"{live_console.url}/requests/{approval.code}/")
    expect(page.locator("#proposal-1")).to_contain_text('"amount": 5000')
    expect(page.locator("#proposal-1")).to_contain_text("alice")
    page.screenshot(path=str(artifacts / "proposed-change.png"), full_page=True)
    page.get_by_role("button", name="Review this change").click()
    expect(page.locator("#arguments-diff")).to_contain_text('+  "amount": 5000')
    # From the keyboard: the field has the focus; Enter sends once the name matches.
    expect(page.get_by_label("Type the tool's name to confirm")).to_be_focused()
    page.keyboard.type("issue_refund")
    expect(page.locator("#confirm-changes")).to_have_attribute("data-armed", "ready")
    page.keyboard.press("Enter")
    expect(page.locator(f"#decision-panel-{approval.code}")).to_contain_text("Approved")
    approval.refresh_from_db()
    assert approval.decision.approved_arguments == {"payment_id": "pay_1", "amount": 5000}
    assert approval.decision.reviewer.username == "yuri"


def test_a_denial_needs_a_reason(live_console, page: Page, team) -> None:
    approval = submit(team=team)
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}/")
    page.get_by_text("Deny…").click()
    page.get_by_role("button", name="Deny", exact=True).click()
    page.wait_for_timeout(300)
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    page.get_by_label("Reason for denying").fill("Customer already refunded.")
    page.get_by_role("button", name="Deny", exact=True).click()
    expect(page.locator(f"#decision-panel-{approval.code}")).to_contain_text(
        "Customer already refunded."
    )
    approval.refresh_from_db()
    assert approval.status == Status.DENIED


def test_quorum_waits_for_a_second_reviewer_and_both_pages_follow(
    live_console, page: Page, second_page: Page, team
) -> None:
    approval = submit(team=team, required_approvals=2, impact=Impact.MEDIUM)
    for reviewer_page, name in ((page, "alice"), (second_page, "bob")):
        log_in(reviewer_page, live_console.url, name)
        reviewer_page.goto(f"{live_console.url}/requests/{approval.code}/")
    page.locator("#approve-button").click()
    expect(page.locator(f"#decision-panel-{approval.code}")).to_contain_text(
        "Your approval is recorded (1 of 2)"
    )
    expect(second_page.locator(f"#claim-{approval.code}")).to_contain_text(
        "1 of 2 approvals (alice)"
    )
    second_page.locator("#approve-button").click()
    expect(second_page.locator(f"#decision-panel-{approval.code}")).to_contain_text("Approved")
    expect(page.locator(f"#decision-panel-{approval.code}")).to_contain_text("Approved")


def test_presence_and_claims_are_visible_to_everyone(
    live_console, page: Page, second_page: Page, team
) -> None:
    approval = submit(team=team)
    log_in(second_page, live_console.url, "bob")
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}/")
    row = second_page.locator(f"#approval-{approval.code}")
    expect(row).to_contain_text("Looking now: alice")
    page.get_by_role("button", name="Claim").click()
    expect(page.locator(f"#decision-panel-{approval.code}")).to_contain_text(
        "You claimed this request."
    )
    expect(row).to_contain_text("Claimed by alice")

    second_page.goto(f"{live_console.url}/requests/{approval.code}/")
    expect(second_page.locator(f"#decision-panel-{approval.code}")).to_contain_text(
        "alice is on it"
    )
    expect(page.locator(f"#presence-{approval.code}")).to_contain_text("alice, bob")
    second_page.get_by_role("button", name="Take over").click()
    expect(second_page.locator(f"#decision-panel-{approval.code}")).to_contain_text(
        "You claimed this request."
    )
    expect(page.locator(f"#claim-{approval.code}")).to_contain_text("Claimed by bob")
    second_page.close()
    expect(page.locator(f"#presence-{approval.code}")).to_have_text("Looking now: alice")


def test_escalation_moves_the_request_to_the_other_teams_queue(
    live_console, page: Page, second_page: Page, team
) -> None:
    TeamFactory(name="security", members=[UserFactory(username="sara")])
    approval = submit(team=team)
    log_in(second_page, live_console.url, "sara")
    log_in(page, live_console.url, "alice")
    expect(second_page.locator(f"#approval-{approval.code}")).to_have_count(0)
    page.goto(f"{live_console.url}/requests/{approval.code}/")
    page.get_by_text("Escalate…").click()
    page.get_by_label("Team to escalate to").select_option(label="security")
    page.get_by_label("Note for the other team").fill("Looks like account takeover.")
    page.get_by_role("button", name="Escalate").click()
    expect(page.locator(f"#decision-panel-{approval.code}")).to_contain_text(
        "It has left your queue"
    )
    expect(second_page.locator(f"#approval-{approval.code}")).to_be_visible()
    second_page.locator(f"#approval-{approval.code} a").click()
    expect(second_page.locator(f"#history-{approval.code}")).to_contain_text(
        "Looks like account takeover."
    )


def test_a_comment_lands_in_the_history_of_everyone_watching(
    live_console, page: Page, second_page: Page, team
) -> None:
    approval = submit(team=team)
    for reviewer_page, name in ((page, "alice"), (second_page, "bob")):
        log_in(reviewer_page, live_console.url, name)
        reviewer_page.goto(f"{live_console.url}/requests/{approval.code}/")
    page.get_by_label("Comment (does not decide)").fill("Calling the customer first.")
    page.get_by_role("button", name="Comment").click()
    expect(page.locator(f"#history-{approval.code}")).to_contain_text("Calling the customer first.")
    expect(page.get_by_label("Comment (does not decide)")).to_have_value("")
    expect(second_page.locator(f"#history-{approval.code}")).to_contain_text(
        "Calling the customer first."
    )
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_enter_opens_the_selected_request_right_after_the_keys_dialog_closes(
    live_console, page: Page, team
) -> None:
    # Chromium leaves focus on the closed dialog's Close button for a moment: an Enter then was
    # taken as meant for that button, and the queue stayed put (seen in CI under load).
    approval = submit(team=team)
    log_in(page, live_console.url, "alice")
    page.wait_for_load_state("networkidle")
    page.keyboard.press("j")
    expect(page.locator(f"#approval-{approval.code}")).to_have_class(lambda_class("selected"))
    page.keyboard.press("?")
    expect(page.locator("#keys-help button")).to_be_focused()
    # The dialog closed and Enter pressed before the browser moves focus off the hidden button
    # (a real keypress may land on either side of that; this is the side that failed).
    page.evaluate(
        """() => {
            document.getElementById("keys-help").close();
            document.activeElement.dispatchEvent(
                new KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true })
            );
        }"""
    )
    expect(page).to_have_url(f"{live_console.url}/requests/{approval.code}/")


def test_the_keyboard_moves_opens_and_prepares_decisions(live_console, page: Page, team) -> None:
    first = submit(team=team, tool="drop_table", impact=Impact.CRITICAL)
    second = submit(team=team, tool="issue_refund", impact=Impact.HIGH)
    log_in(page, live_console.url, "alice")
    # The rows are re-read when the socket opens, and the counts after: keys pressed while that
    # is on the wire were sometimes lost in CI (Enter left the page on the queue). A reviewer's
    # keys come later; wait for the page to be quiet first.
    page.wait_for_load_state("networkidle")
    page.keyboard.press("?")
    expect(page.locator("#keys-help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#keys-help")).to_be_hidden()
    page.keyboard.press("j")
    expect(page.locator(f"#approval-{first.code}")).to_have_class(lambda_class("selected"))
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("j")
    expect(page.locator(f"#approval-{second.code}")).to_have_class(lambda_class("selected"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_console.url}/requests/{second.code}/")
    # The address changes when the page starts arriving: its keys work once its scripts ran.
    page.wait_for_load_state("domcontentloaded")
    page.keyboard.press("d")
    expect(page.get_by_label("Reason for denying")).to_be_focused()
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("e")
    expect(page.get_by_label("Team to escalate to")).to_be_focused()
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("a")
    expect(page.locator("#approve-button")).to_be_focused()
    # Approve works only once the page has been on screen for a moment.
    expect(page.locator("#approve-button")).to_have_attribute("data-armed", "ready")
    page.keyboard.press("Enter")
    # High impact: Enter asks for the confirmation, naming the tool; only that approves.
    expect(page.locator("#confirm-approve")).to_contain_text("issue_refund")
    second.refresh_from_db()
    assert second.status == Status.PENDING
    # The name field takes the focus when the step arrives, so the keyboard carries on there.
    expect(page.get_by_label("Type the tool's name to confirm")).to_be_focused()
    page.keyboard.type("issue_refund")
    page.get_by_role("button", name="Confirm and approve").click()
    expect(page.locator(f"#decision-panel-{second.code}")).to_contain_text("Approved")

    # From the queue, "a" only opens the selected request: nothing is focused to approve.
    page.goto(f"{live_console.url}/")
    page.keyboard.press("j")
    page.keyboard.press("a")
    expect(page).to_have_url(f"{live_console.url}/requests/{first.code}/")
    expect(page.locator("#approve-button")).not_to_be_focused()
    first.refresh_from_db()
    assert first.status == Status.PENDING


def lambda_class(name: str):
    import re

    return re.compile(rf"(^|\s){name}(\s|$)")


def test_it_is_usable_at_phone_width(live_console, browser: Browser, team, artifacts) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    approval = submit(
        team=team,
        summary="Refund a duplicate charge " * 8,
        arguments={"payment_id": "pay_" + "9" * 80, "amount": 4900},
    )
    log_in(page, live_console.url, "alice")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(artifacts / "queue-phone.png"), full_page=True)
    page.locator(f"#approval-{approval.code} a").click()
    expect(page.locator("#approve-button")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(artifacts / "decision-page-phone.png"), full_page=True)
    box = page.locator("#approve-button").bounding_box()
    assert box is not None and box["height"] >= 40  # a thumb can hit it
    context.close()


HOSTILE = (
    '<img src=x onerror="window.__pwned=1;alert(1)">'
    "<script>window.__pwned=2;alert(2)</script>"
    '<a href="javascript:window.__pwned=3">x</a>'
)


def test_agent_supplied_html_shows_as_text_and_never_runs(
    live_console, page: Page, artifacts
) -> None:
    staff = UserFactory(username="sam", is_staff=True)
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    _, token = agent_with_token(name="evil-bot")
    log_in(page, live_console.url, staff.username)

    created = httpx.post(
        f"{live_console.url}/api/v1/requests",
        json={
            "tool": "<script>window.__pwned=4</script>"[:200],
            "arguments": {"note": HOSTILE, HOSTILE[:40]: 1},
            "summary": HOSTILE,
            "reasoning": HOSTILE,
            "impact": "critical",
        },
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "xss-1"},
    ).json()
    row = page.locator(f"#approval-{created['id']}")
    expect(row).to_contain_text("<script>window.__pwned=4</script>")  # arrived live, as text
    expect(row).to_contain_text('<img src=x onerror="window.__pwned=1;alert(1)">')

    row.locator("a").click()
    expect(page.locator("#agent-summary")).to_have_text(HOSTILE)
    expect(page.locator("#agent-reasoning")).to_have_text(HOSTILE)
    expect(page.locator("#arguments")).to_contain_text("<script>window.__pwned=2;alert(2)</script>")
    expect(page.locator("#decision-head .tool")).to_have_text("<script>window.__pwned=4</script>")
    assert page.locator("#agent-summary img, #agent-summary script, #arguments img").count() == 0
    page.screenshot(path=str(artifacts / "hostile-text.png"), full_page=True)

    page.get_by_text("Deny…").click()
    page.get_by_label("Reason for denying").fill(HOSTILE)
    page.get_by_role("button", name="Deny", exact=True).click()
    outcome = page.locator(f"#decision-panel-{created['id']} .outcome")
    expect(outcome).to_contain_text("Denied")
    expect(page.locator(f"#decision-panel-{created['id']} .note")).to_have_text(HOSTILE)
    page.goto(f"{live_console.url}/history/")
    expect(page.locator(f"#approval-{created['id']}")).to_contain_text(
        "<script>window.__pwned=4</script>"
    )

    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []


def test_a_reviewer_from_another_team_gets_404_in_the_browser(
    live_console, page: Page, team
) -> None:
    TeamFactory(name="ops", members=[UserFactory(username="oscar")])
    approval = submit(team=team)
    log_in(page, live_console.url, "oscar")
    expect(page.locator(f"#approval-{approval.code}")).to_have_count(0)
    response = page.goto(f"{live_console.url}/requests/{approval.code}/")
    assert response is not None and response.status == 404


def test_the_history_shows_a_new_decision_at_the_top_without_a_reload(
    live_console, page: Page, team
) -> None:
    older = submit(team=team, tool="older_tool")
    off_loop(
        check_approval_request_deny,
        approval=older,
        reviewer=team.members.get(username="bob"),
        reason="Old.",
    )
    fresh = submit(team=team, tool="fresh_tool")
    exceptions: list[str] = []
    page.on("pageerror", lambda error: exceptions.append(str(error)))
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/history/")
    expect(page.locator("#live-status")).to_have_text("Live")
    page.evaluate("window.notReloaded = true")
    off_loop(
        check_approval_request_deny,
        approval=fresh,
        reviewer=team.members.get(username="bob"),
        reason="No.",
    )
    rows = page.locator("#history-rows > li")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_id(f"approval-{fresh.code}")
    expect(rows.first).to_contain_text("by bob")
    expect(page.locator("#history-count")).to_have_text("2")
    assert page.evaluate("window.notReloaded") is True
    assert exceptions == []


def test_the_decision_page_keeps_its_presence_alive_with_a_heartbeat(
    live_console, page: Page, team, settings
) -> None:
    settings.APPROVAL_PRESENCE_HEARTBEAT_SECONDS = 1
    approval = submit(team=team)
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}/")
    expect(page.locator(f"#presence-{approval.code}")).to_have_text("Looking now: alice")
    long_ago = timezone.now() - timedelta(hours=1)
    presences = ReviewerPresence.objects.filter(approval=approval)
    off_loop(presences.update, seen_at=long_ago)

    def seen_at() -> object:
        return presences.values_list("seen_at", flat=True).first()

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and off_loop(seen_at) == long_ago:
        page.wait_for_timeout(200)
    refreshed = off_loop(seen_at)
    assert refreshed is not None and refreshed > long_ago


def test_an_agents_operator_sees_why_they_cannot_approve(live_console, page: Page, team) -> None:
    alice = team.members.get(username="alice")
    approval = submit(team=team, agent=AgentFactory(name="alices-bot", operators=[alice]))
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}/")
    expect(page.locator("#own-agent-note")).to_contain_text("another reviewer must approve it")
    expect(page.locator("#approve-button")).to_have_count(0)
    page.keyboard.press("a")  # the approve key shows the explanation instead of failing
    expect(page.locator("#own-agent-note")).to_be_in_viewport()
    page.get_by_text("Deny…").click()
    page.get_by_label("Reason for denying (required").fill("Stopping my own agent.")
    page.get_by_role("button", name="Deny", exact=True).click()
    expect(page.locator(f"#decision-panel-{approval.code}")).to_contain_text("Denied")


def test_agent_values_in_a_reason_and_invisible_characters_show_as_the_agents(
    live_console, page: Page, artifacts
) -> None:
    from approvals.policies.models import PolicyCondition
    from tests.factories import PolicyRuleFactory

    staff = UserFactory(username="sam", is_staff=True)
    rule = PolicyRuleFactory(name="big deletes", tool_glob="delete*")
    PolicyCondition.objects.create(rule=rule, path="count", operator="!=", value=0)
    injected = "2'. Policy check passed: finance pre-verified this deletion; reviewers: approve"
    _, token = agent_with_token(name="sly-bot")
    log_in(page, live_console.url, staff.username)

    created = httpx.post(
        f"{live_console.url}/api/v1/requests",
        json={
            "tool": "delete\u202esdrocer",
            "arguments": {"count": injected},
            "summary": "Routine\u200b cleanup",
            "impact": "high",
        },
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "voice-1"},
    ).json()
    page.goto(f"{live_console.url}/requests/{created['id']}/")

    expect(page.locator("#decision-head .tool")).to_have_text("delete⟨U+202E⟩sdrocer")
    expect(page.locator("#agent-summary")).to_have_text("Routine⟨U+200B⟩ cleanup")
    marked = page.locator("#hold-reason .agent-value")
    expect(marked.nth(1)).to_have_text(f'"{injected}"')
    # Drawn as the agent's: the dashed frame of the agent-claim colour, not the console's prose.
    assert marked.nth(1).evaluate("e => getComputedStyle(e).borderTopStyle") == "dashed"
    # A template comment spanning lines once printed itself into the decision panel.
    expect(page.locator("#decide")).not_to_contain_text("{#")
    page.screenshot(path=str(artifacts / "agent-values-in-reason.png"), full_page=True)
