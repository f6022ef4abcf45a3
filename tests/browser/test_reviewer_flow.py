"""A reviewer logs in, sees a request arrive without reloading, approves it; the agent resumes."""

import threading
import time

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD, UserFactory, agent_with_token

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Waiting for a decision")).to_be_visible()


def test_a_reviewer_approves_a_live_request_and_the_agent_resumes(
    live_console, page: Page, artifacts
) -> None:
    UserFactory(username="rita", is_staff=True)
    _, token = agent_with_token(name="refund-bot")
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)

    _log_in(page, live_console.url, "rita")
    expect(page.locator("#live-status")).to_have_text("Live")

    agent = httpx.Client(
        base_url=live_console.url, headers={"Authorization": f"Bearer {token}"}, timeout=40
    )
    created = agent.post(
        "/api/v1/requests",
        json={
            "tool": "issue_refund",
            "arguments": {"payment_id": "pay_123", "amount": 4900, "currency": "GBP"},
            "summary": "Refund a duplicate charge of £49.00 <b>now</b>.",
            "reasoning": "Charged twice.",
            "confidence": 0.42,
            "impact": "high",
        },
        headers={"Idempotency-Key": "browser-1"},
    ).json()

    outcome: dict[str, object] = {}

    def long_poll() -> None:
        while True:
            body = agent.get(f"/api/v1/requests/{created['id']}", params={"wait": "30"}).json()
            if body["status"] != "pending":
                outcome["body"] = body
                outcome["at"] = time.monotonic()
                return

    waiter = threading.Thread(target=long_poll, daemon=True)
    waiter.start()

    row = page.locator(f"#approval-{created['id']}")
    expect(row).to_be_visible()  # arrived over the websocket: no reload happened
    expect(row).to_contain_text("issue_refund")
    expect(row).to_contain_text("<b>now</b>")  # agent text shows as text
    expect(page.locator("#pending-count")).to_have_text("1")
    page.screenshot(path=str(artifacts / "queue.png"), full_page=True)

    row.get_by_role("link").click()
    expect(page.locator("#agent-summary")).to_contain_text("Refund a duplicate charge")
    expect(page.locator("#arguments")).to_contain_text('"amount": 4900')
    # caret="initial": hiding the caret leaves style="" on inputs, which htmx's settle would copy
    # onto the swapped-in ones, and the CSP then reports an inline style.
    page.screenshot(path=str(artifacts / "decision-page.png"), full_page=True, caret="initial")
    page.get_by_label("Note for the agent").fill("Duplicate confirmed.")
    page.get_by_role("button", name="Approve…").click()
    # High impact: a second, deliberate step: the reviewer types the tool's name.
    page.get_by_label("Type the tool's name to confirm").fill("issue_refund")
    page.get_by_role("button", name="Confirm and approve").click()
    expect(page.locator(f"#decision-panel-{created['id']}")).to_contain_text("Approved")

    waiter.join(timeout=10)
    assert outcome["body"]["status"] == "approved"
    assert outcome["body"]["decision"]["note"] == "Duplicate confirmed."
    page.screenshot(path=str(artifacts / "approved.png"), full_page=True)
    csp_violations = [e for e in console_errors if "Content Security Policy" in e]
    assert not csp_violations, csp_violations
