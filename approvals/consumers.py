"""Reviewer websockets. Thin: authenticate, join the groups, re-check access, forward."""

import asyncio
import time
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from approvals import realtime
from approvals.access import approvals_visible_to, reviewer_may_see_by_id, visible_team_ids
from approvals.reviews import presence_enter, presence_leave, presence_refresh

# Close codes in the 4000 range are ours: the browser sees why the socket was refused.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404

# What static/js/console.js sends every APPROVAL_PRESENCE_HEARTBEAT_SECONDS from a decision page.
HEARTBEAT = "ping"


# How long one access check answers for the other sockets that receive the same event here.
# The event reaches every socket of a process within moments; the check still runs after the
# event was published, so a reviewer removed from a team earlier does not get it.
SHARED_ACCESS_CHECK_SECONDS = 5.0
_shared_access_checks: dict[tuple[object, ...], asyncio.Future[bool]] = {}


async def _reviewer_may_see(*, user_id: int, event: dict[str, Any]) -> bool:
    """One database check per (event, reviewer) in this process, however many sockets the
    reviewer has open here: a push to 500 sockets of a few reviewers costs a few queries."""
    check = partial(reviewer_may_see_by_id, user_id=user_id, team_id=event["team_id"])
    event_id = event.get("event_id")
    if event_id is None:
        return await database_sync_to_async(check)()
    loop = asyncio.get_running_loop()
    key = (loop, event_id, user_id, event["team_id"])
    shared = _shared_access_checks.get(key)
    if shared is None:
        shared = _shared_access_checks[key] = asyncio.ensure_future(database_sync_to_async(check)())
        loop.call_later(SHARED_ACCESS_CHECK_SECONDS, _shared_access_checks.pop, key, None)
    # Shielded: a socket closing while it waits must not cancel the check for the others.
    return await asyncio.shield(shared)


def _watched_approval_id(user: Any, code: str) -> int | None:
    """The request a detail page watches, if this user may see it (else as if absent)."""
    return approvals_visible_to(user=user).filter(code=code).values_list("pk", flat=True).first()


class QueueConsumer(AsyncWebsocketConsumer):
    groups_joined: list[str]
    watching: int | None = None
    listening: bool = False  # counted in realtime's open-socket count
    refreshed_at: float = 0.0  # monotonic time of the last presence write

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            # Closing before accept rejects the handshake (HTTP 403): nothing is ever sent.
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        if code := query.get("approval", [""])[0]:
            try:
                self.watching = await database_sync_to_async(_watched_approval_id)(user, code)
            except Exception:  # a malformed code is an unknown one
                self.watching = None
            if self.watching is None:
                await self.close(code=CLOSE_NOT_FOUND)
                return
        team_ids = await database_sync_to_async(visible_team_ids)(user=user)
        await realtime.reviewer_socket_opened()
        self.listening = True
        self.groups_joined = realtime.reviewer_groups(team_ids)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        # Accept only once in the groups: the page re-reads its rows when the socket opens
        # (static/js/console.js), so every change is in that read or pushed to this socket.
        await self.accept()
        if self.watching is not None:
            await database_sync_to_async(presence_enter)(
                approval_id=self.watching, user_id=user.pk, channel_name=self.channel_name
            )

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' own dispatch first hops to the sync thread to close stale database
        # connections: one hop per socket per push (500 sockets, 500 hops), queued behind every
        # sync view of the process. Every database call here goes through
        # database_sync_to_async, which does that cleanup itself, in its own hop.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def _leave(self) -> None:
        """Idempotent: runs on a clean disconnect, and when a send finds the client gone."""
        groups, self.groups_joined = self.groups_joined, []
        if self.listening:
            self.listening = False
            realtime.reviewer_socket_closed()
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.watching is not None:
            self.watching = None
            await database_sync_to_async(presence_leave)(channel_name=self.channel_name)

    async def _forward(self, html: str) -> None:
        try:
            await self.send(text_data=html)
        except Exception:
            # The client closed while we were sending: the server then ends this consumer
            # without calling disconnect(), which would leave a stale "looking now".
            await self._leave()
            raise

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Reviewers act through HTTP (CSRF-checked, one code path); the socket only listens,
        # apart from the heartbeat that keeps this page's "looking now" alive.
        if text_data != HEARTBEAT or self.watching is None:
            return
        # At most one write per half period, however fast a client pings.
        now = time.monotonic()
        if now - self.refreshed_at < settings.APPROVAL_PRESENCE_HEARTBEAT_SECONDS / 2:
            return
        self.refreshed_at = now
        await database_sync_to_async(presence_refresh)(
            approval_id=self.watching, user_id=self.scope["user"].pk, channel_name=self.channel_name
        )

    async def queue_fragment(self, event: dict[str, Any]) -> None:
        # Re-checked on every event: a reviewer removed from a team, or deactivated, stops
        # receiving that team's requests now, not at their next reconnect.
        if await _reviewer_may_see(user_id=self.scope["user"].pk, event=event):
            await self._forward(event["html"])

    async def queue_revoke(self, event: dict[str, Any]) -> None:
        # Only removes a row by id: nothing in it needs hiding from anyone in the old team.
        await self._forward(event["html"])
