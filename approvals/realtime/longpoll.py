"""Agents' long polls: every server process holds ONE subscription (a channel in RESOLVED_GROUP)
and a dict of request code -> the futures of the polls waiting on it in this process. After a
decision commits, the deciding process sends one "resolved" message naming the code and
carrying the agent API's view of it (`agent_view`, the very document a poll's own read would
answer, built in the decision's transaction: nothing is read between the commit and the push).
Each process wakes exactly the polls waiting for that code, and the native agent API answers
them from the message: no thread hop, no credential check and no read per waiter, so a decision
reaches a thousand waiting agents as fast as one. Polls that answer in another shape (AAP, or a
message without a view) re-read the request instead. A parked poll costs a dict entry, not
channel-layer (Redis) state."""

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import connections

from approvals.realtime.groups import (
    EVENT_APPROVAL_RESOLVED,
    EVENT_LISTENER_PROBE,
    LISTENER_PROBE_SECONDS,
    RESOLVED_GROUP,
    RESOLVED_GROUP_RENEW_SECONDS,
    ApprovalResolvedEvent,
)

logger = logging.getLogger("approvals.realtime")

# While polls are parked, the listener checks its subscription this often with a probe through
# the group; a probe that cannot be sent, or is not back within LISTENER_WATCH_TIMEOUT_SECONDS,
# means the channel layer is lost (Redis down): the parked polls then read the database once a
# second instead, so a decision made meanwhile reaches them a second or two late, not at their
# timeout. channels_redis itself retries quietly, so nothing else would tell.
LISTENER_WATCH_SECONDS = 1.0
LISTENER_WATCH_TIMEOUT_SECONDS = 1.0
# What a parked poll is woken with when the listener lost the channel layer.
LAYER_LOST: dict[str, Any] = {}


def publish_resolved(*, code: object, status: str, agent_view: dict[str, Any]) -> None:
    """Wake the agents waiting on a request that was just decided, handing them `agent_view`.
    Runs after commit.

    Registered first among a decision's after-commit work: the agents' wait ends before rows
    are rendered for reviewers or notifications are queued.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    resolved: ApprovalResolvedEvent = {
        "type": EVENT_APPROVAL_RESOLVED,
        "code": str(code),
        "status": status,
        "agent_view": agent_view,
    }
    try:
        async_to_sync(_resolved_sent)(layer, resolved)
    except Exception:
        logger.exception("resolved push failed for approval %s", code)
        # Perhaps the view could not be sent (serialized): the bare nudge still wakes them, and
        # they read the request themselves. Failing that, the decision stands; the agents'
        # polls re-read at their timeout.
        with contextlib.suppress(Exception):
            async_to_sync(layer.group_send)(RESOLVED_GROUP, {**resolved, "agent_view": None})


async def _resolved_sent(layer: Any, resolved: ApprovalResolvedEvent) -> None:
    """The polls parked in this process are woken at once, then every process's through the
    group (this one's find nobody left to wake).

    Run on the server's event loop when the decision was made in one of its requests (asgiref
    runs it there): a decision reaches the agents waiting on the same server without a round
    trip through Redis. Elsewhere (a Celery task, a command) the loop is asgiref's own, with no
    polls parked on it."""
    listener = _listeners.get(asyncio.get_running_loop())
    if listener is not None and not listener.broken:
        listener.wake(resolved["code"], _valid_view(dict(resolved)))
    await layer.group_send(RESOLVED_GROUP, resolved)


async def wait_until_resolved(
    *, code: object, timeout: float, is_resolved: Callable[[], Awaitable[bool]]
) -> dict[str, Any] | None:
    """Wait until the request is resolved or `timeout` seconds pass, whichever is first.

    Returns the agent API's view of the resolved request when a decision's message carried it,
    else None (timed out, resolved before the wait began, or no view in the message): the
    caller then reads the request itself.

    Subscribes before checking the database, so a decision landing between the check and the
    subscription still wakes us: no lost wake-up, and no polling loop. Before parking, the
    request's database connection goes back to the pool: a waiting agent holds no connection,
    or a few dozen waiters per process would exhaust the pool and fail everyone else's requests.
    """
    layer = get_channel_layer()
    if layer is None:
        await _release_database_connections()
        await _sleep_unless_draining(timeout)
        return None
    try:
        listener = await _resolution_listener(layer)
    except Exception:
        # Redis down or unreachable: no push can reach us. Still answer within about a second
        # of a decision, by asking the database, instead of failing the agent's poll.
        logger.warning("long poll without the channel layer: checking the database instead")
        await _until_resolved_by_polling(timeout=timeout, is_resolved=is_resolved)
        return None
    with listener.waiting_for(str(code)) as woken:
        if await is_resolved():
            return None
        await _release_database_connections()
        if draining():
            return None  # the server is stopping: answer with the state as it is
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout(timeout):
                view = await woken
        except TimeoutError:
            return None
    if view is LAYER_LOST:
        # The subscription stopped answering (Redis down): no push can wake us. Read the
        # database instead, once a second, for the rest of the wait.
        await _until_resolved_by_polling(timeout=deadline - loop.time(), is_resolved=is_resolved)
        return None
    return view


# How often a long poll asks the database while the channel layer is unavailable.
DEGRADED_POLL_SECONDS = 1.0


async def _until_resolved_by_polling(
    *, timeout: float, is_resolved: Callable[[], Awaitable[bool]]
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await is_resolved():
            return
        await _release_database_connections()
        remaining = deadline - loop.time()
        if remaining <= 0 or draining():
            return
        await _sleep_unless_draining(min(DEGRADED_POLL_SECONDS, remaining))


# --- Shutting down ----------------------------------------------------------------------------
# On SIGTERM (or Ctrl-C) a server stops accepting and waits for its open exchanges to finish; a
# long poll parked for up to APPROVAL_LONG_POLL_MAX_SECONDS would hold it past any supervisor's
# patience, and be cut. drain() answers them now with the request's current state (`pending`):
# the agent asks again, and another server answers. console/asgi.py calls it on the signal.
_drain_events: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event]" = (
    weakref.WeakKeyDictionary()
)


def _drain_event() -> asyncio.Event:
    loop = asyncio.get_running_loop()
    event = _drain_events.get(loop)
    if event is None:
        event = _drain_events[loop] = asyncio.Event()
    return event


def draining() -> bool:
    """Whether this loop's server is shutting down (no long poll parks any more)."""
    event = _drain_events.get(asyncio.get_running_loop())
    return event is not None and event.is_set()


def drain() -> None:
    """Shutting down: every long poll parked on this loop answers now, and new ones at once."""
    _drain_event().set()
    listener = _listeners.get(asyncio.get_running_loop())
    if listener is not None:
        for code in list(listener.waiters):
            listener.wake(code)  # no view: each re-reads, and answers the state as it is


async def _sleep_unless_draining(seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await _drain_event().wait()


# Runs in the request's own sync thread (thread-sensitive), so it closes the connections that
# this request's reads opened; with a pool, closing returns the connection to the pool.
_release_database_connections = sync_to_async(connections.close_all)


class ResolutionListener:
    """This process's one subscription to RESOLVED_GROUP, and the long polls parked on it.

    One per event loop (futures and the layer's connections belong to a loop). Waking is a dict
    lookup: a nudge for a request nobody here waits on costs nothing more.
    """

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.waiters: dict[str, set[asyncio.Future[dict[str, Any] | None]]] = {}
        self.probe = uuid.uuid4().hex
        self.probed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Later probes (the watch), by token: resolved when they come back through the group.
        self.watch_probes: dict[str, asyncio.Future[None]] = {}
        self.watching: asyncio.Task[None] | None = None
        self.subscribed: asyncio.Task[str] = asyncio.ensure_future(self._subscribe())
        self.receiving: asyncio.Task[None] | None = None
        self.broken = False

    async def _subscribe(self) -> str:
        channel: str = await self.layer.new_channel()
        await self.layer.group_add(RESOLVED_GROUP, channel)
        self.receiving = asyncio.ensure_future(self._receive(channel))
        # Redis confirms a SUBSCRIBE only on the subscriber's own connection, later: until our
        # probe comes back through the group, a decision published now might not reach us, and
        # the first waiter would check the database too early. After that, nothing is missed.
        await self.layer.group_send(
            RESOLVED_GROUP, {"type": EVENT_LISTENER_PROBE, "probe": self.probe}
        )
        try:
            async with asyncio.timeout(LISTENER_PROBE_SECONDS):
                await asyncio.shield(self.probed)
        except TimeoutError:
            logger.warning("the resolved-request subscription is not confirmed; going on")
        self.watching = asyncio.ensure_future(self._watch())
        return channel

    async def _watch(self) -> None:
        """While polls are parked here, prove the subscription still carries messages."""
        while not self.broken:
            await asyncio.sleep(LISTENER_WATCH_SECONDS)
            if not self.waiters:
                continue  # nobody to strand: no probe traffic while idle
            token = uuid.uuid4().hex
            back = self.watch_probes[token] = asyncio.get_running_loop().create_future()
            try:
                await self.layer.group_send(
                    RESOLVED_GROUP, {"type": EVENT_LISTENER_PROBE, "probe": token}
                )
                async with asyncio.timeout(LISTENER_WATCH_TIMEOUT_SECONDS):
                    await back
            except Exception as error:  # TimeoutError included: the probe did not come back
                logger.warning(
                    "the channel layer stopped answering (%s): %d parked long polls read the "
                    "database instead",
                    type(error).__name__,
                    sum(len(waiting) for waiting in self.waiters.values()),
                )
                self.lost()
                return
            finally:
                self.watch_probes.pop(token, None)

    def lost(self) -> None:
        """The channel layer is gone: the next waiter subscribes afresh (or reads, if it cannot),
        and the polls parked here go on by reading the database."""
        self.broken = True
        for code in list(self.waiters):
            self.wake(code, LAYER_LOST)

    async def ready(self) -> None:
        # Shielded: one waiter giving up must not cancel the subscription the others await.
        await asyncio.shield(self.subscribed)

    @contextlib.contextmanager
    def waiting_for(self, code: str) -> Iterator[asyncio.Future[dict[str, Any] | None]]:
        woken: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(code, set()).add(woken)
        try:
            yield woken
        finally:
            waiting = self.waiters.get(code)
            if waiting is not None:
                waiting.discard(woken)
                if not waiting:
                    del self.waiters[code]

    def wake(self, code: str, agent_view: dict[str, Any] | None = None) -> int:
        """Wake every poll waiting on `code` in this process; how many there were."""
        waiting = self.waiters.pop(code, set())
        for woken in waiting:
            if not woken.done():
                woken.set_result(agent_view)
        return len(waiting)

    async def _receive(self, channel: str) -> None:
        renew = asyncio.ensure_future(self._renew_membership(channel))
        try:
            while True:
                message = await self.layer.receive(channel)
                if message.get("type") == EVENT_APPROVAL_RESOLVED:
                    self.wake(message["code"], _valid_view(message))
                elif message.get("probe") == self.probe and not self.probed.done():
                    self.probed.set_result(None)
                elif (back := self.watch_probes.get(message.get("probe", ""))) and not back.done():
                    back.set_result(None)
        except asyncio.CancelledError:
            # The loop is ending (or the layer was replaced): leave the group, so a process-wide
            # layer (in-memory) does not keep sending to a channel nobody reads.
            with contextlib.suppress(Exception):
                await self.layer.group_discard(RESOLVED_GROUP, channel)
            raise
        except Exception:
            # The next waiter subscribes afresh; the ones parked now end at their timeout and
            # re-read the request then.
            logger.exception("the resolved-request subscription failed")
            self.lost()
        finally:
            renew.cancel()

    def close(self) -> None:
        """Stop listening (a replaced layer in tests); polls parked here end at their timeout."""
        self.subscribed.cancel()
        if self.receiving is not None:
            self.receiving.cancel()
        if self.watching is not None:
            self.watching.cancel()

    async def _renew_membership(self, channel: str) -> None:
        while True:
            await asyncio.sleep(RESOLVED_GROUP_RENEW_SECONDS)
            try:
                await self.layer.group_add(RESOLVED_GROUP, channel)
            except Exception:
                logger.exception("renewing the resolved-request subscription failed")


def _valid_view(message: dict[str, Any]) -> dict[str, Any] | None:
    """The message's view, if it is one of the request the message names; else None (re-read)."""
    view = message.get("agent_view")
    if isinstance(view, dict) and view.get("id") == message["code"]:
        return view
    return None


_listeners: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ResolutionListener]" = (
    weakref.WeakKeyDictionary()
)


async def _resolution_listener(layer: Any) -> ResolutionListener:
    """This loop's listener, subscribed; started by the first waiter, shared by the rest."""
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None or listener.layer is not layer or listener.broken:
        if listener is not None:
            listener.close()
        listener = _listeners[loop] = ResolutionListener(layer)
    try:
        await listener.ready()
    except Exception:
        if _listeners.get(loop) is listener:
            del _listeners[loop]  # the next waiter tries again
        raise
    return listener
