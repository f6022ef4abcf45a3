"""Pushing new requests to reviewers: one message per team, queries independent of the count."""

import asyncio
import contextlib
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals import realtime
from approvals.models import ApprovalRequest, Status
from approvals.services import NewApprovalRequest, Submission, approval_requests_create
from tests.factories import AgentFactory, PolicyRuleFactory, TeamFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _created(count: int, tool: str = "send_email") -> list[int]:
    agent = AgentFactory()
    results = approval_requests_create(
        [
            NewApprovalRequest(
                agent=agent,
                idempotency_key=f"{tool}-{index}",
                submission=Submission(
                    tool=tool,
                    arguments={"n": index, "payload": "x" * 1000},
                    timeout="10m",
                    summary=f"row {index}",
                    reasoning="long " * 200,
                    labels=["a"],
                ),
            )
            for index in range(count)
        ],
        publish_after_commit=False,
    )
    return [result.approval.pk for result in results if result.approval is not None]


def _publish_counting_queries(approval_ids: list[int]) -> int:
    with CaptureQueriesContext(connection) as queries:
        realtime.publish_approvals_created(approval_ids)
    return len(queries.captured_queries)


def _staff_messages(approval_ids: list[int]) -> tuple[list[dict], int]:
    """What a staff reviewer's socket receives for the push, and the queries the push made."""

    async def listen() -> tuple[list[dict], int]:
        # One event loop throughout: a channel exists only on the loop that made it.
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await realtime.reviewer_socket_opened()  # as a reviewer's socket does when it connects
        await layer.group_add(realtime.STAFF_GROUP, channel)
        try:
            # Subscribed once our own probe comes back (Redis pub/sub confirms later).
            await layer.group_send(realtime.STAFF_GROUP, {"type": "test.probe"})
            while (await asyncio.wait_for(layer.receive(channel), 5))["type"] != "test.probe":
                pass
            queries = await sync_to_async(_publish_counting_queries)(approval_ids)
            message = await asyncio.wait_for(layer.receive(channel), 5)
        finally:
            await layer.group_discard(realtime.STAFF_GROUP, channel)
            realtime.reviewer_socket_closed()
        return [message], queries

    return async_to_sync(listen)()


def test_new_requests_reach_reviewers_in_one_message_whatever_their_number() -> None:
    few, many = _created(2, "few"), _created(25, "many")

    (few_message,), few_queries = _staff_messages(few)
    (many_message,), many_queries = _staff_messages(many)

    assert "row 1<" in few_message["html"]

    # No query per row: not for the payload left out of the read, nor for claims or votes.
    assert few_queries == many_queries
    assert many_message["type"] == realtime.EVENT_QUEUE_FRAGMENT
    for index in range(25):
        assert f"row {index}<" in many_message["html"]
    assert many_message["html"].count('hx-swap-oob="beforeend:#queue-rows"') == 1


def test_requests_the_policy_decided_go_to_the_history_not_the_queue() -> None:
    PolicyRuleFactory(name="approve lookups", tool_glob="lookup", outcome="approve", reason="Safe.")
    approved = _created(3, "lookup")

    (message,), _ = _staff_messages(approved)

    assert set(
        ApprovalRequest.objects.filter(pk__in=approved).values_list("status", flat=True)
    ) == {Status.APPROVED}
    queue_part, history_part = message["html"].split('hx-swap-oob="afterbegin:#history-rows"')
    assert "queue-row impact" not in queue_part.split('beforeend:#queue-rows"')[1]
    assert history_part.count("status-approved") == 3


def test_requests_the_policy_decided_for_a_team_are_pushed_to_staff_only() -> None:
    # They are the team's to look at in its history, not to act on: its sockets get nothing.
    team = TeamFactory(name="ops")
    PolicyRuleFactory(
        name="approve lookups", tool_glob="lookup", outcome="approve", reason="Safe.", team=team
    )
    PolicyRuleFactory(name="hold deploys", tool_glob="deploy", team=team)
    decided, held = _created(2, "lookup"), _created(1, "deploy")
    assert set(ApprovalRequest.objects.values_list("team", flat=True)) == {team.pk}

    async def listen() -> tuple[list[dict], list[dict]]:
        layer = get_channel_layer()
        staff, ops = await layer.new_channel(), await layer.new_channel()
        await realtime.reviewer_socket_opened()
        await layer.group_add(realtime.STAFF_GROUP, staff)
        await layer.group_add(realtime.team_group(team.pk), ops)
        try:
            for group, channel in (
                (realtime.STAFF_GROUP, staff),
                (realtime.team_group(team.pk), ops),
            ):
                await layer.group_send(group, {"type": "test.probe"})
                while (await asyncio.wait_for(layer.receive(channel), 5))["type"] != "test.probe":
                    pass
            await sync_to_async(realtime.publish_approvals_created)(decided)
            await sync_to_async(realtime.publish_approvals_created)(held)
            # A channel's messages come in order: the team's first is the second push's, if
            # the first sent it nothing.
            to_staff = [await asyncio.wait_for(layer.receive(staff), 5) for _ in range(2)]
            to_ops = [await asyncio.wait_for(layer.receive(ops), 5)]
        finally:
            await layer.group_discard(realtime.STAFF_GROUP, staff)
            await layer.group_discard(realtime.team_group(team.pk), ops)
            realtime.reviewer_socket_closed()
        return to_staff, to_ops

    to_staff, (to_ops,) = async_to_sync(listen)()
    assert "lookup" in to_staff[0]["html"] and "deploy" in to_staff[1]["html"]
    assert to_staff[0]["team_id"] is None  # only staff may take it
    assert "deploy" in to_ops["html"] and "lookup" not in to_ops["html"]
    assert to_ops["team_id"] == team.pk


def test_nothing_is_read_or_rendered_while_no_reviewer_listens() -> None:
    ids = _created(5)
    cache.delete(realtime.LISTENING_KEY)  # no reviewer socket open anywhere for a minute

    async def listen() -> tuple[int, list[dict]]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(realtime.STAFF_GROUP, channel)  # a group member, but no socket
        try:
            queries = await sync_to_async(_publish_counting_queries)(ids)
            received = []
            with contextlib.suppress(TimeoutError):
                received.append(await asyncio.wait_for(layer.receive(channel), 0.5))
        finally:
            await layer.group_discard(realtime.STAFF_GROUP, channel)
        return queries, received

    queries, received = async_to_sync(listen)()
    assert queries == 0
    assert received == []


def test_an_open_reviewer_socket_keeps_pushes_on_until_it_closes(monkeypatch) -> None:
    monkeypatch.setattr(realtime.reviewers, "LISTENING_TTL_SECONDS", 1)
    monkeypatch.setattr(realtime.reviewers, "LISTENING_REFRESH_SECONDS", 0.3)
    cache.delete(realtime.LISTENING_KEY)

    async def scenario() -> tuple[bool, bool, bool, bool]:
        before = await sync_to_async(realtime.reviewers_listening)()
        await realtime.reviewer_socket_opened()
        # Kept: the passing of time is what is tested. Longer than the key lives (1 s): only
        # the refresh keeps it.
        await asyncio.sleep(1.6)
        while_open = await sync_to_async(realtime.reviewers_listening)()
        realtime.reviewer_socket_closed()
        just_closed = await sync_to_async(realtime.reviewers_listening)()
        await asyncio.sleep(1.6)  # kept: past the key's life, with no refresh any more
        long_closed = await sync_to_async(realtime.reviewers_listening)()
        return before, while_open, just_closed, long_closed

    before, while_open, just_closed, long_closed = asyncio.run(scenario())
    assert (before, while_open, long_closed) == (False, True, False)
    assert just_closed  # another process may still have a socket: the key simply runs out


def test_answers_are_remembered_for_a_moment_and_a_socket_waits_out_a_no(monkeypatch) -> None:
    # The intake writer asks after every batch; a remembered answer spares the cache. A "no"
    # must never hide a reviewer whose socket has been accepted.
    monkeypatch.setattr(realtime.reviewers, "LISTENING_TTL_SECONDS", 1.2)  # a "yes" for 0.1 s
    cache.delete(realtime.LISTENING_KEY)
    assert realtime.reviewers_listening() is False
    cache.set(realtime.LISTENING_KEY, True, 60)  # another process's socket, not yet accepted
    assert realtime.reviewers_listening() is False  # the "no" is remembered, without asking

    async def a_socket_opens() -> bool:
        await realtime.reviewer_socket_opened()  # what a consumer does before it accepts
        try:
            return await sync_to_async(realtime.reviewers_listening)()
        finally:
            realtime.reviewer_socket_closed()

    # Accepted only once no "no" from before its mark is remembered anywhere.
    assert asyncio.run(a_socket_opens()) is True

    cache.delete(realtime.LISTENING_KEY)
    remembered_at = time.monotonic()
    assert realtime.reviewers_listening() is True  # the "yes" is remembered, without asking
    while realtime.reviewers_listening():
        assert time.monotonic() - remembered_at < 5, "the remembered yes never ran out"
        time.sleep(0.01)
    assert time.monotonic() - remembered_at >= 0.1


def test_a_socket_that_leaves_while_it_waits_is_not_counted() -> None:
    cache.delete(realtime.LISTENING_KEY)

    async def leaves_during_the_wait() -> int:
        opening = asyncio.ensure_future(realtime.reviewer_socket_opened())
        await asyncio.sleep(0)  # marked, now waiting
        while not realtime.reviewers._beacons[asyncio.get_running_loop()].marked_at:
            await asyncio.sleep(0.01)
        opening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await opening
        return realtime.reviewers._beacons[asyncio.get_running_loop()].sockets

    assert asyncio.run(leaves_during_the_wait()) == 0


def test_a_socket_that_leaves_while_the_key_is_marked_is_not_counted(monkeypatch) -> None:
    async def marking_never_ends() -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(realtime.reviewers, "_listening_mark", marking_never_ends)

    async def leaves_during_the_mark() -> int:
        opening = asyncio.ensure_future(realtime.reviewer_socket_opened())
        await asyncio.sleep(0)  # counted, now marking
        opening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await opening
        return realtime.reviewers._beacons[asyncio.get_running_loop()].sockets

    assert asyncio.run(leaves_during_the_mark()) == 0
