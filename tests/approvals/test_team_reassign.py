"""Moving a request to another team: one service (approvals.reassign) for the reviewer's
escalation, an escalation chain's step and the reviewer API, so each leaves the same state:
the old team's live queue drops the row, claims end, the history and the trail say why."""

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.utils import timezone

from approvals import realtime
from approvals.escalations import escalations_fire_due
from approvals.models import ApprovalClaim, EscalationChain, EscalationStep
from approvals.reviews import check_approval_request_escalate
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory
from tests.thread_connections import db_to_thread

# Real commits: the push is sent after commit, on the configured channel layer.
pytestmark = pytest.mark.django_db(transaction=True)


def _old_team_hears(group: str, act: Callable[[], object]) -> list[dict[str, Any]]:
    """What a member of `group` receives while `act` runs, up to the first revoke message.

    One event loop throughout: a Redis layer's channel lives in the loop that created it."""

    async def scenario() -> list[dict[str, Any]]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        await db_to_thread(act)
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["type"] != realtime.EVENT_QUEUE_REVOKE:
            seen.append(await asyncio.wait_for(layer.receive(channel), 5))
        return seen

    return asyncio.run(scenario())


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
    fired: list[int] = []

    received = _old_team_hears(
        realtime.team_group(first_line.pk),
        lambda: fired.append(escalations_fire_due(now=approval.created_at + timedelta(minutes=6))),
    )

    assert fired == [1]
    assert f'id="approval-{approval.code}" hx-swap-oob="delete"' in received[-1]["html"]
    assert not ApprovalClaim.objects.filter(approval=approval).exists()


def test_it_drops_the_row_from_the_old_team_and_ends_claims_when_a_reviewer_escalates() -> None:
    alice = UserFactory(username="alice")
    first_line = TeamFactory(name="first-line", members=[alice])
    second_line = TeamFactory(name="second-line")
    approval = ApprovalRequestFactory(team=first_line)
    _claimed(approval, alice)
    received = _old_team_hears(
        realtime.team_group(first_line.pk),
        lambda: check_approval_request_escalate(
            approval=approval, reviewer=alice, team=second_line, note="Fraud?"
        ),
    )
    assert f'id="approval-{approval.code}" hx-swap-oob="delete"' in received[-1]["html"]
    assert not ApprovalClaim.objects.filter(approval=approval).exists()
