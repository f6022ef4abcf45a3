"""Moving a request to another team: one service (approvals.reassign) for the reviewer's
escalation, an escalation chain's step and the reviewer API, so each leaves the same state:
the old team's live queue drops the row, claims end, the history and the trail say why."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from approvals import realtime
from approvals.escalations import escalations_fire_due
from approvals.models import ApprovalClaim, EscalationChain, EscalationStep
from approvals.reviews import check_approval_request_escalate
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory

# Real commits: the push is sent after commit, on the configured channel layer.
pytestmark = pytest.mark.django_db(transaction=True)


def _listen_to(group: str) -> str:
    layer = get_channel_layer()
    channel: str = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def _messages_until(channel: str, event_type: str) -> list[dict[str, Any]]:
    """What the group's member received, up to the first message of `event_type`."""
    layer = get_channel_layer()

    async def receive() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["type"] != event_type:
            seen.append(await asyncio.wait_for(layer.receive(channel), 5))
        return seen

    return async_to_sync(receive)()


def _claimed(approval: Any, reviewer: Any) -> None:
    now = timezone.now()
    ApprovalClaim.objects.create(
        approval=approval, reviewer=reviewer, claimed_at=now, expires_at=now + timedelta(minutes=5)
    )


def test_it_drops_the_row_from_the_old_team_and_ends_claims_when_a_chain_reassigns() -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    first_line = TeamFactory(name="first-line", members=[alice])
    second_line = TeamFactory(name="second-line", members=[bob])
    chain = EscalationChain.objects.create(name="payments")
    EscalationStep.objects.create(
        chain=chain, position=1, after_minutes=5, reassign_to=second_line, notify_slack=False
    )
    approval = ApprovalRequestFactory(team=first_line, escalation_chain=chain)
    _claimed(approval, alice)
    old_queue = _listen_to(realtime.team_group(first_line.pk))

    assert escalations_fire_due(now=approval.created_at + timedelta(minutes=6)) == 1

    received = _messages_until(old_queue, realtime.EVENT_QUEUE_REVOKE)
    assert f'id="approval-{approval.code}" hx-swap-oob="delete"' in received[-1]["html"]
    assert not ApprovalClaim.objects.filter(approval=approval).exists()


def test_it_drops_the_row_from_the_old_team_and_ends_claims_when_a_reviewer_escalates() -> None:
    alice = UserFactory(username="alice")
    first_line = TeamFactory(name="first-line", members=[alice])
    second_line = TeamFactory(name="second-line")
    approval = ApprovalRequestFactory(team=first_line)
    _claimed(approval, alice)
    old_queue = _listen_to(realtime.team_group(first_line.pk))

    check_approval_request_escalate(
        approval=approval, reviewer=alice, team=second_line, note="Fraud?"
    )

    received = _messages_until(old_queue, realtime.EVENT_QUEUE_REVOKE)
    assert f'id="approval-{approval.code}" hx-swap-oob="delete"' in received[-1]["html"]
    assert not ApprovalClaim.objects.filter(approval=approval).exists()
