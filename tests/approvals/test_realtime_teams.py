"""Realtime events per team: shapes, escalation hand-over, and access re-checked on every event."""

import asyncio
from typing import Any

import pytest

from approvals import realtime
from approvals.models import ReviewerPresence
from approvals.reviews import check_approval_request_comment, check_approval_request_escalate
from tests.conftest import ReviewerSession
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory
from tests.sockets import live_consumers, messages_until
from tests.thread_connections import db_to_thread

pytestmark = pytest.mark.django_db(transaction=True)


def test_escalation_removes_the_row_from_the_old_team_and_adds_it_to_the_new(live_console) -> None:
    alice, sara = UserFactory(username="alice"), UserFactory(username="sara")
    payments = TeamFactory(name="payments", members=[alice])
    security = TeamFactory(name="security", members=[sara])
    approval = ApprovalRequestFactory(team=payments, tool="wire_transfer")
    alice_session = ReviewerSession(live_console.url, "alice")
    sara_session = ReviewerSession(live_console.url, "sara")

    async def scenario() -> tuple[list[str], list[str]]:
        async with (
            alice_session.socket() as alice_ws,
            sara_session.socket() as sara_ws,
        ):
            await db_to_thread(
                check_approval_request_escalate,
                approval=approval,
                reviewer=alice,
                team=security,
                note="Fraud?",
            )
            return (
                await messages_until(alice_ws, f"approval-{approval.code}"),
                await messages_until(sara_ws, f"approval-{approval.code}"),
            )

    alice_got, sara_got = asyncio.run(scenario())
    # The old team gets only the removal: the request's id, nothing of where it went.
    assert f'<li id="approval-{approval.code}" hx-swap-oob="delete"></li>' in alice_got[-1]
    assert "wire_transfer" not in alice_got[-1] and "security" not in alice_got[-1]
    assert 'hx-swap-oob="beforeend:#queue-rows"' in sara_got[-1]
    assert "wire_transfer" in sara_got[-1] and "Fraud?" in sara_got[-1]
    alice_session.close()
    sara_session.close()


def test_a_reviewer_removed_from_the_team_stops_receiving_at_once(live_console) -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    payments = TeamFactory(name="payments", members=[alice, bob])
    ops = TeamFactory(name="ops", members=[alice])
    approval = ApprovalRequestFactory(team=payments, tool="payments_tool")
    marker = ApprovalRequestFactory(team=ops, tool="ops_marker")
    session = ReviewerSession(live_console.url, "alice")

    async def scenario() -> tuple[Any, list[str]]:
        async with session.socket() as ws:
            (consumer,) = live_consumers(realtime.team_group(payments.pk))
            await db_to_thread(payments.members.remove, alice)
            await db_to_thread(
                check_approval_request_comment, approval=approval, reviewer=bob, note="secret note"
            )
            await db_to_thread(
                check_approval_request_comment, approval=marker, reviewer=alice, note="marker"
            )
            return consumer, await messages_until(ws, "ops_marker")

    consumer, got = asyncio.run(scenario())
    assert not any("payments_tool" in message or "secret note" in message for message in got)
    # What made that check: the reviewer's id, re-read per push. The socket keeps neither the
    # session nor the user from its handshake, nor the headers (the session cookie among them).
    assert consumer.user_id == alice.pk
    assert "session" not in consumer.scope and "user" not in consumer.scope
    assert consumer.scope["headers"] == []
    session.close()


def test_a_presence_event_names_who_is_looking_and_clears_on_close(live_console) -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    payments = TeamFactory(name="payments", members=[alice, bob])
    approval = ApprovalRequestFactory(team=payments)
    alice_session = ReviewerSession(live_console.url, "alice")
    bob_session = ReviewerSession(live_console.url, "bob")

    async def scenario() -> tuple[str, str]:
        async with alice_session.socket() as queue_ws:
            async with bob_session.socket(approval.code):
                joined = (await messages_until(queue_ws, "Looking now: bob"))[-1]
            left = (await messages_until(queue_ws, f'id="presence-{approval.code}"'))[-1]
            return joined, left

    joined, left = asyncio.run(scenario())
    assert joined.strip().startswith(f'<span id="presence-{approval.code}"')
    assert 'hx-swap-oob="true"' in joined
    assert "Looking now" not in left  # bob closed the page: nobody is looking
    # Closed right after opening, with a push unread: no stale presence row either.
    assert not ReviewerPresence.objects.exists()
    alice_session.close()
    bob_session.close()
