"""What a server process holds for its reviewer sockets: one subscription for all of them (10,000
idle sockets in one process). What each socket keeps: tests/approvals/test_realtime_teams.py."""

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from approvals import realtime
from approvals.consumers import QueueConsumer
from approvals.realtime import sockets
from approvals.reviews import check_approval_request_comment
from tests.conftest import ReviewerSession
from tests.factories import ApprovalRequestFactory, UserFactory
from tests.sockets import live_consumers, live_reviewer_sockets, next_message_containing
from tests.thread_connections import db_to_thread

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_sockets_of_a_process_share_one_channel(live_console) -> None:
    staff = UserFactory(username="sam", is_staff=True)
    approval = ApprovalRequestFactory(tool="shared_channel_tool")
    session = ReviewerSession(live_console.url, "sam")

    async def scenario() -> tuple[list[str], list[Any], sockets.ReviewerSockets]:
        async with session.socket() as first, session.socket() as second, session.socket() as third:
            hub = live_reviewer_sockets()
            consumers = live_consumers(realtime.STAFF_GROUP)
            await db_to_thread(
                check_approval_request_comment, approval=approval, reviewer=staff, note="to all"
            )
            received = [
                await next_message_containing(ws, "shared_channel_tool")
                for ws in (first, second, third)
            ]
            return received, consumers, hub

    received, consumers, hub = asyncio.run(scenario())
    assert len(received) == 3
    assert len(consumers) == 3
    # No channel (queue, subscription, waiting task) per socket: the process's one carries all.
    assert all(not hasattr(consumer, "channel_name") for consumer in consumers)
    assert hub.channel.result() and realtime.STAFF_GROUP in hub.joined
    session.close()


class _Socket:
    """A listener as the hub sees one: takes pushes, or fails to (its client gone mid-send)."""

    def __init__(self, *, fails: bool = False) -> None:
        self.fails = fails
        self.got: list[dict[str, Any]] = []

    def deliver(self, event: dict[str, Any]) -> None:
        if self.fails:
            raise ConnectionResetError("the client went away")
        self.got.append(event)


def test_a_socket_that_fails_a_push_does_not_stop_the_others() -> None:
    async def scenario() -> list[dict[str, Any]]:
        hub = sockets.ReviewerSockets(get_channel_layer())
        broken, healthy = _Socket(fails=True), _Socket()
        try:
            await hub.join(["approvals.team.test-hub"], broken)
            await hub.join(["approvals.team.test-hub"], healthy)
            for html in ("first", "second"):
                await sync_to_async(realtime.send_to_groups)(
                    get_channel_layer(), ["approvals.team.test-hub"], {"type": "t", "html": html}
                )
            while len(healthy.got) < 2:
                await asyncio.sleep(0.01)
        finally:
            hub.close()
        return healthy.got

    got = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert [event["html"] for event in got] == ["first", "second"]


def test_a_push_that_comes_before_the_handshake_is_answered_waits_for_it() -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        sent: list[dict[str, Any]] = []

        async def server_send(message: dict[str, Any]) -> None:  # the ASGI server's side
            sent.append(message)

        consumer = QueueConsumer()
        consumer.base_send = server_send
        # In its groups, not yet accepted (connect() joins first): a row is removed meanwhile.
        consumer.deliver({"type": realtime.EVENT_QUEUE_REVOKE, "html": '<li id="approval-x">'})
        before_accept = list(sent)
        await consumer.accept()
        consumer._accepted()
        while len(sent) < 2:
            await asyncio.sleep(0.01)
        return before_accept, sent

    before_accept, sent = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert before_accept == []
    assert [message["type"] for message in sent] == ["websocket.accept", "websocket.send"]


class _LayerThatBreaks:
    """A channel layer whose connection breaks for good when told to (the edge: a Redis that
    cannot be reached again)."""

    def __init__(self) -> None:
        self.broken = asyncio.Event()

    async def new_channel(self) -> str:
        return "reviewers.process"

    async def group_add(self, group: str, channel: str) -> None:
        return None

    async def receive(self, channel: str) -> dict[str, Any]:
        await self.broken.wait()
        raise ConnectionError("the layer's connection broke")


def test_when_the_subscription_fails_every_socket_is_told_not_left_open_and_deaf() -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        layer = _LayerThatBreaks()
        hub = sockets.ReviewerSockets(layer)
        staff, team = _Socket(), _Socket()
        await hub.join([realtime.STAFF_GROUP], staff)
        await hub.join(["approvals.team.test-hub"], team)
        layer.broken.set()
        while not (staff.got and team.got):
            await asyncio.sleep(0.01)
        return staff.got, team.got

    staff_got, team_got = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert staff_got == team_got == [{"type": sockets.SUBSCRIPTION_LOST}]


def test_a_socket_told_its_subscription_is_lost_closes_so_its_page_reconnects() -> None:
    async def scenario() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def server_send(message: dict[str, Any]) -> None:  # the ASGI server's side
            sent.append(message)

        consumer = QueueConsumer()
        consumer.base_send = server_send
        consumer.hub = sockets.ReviewerSockets(_LayerThatBreaks())
        consumer.groups_joined = [realtime.STAFF_GROUP]
        await consumer.accept()
        consumer._accepted()
        consumer.deliver({"type": sockets.SUBSCRIPTION_LOST})
        while len(sent) < 2:
            await asyncio.sleep(0.01)
        consumer.hub.close()
        return sent

    sent = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert sent[-1] == {"type": "websocket.close", "code": 1012}
