"""POST /api/v1/requests/{id}/outcome: what happened after the decision, one outcome per request."""

import pytest
from rest_framework.test import APIClient

from approvals.audit import AuditAction
from approvals.models import ApprovalRequest, AuditRecord, RequestOutcome
from approvals.services import approval_request_approve, approval_request_deny
from tests.factories import ApprovalRequestFactory, UserFactory, agent_with_token

pytestmark = pytest.mark.django_db

FAILED = {"status": "failed", "error": "card_declined", "duration_ms": 412, "cost": "0.02"}


@pytest.fixture
def approved(agent_and_token) -> ApprovalRequest:
    agent, _ = agent_and_token
    approval = ApprovalRequestFactory(agent=agent)
    return approval_request_approve(approval=approval, reviewer=UserFactory(is_staff=True))


def _report(client: APIClient, approval: ApprovalRequest, body: object):
    return client.post(f"/api/v1/requests/{approval.code}/outcome", body, format="json")


def test_it_records_a_success_and_the_read_carries_it(agent_client, approved) -> None:
    before = agent_client.get(f"/api/v1/requests/{approved.code}").json()
    assert before["outcome"] is None
    body = {"status": "succeeded", "result": {"refund": "re_1"}, "duration_ms": 80}
    response = _report(agent_client, approved, {**body, "cost": 0.5, "currency": "EUR"})
    assert response.status_code == 201, response.content
    outcome = response.json()["outcome"]
    assert outcome["status"] == "succeeded" and outcome["result"] == {"refund": "re_1"}
    assert outcome["source"] == "agent" and outcome["duration_ms"] == 80
    assert outcome["cost"] == "0.50000000" and outcome["currency"] == "EUR"
    assert agent_client.get(f"/api/v1/requests/{approved.code}").json()["outcome"] == outcome
    assert AuditRecord.objects.filter(
        action=AuditAction.OUTCOME_REPORTED, object_id=str(approved.code)
    ).exists()


def test_it_answers_the_same_report_again_with_the_same_outcome(agent_client, approved) -> None:
    first = _report(agent_client, approved, FAILED)
    again = _report(agent_client, approved, FAILED)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["outcome"] == first.json()["outcome"]
    assert RequestOutcome.objects.count() == 1
    assert AuditRecord.objects.filter(action=AuditAction.OUTCOME_REPORTED).count() == 1


def test_it_refuses_a_different_second_report(agent_client, approved) -> None:
    assert _report(agent_client, approved, FAILED).status_code == 201
    response = _report(agent_client, approved, {"status": "succeeded"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "outcome_already_reported"
    assert RequestOutcome.objects.get().status == "failed"


def test_it_refuses_an_execution_report_for_a_request_not_approved(
    agent_client, agent_and_token
) -> None:
    pending = ApprovalRequestFactory(agent=agent_and_token[0])
    response = _report(agent_client, pending, {"status": "succeeded"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_approved"
    assert not RequestOutcome.objects.exists()


def test_it_allows_not_executed_for_a_denied_request(agent_client, agent_and_token) -> None:
    denied = approval_request_deny(
        approval=ApprovalRequestFactory(agent=agent_and_token[0]),
        reviewer=UserFactory(is_staff=True),
        reason="No.",
    )
    assert _report(agent_client, denied, {"status": "failed"}).status_code == 409
    response = _report(agent_client, denied, {"status": "not_executed", "error": "denied"})
    assert response.status_code == 201, response.content
    assert response.json()["outcome"]["status"] == "not_executed"


def test_it_answers_404_for_another_agents_request(agent_client) -> None:
    stranger, _ = agent_with_token(name="stranger")
    theirs = approval_request_approve(
        approval=ApprovalRequestFactory(agent=stranger), reviewer=UserFactory(is_staff=True)
    )
    response = _report(agent_client, theirs, {"status": "succeeded"})
    assert response.status_code == 404
    assert not RequestOutcome.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "done"}, "status"),
        ({"status": "not_reported"}, "status"),
        ({}, "status"),
        ({"status": "failed", "duration_ms": -1}, "duration_ms"),
        ({"status": "failed", "cost": "lots"}, "cost"),
        ({"status": "failed", "currency": "euro"}, "currency"),
        ({"status": "failed", "error": "x" * 20_001}, "error"),
        ({"status": "failed", "result": "x" * 70_000}, "result"),
        ({"status": "failed", "colour": "red"}, "colour"),
    ],
)
def test_it_refuses_bad_input_naming_the_field(agent_client, approved, body, field) -> None:
    response = _report(agent_client, approved, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == field
    assert not RequestOutcome.objects.exists()
