"""LangChain 1.x's HumanInTheLoopMiddleware decided in the console: the real `langchain` package,
in an agent author's venv (it is not in the console's own), against the live console, with a
reviewer deciding in the console. The example script covers the batched mode
(test_examples.py); these cover per-call mode, the review configs the console's decision does not
fit, retries and asyncio."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agents.models import TraceEvent
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_deny
from tests.agents.sdk.author_venv import AUTHOR_VENV_TIMEOUT, EXAMPLES, AuthorVenv

pytestmark = [pytest.mark.django_db(transaction=True), AUTHOR_VENV_TIMEOUT]

AGENT = Path(__file__).with_name("langchain_hitl_agent.py")
NOT_APPROVED = "User rejected the tool call for `issue_refund` with reason: "


def _last_line(result: subprocess.CompletedProcess) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _run(author_venv: AuthorVenv, live_console: Any, token: str, scenario: str) -> dict[str, Any]:
    return _last_line(author_venv.run(str(AGENT), live_console.url, token, scenario, timeout=100))


def test_per_call_mode_runs_the_reviewers_arguments_and_not_the_denied_call(
    live_console, sdk_agent, rita, reviewer_thread, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent

    def decide(approval: ApprovalRequest) -> None:
        if approval.tool == "issue_refund":
            changed = {"payment_id": "pay_7", "amount": 2500}
            approval_request_approve(approval=approval, reviewer=rita, arguments=changed)
        else:
            approval_request_deny(approval=approval, reviewer=rita, reason="No email today.")

    reviewer_thread.decide(decide, decide)
    result = author_venv.run(
        str(EXAMPLES / "langchain_hitl.py"),
        "pay_7",
        "4900",
        "per_call",
        env={"APPROVAL_CONSOLE_URL": live_console.url, "APPROVAL_CONSOLE_CREDENTIAL": token},
    )
    reviewer_thread.join()
    outcome = _last_line(result)

    # An edit: the middleware ran the reviewer's arguments, and told the model so.
    assert outcome["tools"]["issue_refund"].endswith("refunded 2500 on pay_7")
    assert outcome["tools"]["send_email"] == (
        "User rejected the tool call for `send_email` with reason: "
        "Not approved in the approval console (denied): No email today."
    )
    assert outcome["final"] == "Done."
    refund = ApprovalRequest.objects.get(tool="issue_refund")
    assert (refund.summary, refund.impact) == ("Refund 4900", "high")
    # Per-call interrupts carry the tool's argument schema: the console checks changes with it.
    assert refund.arguments_schema["properties"]["amount"]["type"] == "integer"
    assert ApprovalRequest.objects.count() == 2


def test_changed_arguments_the_review_cannot_take_are_not_run(
    live_console, sdk_agent, rita, reviewer_thread, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    reviewer_thread.decide(
        lambda approval: approval_request_approve(
            approval=approval, reviewer=rita, arguments={"payment_id": "pay_7", "amount": 100}
        )
    )
    outcome = _run(author_venv, live_console, token, "no-edit")
    reviewer_thread.join()

    # The middleware would run the model's 4900, not the reviewer's 100: neither runs.
    assert outcome["ran"] == []
    (message,) = outcome["tool_messages"]
    assert message.startswith(NOT_APPROVED + "A reviewer approved this call only with changed")
    # The console hears that the approved call was not executed.
    assert ApprovalRequest.objects.get().outcome.status == "not_executed"


def test_a_refusal_the_review_cannot_express_leaves_the_agent_paused(
    live_console, sdk_agent, rita, reviewer_thread, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    reviewer_thread.decide(
        lambda approval: approval_request_deny(approval=approval, reviewer=rita, reason="No.")
    )
    outcome = _run(author_venv, live_console, token, "approve-only")
    reviewer_thread.join()

    assert outcome["ran"] == []
    assert "allows only ['approve']" in outcome["error"]
    assert outcome["paused"] is True


def test_a_retry_after_a_timeout_finds_the_request_already_filed(
    live_console, sdk_agent, rita, reviewer_thread, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    reviewer_thread.decide(
        lambda approval: approval_request_approve(approval=approval, reviewer=rita)
    )
    outcome = _run(author_venv, live_console, token, "retry")
    reviewer_thread.join()

    assert outcome["timed_out"] is True
    assert outcome["ran"] == [{"payment_id": "pay_7", "amount": 4900}]
    assert ApprovalRequest.objects.count() == 1


def test_an_async_agent_is_resumed_with_the_decision(
    live_console, sdk_agent, rita, reviewer_thread, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    reviewer_thread.decide(
        lambda approval: approval_request_approve(approval=approval, reviewer=rita)
    )
    outcome = _run(author_venv, live_console, token, "async")
    reviewer_thread.join()

    assert outcome["ran"] == [{"payment_id": "pay_7", "amount": 4900}]
    assert outcome["tool_messages"] == ["refunded 4900 on pay_7"]


def _approve_all(rita: Any, *, refund: dict[str, Any] | None = None) -> Any:
    def decide(approval: ApprovalRequest) -> None:
        arguments = refund if approval.tool == "issue_refund" else None
        approval_request_approve(approval=approval, reviewer=rita, arguments=arguments)

    return decide


def _outcomes() -> dict[str, tuple[str, Any, str]]:
    return {
        approval.tool: (approval.outcome.status, approval.outcome.result, approval.outcome.error)
        for approval in ApprovalRequest.objects.select_related("outcome")
    }


def _assert_timed_and_traced(run_id: str) -> None:
    """As from the decorator: each call that ran carries its duration, and each report is a
    tool_call event in the run's trace, naming its request, whose run it is."""
    approvals = {a.tool: a for a in ApprovalRequest.objects.select_related("outcome", "run")}
    assert {tool: a.outcome.duration_ms is not None for tool, a in approvals.items()} == {
        "issue_refund": True,
        "check_card": True,
        "send_email": True,
    }
    assert {str(a.run.code) for a in approvals.values() if a.run} == {run_id}
    events = TraceEvent.objects.filter(run__code=run_id, type="tool_call")
    traced = {event.data["approval"]: event.data for event in events}
    refund, card, email = (
        traced[str(approvals[tool].code)] for tool in ("issue_refund", "check_card", "send_email")
    )
    assert refund["result"] == approvals["issue_refund"].outcome.result
    assert refund["metadata"]["ran"] is True
    assert card["error"] == "card behind pay_7 declined"
    assert email["error"] == "RuntimeError: mail server down"


def test_the_approved_calls_outcomes_are_reported_from_what_the_agent_did(
    live_console, sdk_agent, rita, reviewer_thread, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    decide = _approve_all(rita)
    reviewer_thread.decide(decide, decide, decide)
    outcome = _run(author_venv, live_console, token, "outcomes")
    reviewer_thread.join()

    # The email's exception went through invoke, on the turn after the other two ran.
    assert outcome["raised"] == "mail server down"
    assert outcome["ran"] == [{"payment_id": "pay_7", "amount": 4900}]
    assert _outcomes() == {
        # Its ToolMessage: the tool's return, as the result.
        "issue_refund": ("succeeded", "refunded 4900 on pay_7", ""),
        # A ToolMessage with status="error": the tool's error, handled into the message.
        "check_card": ("failed", None, "card behind pay_7 declined"),
        # Its task failed: the exception, as the decorator reports one.
        "send_email": ("failed", None, "RuntimeError: mail server down"),
    }
    assert set(ApprovalRequest.objects.values_list("outcome__source", flat=True)) == {"agent"}
    _assert_timed_and_traced(outcome["run"])


def test_per_call_outcomes_are_reported_by_an_async_agent_with_the_reviewers_arguments(
    live_console, sdk_agent, rita, reviewer_thread, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    decide = _approve_all(rita, refund={"payment_id": "pay_7", "amount": 2500})
    reviewer_thread.decide(decide, decide, decide)
    outcome = _run(author_venv, live_console, token, "outcomes-async")
    reviewer_thread.join()

    assert outcome["raised"] == "mail server down"
    assert outcome["ran"] == [{"payment_id": "pay_7", "amount": 2500}]
    assert _outcomes() == {
        # The reviewer's arguments ran: the result is the tool's, without the middleware's notice.
        "issue_refund": ("succeeded", "refunded 2500 on pay_7", ""),
        "check_card": ("failed", None, "card behind pay_7 declined"),
        # Per-call interrupts name their call: the failed task's exception is its call's.
        "send_email": ("failed", None, "RuntimeError: mail server down"),
    }
    _assert_timed_and_traced(outcome["run"])


@pytest.mark.parametrize("scenario", ["own-config", "own-config-async"])
def test_outcomes_are_timed_when_the_agent_is_resumed_with_its_own_config(
    scenario, live_console, sdk_agent, rita, reviewer_thread, author_venv: AuthorVenv
) -> None:
    _, token = sdk_agent
    decide = _approve_all(rita)
    reviewer_thread.decide(decide, decide, decide)
    # Resumed with the config the agent was started with (a worker thread's, for the blocking
    # one), never with review.invoke_config.
    outcome = _run(author_venv, live_console, token, scenario)
    reviewer_thread.join()

    assert outcome["raised"] == "mail server down"
    assert _outcomes() == {
        "issue_refund": ("succeeded", "refunded 4900 on pay_7", ""),
        "check_card": ("failed", None, "card behind pay_7 declined"),
        "send_email": ("failed", None, "RuntimeError: mail server down"),
    }
    _assert_timed_and_traced(outcome["run"])
