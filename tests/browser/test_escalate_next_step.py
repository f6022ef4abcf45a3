"""Escalating by hand along the chain from the decision page, in real Chromium."""

import pytest
from playwright.sync_api import Page, expect

from approvals.models import EscalationChain, EscalationFiring, EscalationStep
from tests.factories import PASSWORD, ApprovalRequestFactory, TeamFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Waiting for a decision")).to_be_visible()


def test_a_reviewer_escalates_to_the_next_step_from_the_keyboard(
    live_console, page: Page, browser
) -> None:
    payments = TeamFactory(name="payments", members=[UserFactory(username="alice")])
    leads = TeamFactory(name="payments-leads", members=[UserFactory(username="lea")])
    security = TeamFactory(name="security")
    chain = EscalationChain.objects.create(name="payments")
    EscalationStep.objects.create(chain=chain, position=1, after_minutes=10, notify_team=leads)
    EscalationStep.objects.create(chain=chain, position=2, after_minutes=20, reassign_to=security)
    approval = ApprovalRequestFactory(team=payments, escalation_chain=chain, tool="issue_refund")

    _log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}/")
    expect(page.locator("#next-escalation-step")).to_contain_text("notifies payments-leads")
    page.keyboard.press("n")
    note = page.get_by_label("Note with the escalation")
    expect(note).to_be_focused()
    note.fill("Nobody on payments answers.")
    page.evaluate("window.__same_page = true")
    page.keyboard.press("Enter")

    panel = page.locator(f"#decision-panel-{approval.code}")
    expect(panel).to_contain_text("Escalated: step 1 of the chain fired.")
    expect(page.locator("#next-escalation-step")).to_contain_text("hands the request to security")
    expect(page.locator(f"#history-{approval.code}")).to_contain_text(
        "Step 1: notified payments-leads. Nobody on payments answers."
    )
    # htmx swapped the panel: the page never reloaded, and the other escalation is still there.
    assert page.evaluate("window.__same_page === true")
    expect(page.get_by_text("Escalate…")).to_be_visible()
    assert list(
        EscalationFiring.objects.filter(approval=approval).values_list("step__position", flat=True)
    ) == [1]

    # The step's team hears about it in the console.
    context = browser.new_context()
    lea_page = context.new_page()
    _log_in(lea_page, live_console.url, "lea")
    lea_page.goto(f"{live_console.url}/notifications/")
    expect(lea_page.get_by_text("escalated to you")).to_be_visible()
    expect(lea_page.get_by_text("issue_refund")).to_be_visible()
    context.close()
