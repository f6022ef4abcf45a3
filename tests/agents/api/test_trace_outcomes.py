"""A run's trace event for a tool call that names its approval request counts as the request's
outcome (source trace), so agents that only send traces report outcomes too."""

import pytest

from approvals.models import RequestOutcome
from approvals.services import approval_request_approve
from tests.factories import ApprovalRequestFactory, UserFactory, agent_with_token

pytestmark = pytest.mark.django_db


def _approved(agent):
    return approval_request_approve(
        approval=ApprovalRequestFactory(agent=agent), reviewer=UserFactory(is_staff=True)
    )


def _append(client, run_id: str, events: list[dict]):
    return client.post(f"/api/v1/runs/{run_id}/events", {"events": events}, format="json")


def test_it_records_a_failed_tool_call_as_the_requests_outcome(
    agent_client, agent_and_token
) -> None:
    approval = _approved(agent_and_token[0])
    run_id = agent_client.post("/api/v1/runs", {"name": "r"}, format="json").json()["id"]
    event = {
        "type": "tool_call",
        "tool": "issue_refund",
        "approval": str(approval.code),
        "error": "card_declined",
        "cost": "0.01",
    }
    assert _append(agent_client, run_id, [event]).status_code == 201
    outcome = RequestOutcome.objects.get(approval=approval)
    assert (outcome.status, outcome.source, outcome.error) == ("failed", "trace", "card_declined")
    read = agent_client.get(f"/api/v1/requests/{approval.code}").json()
    assert read["outcome"]["status"] == "failed" and read["outcome"]["source"] == "trace"


def test_it_records_a_result_as_success_and_ignores_calls_without_an_ending(
    agent_client, agent_and_token
) -> None:
    finished, started = _approved(agent_and_token[0]), _approved(agent_and_token[0])
    run_id = agent_client.post("/api/v1/runs", {"name": "r"}, format="json").json()["id"]
    events = [
        {"type": "tool_call", "tool": "t", "approval": str(finished.code), "result": {"ok": 1}},
        {"type": "tool_call", "tool": "t", "approval": str(started.code)},
    ]
    assert _append(agent_client, run_id, events).status_code == 201
    assert RequestOutcome.objects.get(approval=finished).result == {"ok": 1}
    assert not RequestOutcome.objects.filter(approval=started).exists()


def test_it_neither_records_nor_fails_for_another_agents_or_an_already_reported_request(
    agent_client, agent_and_token
) -> None:
    stranger, _ = agent_with_token(name="stranger")
    theirs = _approved(stranger)
    run_id = agent_client.post("/api/v1/runs", {"name": "r"}, format="json").json()["id"]
    event = {"type": "tool_call", "tool": "t", "approval": str(theirs.code), "result": 1}
    assert _append(agent_client, run_id, [event]).status_code == 201
    assert not RequestOutcome.objects.exists()
    ours = _approved(agent_and_token[0])
    body = {"status": "succeeded"}
    agent_client.post(f"/api/v1/requests/{ours.code}/outcome", body, format="json")
    event = {"type": "tool_call", "tool": "t", "approval": str(ours.code), "error": "late"}
    assert _append(agent_client, run_id, [event]).status_code == 201
    assert RequestOutcome.objects.get().status == "succeeded"


def test_it_records_a_call_that_never_ran_as_not_executed(agent_client, agent_and_token) -> None:
    approval = _approved(agent_and_token[0])
    run_id = agent_client.post("/api/v1/runs", {"name": "r"}, format="json").json()["id"]
    event = {
        "type": "tool_call",
        "tool": "t",
        "approval": str(approval.code),
        "error": "Not run: the approval expired.",
        "metadata": {"ran": False},
    }
    assert _append(agent_client, run_id, [event]).status_code == 201
    assert RequestOutcome.objects.get(approval=approval).status == "not_executed"
