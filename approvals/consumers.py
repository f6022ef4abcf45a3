"""Reviewer websockets. Thin: authenticate, join the groups, re-check access, forward."""

import asyncio
import contextlib
import logging
import time
import uuid
from functools import partial
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs

from channels.auth import get_user
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import parse_cookie

from approvals import realtime
from approvals.access import approvals_visible_to, reviewer_may_see_by_id, visible_team_ids
from approvals.reviews import presence_enter, presence_leave, presence_refresh

# Close codes in the 4000 range are ours: the browser sees why the socket was refused.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_INTERNAL_ERROR = 1011
# "Service restart": this process no longer receives pushes for the socket; the page reconnects.
CLOSE_RESUBSCRIBE = 1012

logger = logging.getLogger("approvals.realtime")

# What static/js/console.js sends every APPROVAL_PRESENCE_HEARTBEAT_SECONDS from a decision page.
HEARTBEAT = "ping"


# How long one access check answers for the other sockets that receive the same event here.
# The event reaches every socket of a process within moments; the check still runs after the
# event was published, so a reviewer removed from a team earlier does not get it.
SHARED_ACCESS_CHECK_SECONDS = 5.0
_shared_access_checks: dict[tuple[object, ...], asyncio.Future[bool]] = {}
# Not thread-sensitive: every socket of the push waits for this check, so it runs on one of the
# loop's worker threads at once instead of queueing behind every sync view of the process on
# Django's one thread (as the agent API's reads do). Its connection goes back to the pool when it
# is done (database_sync_to_async closes it).
_access_check = database_sync_to_async(reviewer_may_see_by_id, thread_sensitive=False)


async def _reviewer_may_see(*, user_id: int, event: dict[str, Any]) -> bool:
    """One database check per (event, reviewer) in this process, however many sockets the
    reviewer has open here: a push to 500 sockets of a few reviewers costs a few queries."""
    check = partial(_access_check, user_id=user_id, team_id=event["team_id"])
    event_id = event.get("event_id")
    if event_id is None:
        return await check()
    loop = asyncio.get_running_loop()
    key = (loop, event_id, user_id, event["team_id"])
    shared = _shared_access_checks.get(key)
    if shared is None:
        shared = _shared_access_checks[key] = asyncio.ensure_future(check())
        loop.call_later(SHARED_ACCESS_CHECK_SECONDS, _shared_access_checks.pop, key, None)
    # Shielded: a socket closing while it waits must not cancel the check for the others.
    return await asyncio.shield(shared)


def _watched_approval_id(user: Any, code: str) -> int | None:
    """The request a detail page watches, if this user may see it (else as if absent)."""
    return approvals_visible_to(user=user).filter(code=code).values_list("pk", flat=True).first()


async def _session_user(scope: dict[str, Any]) -> Any:
    """The user of the handshake's session cookie, resolved as Channels' AuthMiddlewareStack does.

    Not that stack itself: its three middlewares each keep a copy of the scope, with the session
    and the user in it, for as long as the socket is open (about 4 KB of every idle socket).
    Here they live until the socket is admitted; the socket keeps the user's id.
    """
    cookie = next((value for name, value in scope["headers"] if name == b"cookie"), b"")
    session_key = parse_cookie(cookie.decode("latin1")).get(settings.SESSION_COOKIE_NAME)
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return await get_user({"session": session})


class QueueConsumer(AsyncWebsocketConsumer):
    groups_joined: list[str]
    user_id: int  # the reviewer's: access is re-checked by id on every push
    watching: int | None = None
    presence_id: str = ""  # names this socket's "looking now" row while it watches a request
    listening: bool = False  # counted in realtime's open-socket count
    accepted: bool = False  # pushes wait in the backlog until the handshake is answered
    refreshed_at: float = 0.0  # monotonic time of the last presence write
    hub: "realtime.ReviewerSockets"  # the process's subscription this socket joined
    # Pushes this socket has yet to send, in order, and the task sending them; None when idle.
    backlog: list[dict[str, Any]] | None = None
    sending: "asyncio.Task[None] | None" = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Channels' own __call__ gives every socket a channel-layer channel and two tasks waiting
        # on it and on the client. Pushes come through this process's one channel instead
        # (realtime.reviewer_sockets, which calls deliver()); the client's messages come here.
        self.scope = scope
        self.base_send = send
        with contextlib.suppress(StopConsumer):
            while True:
                await self.dispatch(await receive())

    async def connect(self) -> None:
        self.groups_joined = []
        user = await _session_user(self.scope)
        if not user.is_authenticated or not user.is_active:
            # Closing before accept rejects the handshake (HTTP 403): nothing is ever sent.
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user_id = user.pk
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
        self.hub = realtime.reviewer_sockets()
        try:
            await self.hub.join(self.groups_joined, self)
        except BaseException:
            await self._leave()
            raise
        # Accept only once in the groups: the page re-reads its rows when the socket opens
        # (static/js/console.js), so every change is in that read or pushed to this socket.
        await self.accept()
        self._accepted()
        # Nobody reads the handshake's headers (the session cookie among them) any more: the
        # server did at the handshake, and access is re-checked by user id. They were about
        # 1.5 KB of every idle socket. The list is the server's scope's, shared by every copy of
        # the scope, so it is emptied rather than dropped from this copy.
        if isinstance(headers := self.scope.get("headers"), list):
            headers.clear()
        if self.watching is not None:
            self.presence_id = f"socket.{uuid.uuid4().hex}"
            await database_sync_to_async(presence_enter)(
                approval_id=self.watching, user_id=self.user_id, channel_name=self.presence_id
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

    def _accepted(self) -> None:
        """The handshake is answered: pushes go out, first those that came in meanwhile (the
        socket joined its groups before accepting, and nothing may be sent before the accept)."""
        self.accepted = True
        if self.backlog:
            self._start_sending()

    def deliver(self, event: dict[str, Any]) -> None:
        """A push for this socket (from realtime.reviewer_sockets): sent in order, by a task that
        lives only while there is something to send, so an idle socket holds none."""
        if self.backlog is not None:
            self.backlog.append(event)
            return
        self.backlog = [event]
        if self.accepted:
            self._start_sending()

    def _start_sending(self) -> None:
        # Started at once (eager): up to its first wait it runs here, not in a later turn of
        # the loop, and a push that waits for nothing is sent before the next socket's.
        loop = asyncio.get_running_loop()
        sending = asyncio.Task(self._send_backlog(), loop=loop, eager_start=True)
        if not sending.done():
            self.sending = sending

    async def _send_backlog(self) -> None:
        try:
            while self.backlog:
                await self.dispatch(self.backlog.pop(0))
        except Exception:
            if self.listening:  # not a client that went away (_forward has left for it)
                # As when a push failed inside Channels' consumer: the socket closes, and the page
                # reconnects and re-reads its rows, rather than stay open having missed one.
                logger.exception("a push to a reviewer socket failed")
                with contextlib.suppress(Exception):
                    await self.close(code=CLOSE_INTERNAL_ERROR)
                await self._leave()
        finally:
            self.backlog = None
            self.sending = None

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def _leave(self) -> None:
        """Idempotent: runs on a clean disconnect, and when a send finds the client gone."""
        groups, self.groups_joined = self.groups_joined, []
        if self.listening:
            self.listening = False
            realtime.reviewer_socket_closed()
        if groups:
            self.hub.leave(groups, self)  # the one it joined, even if a new one serves others
        if self.watching is not None:
            self.watching = None
            await database_sync_to_async(presence_leave)(channel_name=self.presence_id)

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
            approval_id=self.watching, user_id=self.user_id, channel_name=self.presence_id
        )

    async def subscription_lost(self, event: dict[str, Any]) -> None:
        # realtime.sockets.SUBSCRIPTION_LOST: pushes no longer reach this socket.
        await self.close(code=CLOSE_RESUBSCRIBE)
        await self._leave()

    async def queue_fragment(self, event: dict[str, Any]) -> None:
        # Re-checked on every event: a reviewer removed from a team, or deactivated, stops
        # receiving that team's requests now, not at their next reconnect.
        if await _reviewer_may_see(user_id=self.user_id, event=event):
            await self._forward(event["html"])

    async def queue_revoke(self, event: dict[str, Any]) -> None:
        # Only removes a row by id: nothing in it needs hiding from anyone in the old team.
        await self._forward(event["html"])
