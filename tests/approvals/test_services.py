from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.exceptions import IdempotencyConflict, TransitionConflict
from approvals.models import ApprovalEvent, Decision, Status
from approvals.services import (
    ALLOWED_TRANSITIONS,
    approval_request_approve,
    approval_request_cancel,
    approval_request_create,
    approval_request_deny,
    approval_request_expire,
    approval_request_expire_if_overdue,
    approval_requests_expire_overdue,
)
from tests.factories import AgentFactory, ApprovalRequestFactory, UserFactory, build_submission

pytestmark = pytest.mark.django_db


def _terminal_events(approval) -> int:
    return ApprovalEvent.objects.filter(approval=approval, from_status=Status.PENDING).count()


def test_it_allows_only_transitions_out_of_pending() -> None:
    assert set(ALLOWED_TRANSITIONS) == {Status.PENDING}
    assert ALLOWED_TRANSITIONS[Status.PENDING] == {
        Status.APPROVED,
        Status.DENIED,
        Status.EXPIRED,
        Status.CANCELLED,
    }


def test_it_creates_a_pending_request_with_a_submitted_event() -> None:
    agent = AgentFactory()
    approval, created = approval_request_create(
        agent=agent, idempotency_key="k1", submission=build_submission()
    )
    assert created
    assert approval.status == Status.PENDING
    assert approval.timeout_seconds == 1800
    assert abs((approval.deadline_at - timezone.now()) - timedelta(minutes=30)) < timedelta(
        seconds=5
    )
    event = approval.events.get()
    assert (event.kind, event.to_status, event.actor_agent) == ("submitted", Status.PENDING, agent)


def test_it_caps_the_timeout_at_the_configured_maximum(settings) -> None:
    settings.APPROVAL_MAX_TIMEOUT_SECONDS = 60
    approval, _ = approval_request_create(
        agent=AgentFactory(), idempotency_key="k", submission=build_submission(timeout="2h")
    )
    assert approval.timeout_seconds == 60
    assert approval.timeout == "2h"


def test_it_replays_the_same_key_and_fields_as_the_same_request() -> None:
    agent = AgentFactory()
    first, _ = approval_request_create(
        agent=agent, idempotency_key="k", submission=build_submission()
    )
    again, created = approval_request_create(
        agent=agent,
        idempotency_key="k",
        submission=build_submission(arguments={"amount": 4900, "payment_id": "pay_1"}),
    )
    assert not created
    assert again.pk == first.pk


def test_it_refuses_the_same_key_with_different_fields() -> None:
    agent = AgentFactory()
    approval_request_create(agent=agent, idempotency_key="k", submission=build_submission())
    with pytest.raises(IdempotencyConflict):
        approval_request_create(
            agent=agent, idempotency_key="k", submission=build_submission(arguments={"amount": 1})
        )
    assert agent.approval_requests.count() == 1


def test_it_scopes_idempotency_keys_to_the_agent() -> None:
    first, _ = approval_request_create(
        agent=AgentFactory(), idempotency_key="k", submission=build_submission()
    )
    second, created = approval_request_create(
        agent=AgentFactory(), idempotency_key="k", submission=build_submission()
    )
    assert created and second.pk != first.pk


def test_it_approves_with_a_decision_that_lets_the_agent_start_for_a_while(settings) -> None:
    settings.APPROVAL_VALIDITY_SECONDS = 300
    approval = ApprovalRequestFactory()
    reviewer = UserFactory()
    approved = approval_request_approve(approval=approval, reviewer=reviewer, note="Confirmed.")
    assert approved.status == Status.APPROVED
    decision = Decision.objects.get(approval=approval)
    assert decision.reviewer == reviewer and decision.note == "Confirmed."
    assert decision.expires_at - decision.decided_at == timedelta(seconds=300)
    event = approval.events.get(kind="approved")
    assert (event.from_status, event.to_status, event.actor_user) == (
        Status.PENDING,
        Status.APPROVED,
        reviewer,
    )


def test_it_denies_with_the_reason() -> None:
    approval = ApprovalRequestFactory()
    denied = approval_request_deny(approval=approval, reviewer=UserFactory(), reason="Not ours.")
    assert denied.status == Status.DENIED
    assert denied.decision.note == "Not ours."
    assert denied.decision.expires_at is None


def test_it_requires_a_reason_to_deny() -> None:
    approval = ApprovalRequestFactory()
    with pytest.raises(ValueError, match="reason"):
        approval_request_deny(approval=approval, reviewer=UserFactory(), reason="   ")
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_it_cancels_and_a_second_cancel_returns_the_cancelled_request() -> None:
    approval = ApprovalRequestFactory()
    cancelled = approval_request_cancel(approval=approval, agent=approval.agent)
    assert cancelled.status == Status.CANCELLED
    again = approval_request_cancel(approval=approval, agent=approval.agent)
    assert again.status == Status.CANCELLED
    assert _terminal_events(approval) == 1


def test_it_refuses_to_cancel_a_decided_request() -> None:
    approval = ApprovalRequestFactory()
    approval_request_approve(approval=approval, reviewer=UserFactory())
    with pytest.raises(TransitionConflict) as conflict:
        approval_request_cancel(approval=approval, agent=approval.agent)
    assert conflict.value.current_status == Status.APPROVED


@pytest.mark.parametrize("second", ["approve", "deny", "expire"])
def test_it_gives_a_decided_request_no_second_outcome(second: str) -> None:
    approval = ApprovalRequestFactory()
    approval_request_deny(approval=approval, reviewer=UserFactory(), reason="No.")
    with pytest.raises(TransitionConflict):
        if second == "approve":
            approval_request_approve(approval=approval, reviewer=UserFactory())
        elif second == "deny":
            approval_request_deny(approval=approval, reviewer=UserFactory(), reason="Again.")
        else:
            approval.deadline_at = timezone.now() - timedelta(seconds=1)
            approval.save(update_fields=["deadline_at"])
            approval_request_expire(approval=approval)
    approval.refresh_from_db()
    assert approval.status == Status.DENIED
    assert _terminal_events(approval) == 1


def test_it_never_approves_after_the_deadline_and_expires_instead() -> None:
    approval = ApprovalRequestFactory(deadline_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(TransitionConflict) as conflict:
        approval_request_approve(approval=approval, reviewer=UserFactory())
    assert conflict.value.current_status == Status.EXPIRED
    approval.refresh_from_db()
    assert approval.status == Status.EXPIRED
    assert approval.decision.reviewer is None


def test_it_does_not_expire_before_the_deadline() -> None:
    approval = ApprovalRequestFactory()
    with pytest.raises(TransitionConflict):
        approval_request_expire(approval=approval)
    assert approval_request_expire_if_overdue(approval=approval).status == Status.PENDING


def test_it_expires_overdue_requests_in_a_sweep_and_leaves_the_rest() -> None:
    overdue = ApprovalRequestFactory(deadline_at=timezone.now() - timedelta(seconds=1))
    current = ApprovalRequestFactory()
    decided = ApprovalRequestFactory()
    approval_request_approve(approval=decided, reviewer=UserFactory())
    assert approval_requests_expire_overdue() == 1
    overdue.refresh_from_db()
    current.refresh_from_db()
    assert overdue.status == Status.EXPIRED
    assert current.status == Status.PENDING
    assert overdue.decision.note == "No decision before the deadline."


def test_it_expires_an_overdue_request_when_a_replay_reads_it() -> None:
    agent = AgentFactory()
    approval, _ = approval_request_create(
        agent=agent, idempotency_key="k", submission=build_submission()
    )
    approval.deadline_at = timezone.now() - timedelta(seconds=1)
    approval.save(update_fields=["deadline_at"])
    replay, _ = approval_request_create(
        agent=agent, idempotency_key="k", submission=build_submission()
    )
    assert replay.status == Status.EXPIRED


def test_it_approves_with_changed_arguments() -> None:
    approval = ApprovalRequestFactory(arguments={"amount": 4900})
    approved = approval_request_approve(
        approval=approval, reviewer=UserFactory(), arguments={"amount": 2500}
    )
    assert approved.decision.approved_arguments == {"amount": 2500}
    approved.refresh_from_db()
    assert approved.arguments == {"amount": 4900}  # what was submitted never changes


def test_it_treats_unchanged_arguments_as_a_plain_approval() -> None:
    approval = ApprovalRequestFactory(arguments={"amount": 4900})
    approved = approval_request_approve(
        approval=approval, reviewer=UserFactory(), arguments={"amount": 4900}
    )
    assert approved.decision.approved_arguments is None


def test_only_a_reviewers_decision_is_tied_to_the_team_it_saw() -> None:
    """An agent cancelling a request that is past its deadline gets the expiry, as always, even
    when its copy of the request predates an escalation: the team is a reviewer's question."""
    from approvals.models import ApprovalRequest
    from tests.factories import TeamFactory

    first, second = TeamFactory(name="first"), TeamFactory(name="second")
    stale = ApprovalRequestFactory(team=first, deadline_at=timezone.now() - timedelta(seconds=1))
    ApprovalRequest.objects.filter(pk=stale.pk).update(team=second)

    with pytest.raises(TransitionConflict) as conflict:
        approval_request_cancel(approval=stale, agent=stale.agent)

    assert conflict.value.current_status == Status.EXPIRED
    assert ApprovalRequest.objects.get(pk=stale.pk).status == Status.EXPIRED
