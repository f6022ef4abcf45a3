"""The OpenAI Agents SDK example against the live console: the tool runs only once a reviewer
approves, and a denial or a changed approval reaches the model as a rejection.

One subprocess runs the agent three times (importing the Agents SDK takes seconds); the reviewer
approves the first request, denies the second and changes the arguments of the third."""

import json
from pathlib import Path

import pytest

from agents.models import TraceEvent
from approvals.models import ApprovalRequest, RequestOutcome
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

    # What each approved call did reached the console: the one that ran succeeded with the
    # tool's return; the changed approval was never run; the denial needs no report.
    by_approved_amount = {
        (outcome.approval.decision.approved_arguments or outcome.approval.arguments)[
            "amount"
        ]: outcome
        for outcome in RequestOutcome.objects.select_related("approval__decision")
    }
    assert set(by_approved_amount) == {4900, 100}
    ran, not_run = by_approved_amount[4900], by_approved_amount[100]
    assert (ran.status, ran.result, ran.source) == ("succeeded", "refunded 4900", "agent")
    assert ran.duration_ms is not None
    assert not_run.status == "not_executed" and "changed arguments" in not_run.error


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
    # ... and the process that resolved and ran it reported the outcome.
    assert RequestOutcome.objects.get().status == "succeeded"


def test_a_tool_that_raises_is_reported_failed_and_the_runs_formatter_still_speaks(
    live_console, sdk_agent, rita, reviewer_thread, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    reviewer_thread.decide(
        lambda approval: approval_request_approve(approval=approval, reviewer=rita)
    )
    result = author_venv.run(str(EXAMPLE), live_console.url, token, "failing", timeout=100)
    reviewer_thread.join()
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)

    # The Agents SDK caught the exception and told the model, in the run's own words...
    assert run["tool_outputs"] == ["Refund failed: card_declined"]
    assert run["final_output"] == "Could not refund."
    # ... and the console heard that the approved call failed, not that it worked.
    outcome = RequestOutcome.objects.get()
    assert (outcome.status, outcome.error) == ("failed", "CardDeclined: card_declined")
    # The adapter sent the agent's current span (opentelemetry-api in the author's venv).
    assert outcome.approval.traceparent == (
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    )


def test_a_tool_with_its_own_failure_error_function_is_reported_failed(
    live_console, sdk_agent, rita, reviewer_thread, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    reviewer_thread.decide(
        lambda approval: approval_request_approve(approval=approval, reviewer=rita)
    )
    result = author_venv.run(str(EXAMPLE), live_console.url, token, "failing-own", timeout=100)
    reviewer_thread.join()
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)

    # The tool's own failure_error_function turned the exception into the model's message...
    assert run["tool_outputs"] == ["Declined, tell the customer: card_declined"]
    # ... which is not the call's result: the console heard that the approved call failed.
    outcome = RequestOutcome.objects.get()
    assert (outcome.status, outcome.error, outcome.result) == (
        "failed",
        "CardDeclined: card_declined",
        None,
    )


@pytest.mark.parametrize("mode", ["mcp", "mcp-hooks-after-resolve"])
def test_the_calls_of_an_mcp_servers_tools_are_reported_and_traced(
    mode, live_console, sdk_agent, rita, reviewer_thread, author_venv: AuthorVenv
) -> None:
    # An MCP server's tools are built anew each turn: there is no tool to wrap at resolve time,
    # yet the console hears what the approved calls did, as for the agent's own function tools;
    # also when the agent's code replaces agent.hooks between resolve and the resumed run.
    _, token = sdk_agent
    approve = lambda approval: approval_request_approve(approval=approval, reviewer=rita)  # noqa: E731
    reviewer_thread.decide(approve, approve)
    result = author_venv.run(str(EXAMPLE), live_console.url, token, mode, timeout=100)
    reviewer_thread.join()
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    # The hooks the agent's code assigned still see every tool start.
    assert run["hooks_saw"] == ([] if mode == "mcp" else ["issue_refund", "void_charge"])

    assert run["paused_on"] == ["issue_refund", "void_charge"]
    declined = "Error executing tool void_charge: card_declined on ch_9"  # the MCP server's text
    assert run["tool_outputs"] == ["refunded 4900 on pay_7", declined]
    outcomes = {
        outcome.approval.tool: outcome
        for outcome in RequestOutcome.objects.select_related("approval")
    }
    refund, void = outcomes["issue_refund"], outcomes["void_charge"]
    assert (refund.status, refund.result, refund.source) == (
        "succeeded",
        "refunded 4900 on pay_7",
        "agent",
    )
    assert refund.duration_ms is not None
    # The MCP server answered with an error result: the model read its text, the call failed.
    assert (void.status, void.error) == ("failed", f"MCPToolError: {declined}")
    assert void.duration_ms is not None

    events = TraceEvent.objects.filter(run__code=run["run"], type="tool_call")
    traced = {event.data["tool"]: event.data for event in events}
    assert traced["issue_refund"]["result"] == "refunded 4900 on pay_7"
    assert traced["void_charge"]["error"] == f"MCPToolError: {declined}"
    assert {data["approval"] for data in traced.values()} == {
        str(outcome.approval.code) for outcome in outcomes.values()
    }
