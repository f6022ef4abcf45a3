"""A claim acknowledges a request: its escalation chain waits while the claim lives."""

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.escalations import escalations_fire_due
from approvals.models import ApprovalClaim, EscalationChain, EscalationFiring, EscalationStep
from approvals.reviews import approval_claim_release
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def claimed():
    """A request whose first step (after 5 minutes) is due, claimed by alice of its team."""
    alice = UserFactory(username="alice")
    team = TeamFactory(name="first-line", members=[alice])
    chain = EscalationChain.objects.create(name="payments")
    EscalationStep.objects.create(
        chain=chain, position=1, after_minutes=5, notify_team=team, notify_slack=False
    )
    start = timezone.now() - timedelta(minutes=6)
    approval = ApprovalRequestFactory(
        team=team, escalation_chain=chain, deadline_at=start + timedelta(minutes=30)
    )
    type(approval).objects.filter(pk=approval.pk).update(created_at=start)
    approval.refresh_from_db()
    now = timezone.now()
    ApprovalClaim.objects.create(
        approval=approval, reviewer=alice, claimed_at=now, expires_at=now + timedelta(minutes=10)
    )
    return approval, alice, now


def test_it_waits_while_the_request_is_claimed(claimed) -> None:
    approval, _, now = claimed
    assert escalations_fire_due(now=now) == 0
    assert escalations_fire_due(now=now + timedelta(minutes=9)) == 0
    assert not EscalationFiring.objects.filter(approval=approval).exists()


def test_it_resumes_when_the_claim_lapses(claimed) -> None:
    approval, _, now = claimed
    assert escalations_fire_due(now=now + timedelta(minutes=10, seconds=1)) == 1
    assert EscalationFiring.objects.filter(approval=approval).count() == 1


def test_it_resumes_when_the_claim_is_released(claimed) -> None:
    approval, alice, now = claimed
    approval_claim_release(approval=approval, reviewer=alice)
    assert escalations_fire_due(now=now) == 1
