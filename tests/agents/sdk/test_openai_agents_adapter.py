"""The OpenAI Agents SDK example against the live console: the tool runs only once a reviewer
approves, and a denial or a changed approval reaches the model as a rejection.

One subprocess runs the agent three times (importing the Agents SDK takes seconds); the reviewer
approves the first request, denies the second and changes the arguments of the third."""

import json
from pathlib import Path

import pytest

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_deny
from tests.agents.sdk.author_venv import AUTHOR_VENV_TIMEOUT, AuthorVenv

pytestmark = [pytest.mark.django_db(transaction=True), AUTHOR_VENV_TIMEOUT]

EXAMPLE = Path(__file__).with_name("openai_agents_example.py")


def test_it_gates_the_tool_on_the_reviewers_decisions(
    live_console, sdk_agent, rita, reviewer_thread, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    reviewer_thread.decide(
        lambda approval: approval_request_approve(approval=approval, reviewer=rita),
        lambda approval: approval_request_deny(
            approval=approval, reviewer=rita, reason="Refunded by hand already."
        ),
        lambda approval: approval_request_approve(
            approval=approval, reviewer=rita, arguments={"payment_id": "pay_7", "amount": 100}
        ),
    )
    result = author_venv.run(str(EXAMPLE), live_console.url, token, "3", timeout=100)
    reviewer_thread.join()
    assert result.returncode == 0, result.stderr
    approved, denied, changed = (json.loads(line) for line in result.stdout.splitlines())

    assert approved["paused_on"] == ["issue_refund"]
    assert approved["ran_before_decision"] == []
    assert approved["refunds"] == [{"payment_id": "pay_7", "amount": 4900}]
    assert approved["final_output"] == "All done."

    assert denied["refunds"] == []
    assert denied["tool_outputs"] == ["Not run: the request was denied: Refunded by hand already."]

    # The Agents SDK would run the model's arguments, so a changed approval is not run at all.
    assert changed["refunds"] == []
    assert '{"amount": 100, "payment_id": "pay_7"}' in changed["tool_outputs"][0]

    stored = ApprovalRequest.objects.order_by("created_at").first()
    assert stored is not None
    assert (stored.tool, stored.summary, stored.impact) == (
        "issue_refund",
        "Refund 4900 on pay_7",
        "high",
    )
    assert ApprovalRequest.objects.count() == 3


def test_a_run_restored_from_its_string_resolves_its_one_request(
    live_console, sdk_agent, rita, reviewer_thread, author_venv: AuthorVenv
) -> None:
    # Issue 20: a paused run saved with to_string() and resolved from RunState.from_string() in
    # a new process (and resolved again, as a retry) finds the request it already submitted.
    _, token = sdk_agent
    reviewer_thread.decide(
        lambda approval: approval_request_approve(approval=approval, reviewer=rita)
    )
    result = author_venv.run(
        str(EXAMPLE), live_console.url, token, "restart", "ticket-4711", timeout=100
    )
    reviewer_thread.join()
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)

    stored = ApprovalRequest.objects.get()  # one request, however often it was submitted
    assert outcome["submitted_first"] == outcome["submitted_again"] == {"c1": str(stored.code)}
    assert outcome["refunds"] == [{"payment_id": "pay_7", "amount": 4900}]
    assert outcome["final_output"] == "All done."
    # The restored process asked as the first did: from the tool's hook, found on the agent.
    assert (stored.summary, stored.impact) == ("Refund 4900 on pay_7", "high")
