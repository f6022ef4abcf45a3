"""4_requests.md: the request resource, states, decisions, deadlines and execution rules."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from approvals.exceptions import TransitionConflict
from approvals.models import ApprovalEvent, ApprovalRequest, Status
from approvals.services import (
    approval_request_approve,
    approval_request_cancel,
    approval_request_deny,
)
from tests.agents.aap.conftest import BASE, REFUND

pytestmark = pytest.mark.django_db


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _approval(body: dict) -> ApprovalRequest:
    return ApprovalRequest.objects.get(code=body["id"])


def test_the_resource_contains_the_submitted_call_and_the_reasoning_as_sent(instance) -> None:
    body = instance.create(
        {**REFUND, "agent_reasoning": "The customer was charged twice.", "context": {"s": "1"}}
    ).json()
    assert body["tool"] == REFUND["tool"]
    assert body["arguments"] == REFUND["arguments"]
    assert body["agent_reasoning"] == "The customer was charged twice."
    assert body["context"] == {"s": "1"}
    assert _approval(body).source == "aap"


def test_an_approved_decision_matches_and_expires_after_it_was_decided(instance, reviewer) -> None:
    body = instance.create().json()
    approval_request_approve(approval=_approval(body), reviewer=reviewer, note="Confirmed.")
    read = instance.client.get(f"{BASE}/requests/{body['id']}").json()
    decision = read["decision"]
    assert read["status"] == decision["status"] == "approved"
    assert decision["note"] == "Confirmed."
    assert _at(decision["expires_at"]) > _at(decision["decided_at"])
    # Reading again does not extend it.
    again = instance.client.get(f"{BASE}/requests/{body['id']}").json()
    assert again["decision"]["expires_at"] == decision["expires_at"]


def test_other_outcomes_have_no_expires_at(instance, reviewer) -> None:
    body = instance.create().json()
    approval_request_deny(approval=_approval(body), reviewer=reviewer, reason="No.")
    decision = instance.client.get(f"{BASE}/requests/{body['id']}").json()["decision"]
    assert decision["status"] == "denied"
    assert "expires_at" not in decision


def test_deadline_may_be_shortened_but_never_lengthened(instance, settings) -> None:
    settings.APPROVAL_MAX_TIMEOUT_SECONDS = 3600
    short = instance.create({**REFUND, "timeout": "90s"}).json()
    window = _at(short["deadline_at"]) - _at(short["created_at"])
    assert timedelta(seconds=89) <= window <= timedelta(seconds=91)

    long = instance.create({**REFUND, "timeout": "48h"}).json()
    assert long["timeout"] == "48h"  # the requested window is echoed as requested
    assert _at(long["deadline_at"]) - _at(long["created_at"]) <= timedelta(hours=1, seconds=1)


def test_a_request_past_its_deadline_is_expired_never_approved_late(instance, reviewer) -> None:
    body = instance.create().json()
    ApprovalRequest.objects.filter(code=body["id"]).update(
        deadline_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(TransitionConflict):
        approval_request_approve(approval=_approval(body), reviewer=reviewer)
    read = instance.client.get(f"{BASE}/requests/{body['id']}").json()
    assert read["status"] == "expired"
    assert read["decision"]["status"] == "expired"
    assert "expires_at" not in read["decision"]


def test_a_terminal_request_never_changes_state(instance, reviewer) -> None:
    body = instance.create().json()
    approval_request_cancel(approval=_approval(body), agent=instance.agent)
    with pytest.raises(TransitionConflict):
        approval_request_approve(approval=_approval(body), reviewer=reviewer)
    assert _approval(body).status == Status.CANCELLED


def test_an_edit_by_the_reviewer_is_a_denial_carrying_the_suggested_arguments(
    instance, reviewer
) -> None:
    body = instance.create().json()
    suggested = {"payment_id": "payment_123", "amount": 2450, "currency": "GBP"}
    approval_request_approve(
        approval=_approval(body), reviewer=reviewer, note="Half only.", arguments=suggested
    )
    read = instance.client.get(f"{BASE}/requests/{body['id']}").json()
    # Never "approved" with other arguments: the adapter would run the submitted call.
    assert read["status"] == "denied"
    assert '"amount": 2450' in read["decision"]["note"]
    assert "Half only." in read["decision"]["note"]
    assert read["arguments"] == REFUND["arguments"]


def test_an_exact_resubmission_of_the_suggestion_is_approved_at_once(instance, reviewer) -> None:
    original = instance.create().json()
    suggested = {"payment_id": "payment_123", "amount": 2450, "currency": "GBP"}
    approval_request_approve(approval=_approval(original), reviewer=reviewer, arguments=suggested)

    # Not the suggestion (2450.0 is not 2450): stays pending for a person.
    near = instance.create({**REFUND, "arguments": {**suggested, "amount": 2450.0}})
    assert near.json()["status"] == "pending"

    response = instance.create({**REFUND, "arguments": dict(reversed(suggested.items()))})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "approved"
    assert _at(body["decision"]["expires_at"]) > _at(body["decision"]["decided_at"])
    approval = _approval(body)
    assert approval.approved_as_suggested_on.code.hex == original["id"].replace("-", "")
    event = ApprovalEvent.objects.get(approval=approval, to_status=Status.APPROVED)
    assert event.kind == "approved_as_suggested"
    assert event.actor_user == reviewer

    # One suggestion permits one execution: a second resubmission waits for a person.
    assert instance.create({**REFUND, "arguments": suggested}).json()["status"] == "pending"


def test_a_suggestion_is_not_approved_for_another_instance(provisioner, instance, reviewer) -> None:
    from tests.agents.aap.conftest import provision

    original = instance.create().json()
    suggested = {"payment_id": "payment_123", "amount": 1, "currency": "GBP"}
    approval_request_approve(approval=_approval(original), reviewer=reviewer, arguments=suggested)
    other = provision(provisioner, instance_name="other")
    assert other.create({**REFUND, "arguments": suggested}).json()["status"] == "pending"


def test_the_reviewer_sees_the_exact_arguments_the_agent_will_run(
    client, instance, reviewer
) -> None:
    raw = (
        '{"tool": "t", "timeout": "5m",'
        ' "arguments": {"z": 0.1000000000000000055511151231257827, "a": 1}}'
    )
    body = instance.client.post(
        f"{BASE}/requests", raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-exact"
    ).json()
    client.force_login(reviewer)
    page = client.get(f"/requests/{body['id']}/").content.decode()
    assert "0.1000000000000000055511151231257827" in page
    assert page.index("&quot;z&quot;") < page.index("&quot;a&quot;")
