"""The only module that talks to the channel layer.

Two kinds of listeners:
- reviewers' sockets, in one group per team (staff in STAFF_GROUP, which gets every request):
  they get the same row partial the queue page renders, as an htmx out-of-band swap (new rows are
  inserted, changed rows replaced, decided rows removed), and who is looking at which request.
  Every event names the request's team, and the consumer re-checks access before forwarding;
- agents' long polls: every server process holds ONE subscription (a channel in RESOLVED_GROUP)
  and a dict of request code -> the futures of the polls waiting on it in this process. After a
  decision commits, the deciding process reads the request once and sends one "resolved" message
  naming the code and carrying the agent API's view of it (`agent_view`, the very document a
  poll's own read would answer). Each process wakes exactly the polls waiting for that code, and
  the native agent API answers them from the message: no thread hop, no credential check and no
  read per waiter, so a decision reaches a thousand waiting agents as fast as one. Polls that
  answer in another shape (AAP, or a message without a view) re-read the request instead. A
  parked poll costs a dict entry, not channel-layer (Redis) state.

Pushes are best-effort wake-ups: a lost one delays a long poll until its timeout re-read, and a
reviewer's page re-syncs when its socket reconnects. Nothing is decided by a message.
"""

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypedDict

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import connections
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

# Staff see every request, routed or not; reviewers listen to their teams' groups only.
STAFF_GROUP = "approvals.staff"
# Every server process listens here once, for every request's "resolved" nudge.
RESOLVED_GROUP = "approvals.resolved"
# The group membership expires in some layers (a day by default): renew it well before then.
RESOLVED_GROUP_RENEW_SECONDS = 3600.0

# Event names: the consumer method a message is dispatched to is its type with "." -> "_".
EVENT_QUEUE_FRAGMENT = "queue.fragment"
EVENT_QUEUE_REVOKE = "queue.revoke"
EVENT_APPROVAL_RESOLVED = "approval.resolved"
# A listener's message to itself through RESOLVED_GROUP: its subscription is live.
EVENT_LISTENER_PROBE = "approval.listener_probe"
# How long the first waiter of a process waits for that proof before going on regardless.
LISTENER_PROBE_SECONDS = 5.0
# While polls are parked, the listener checks its subscription this often with a probe through
# the group; a probe that cannot be sent, or is not back within LISTENER_WATCH_TIMEOUT_SECONDS,
# means the channel layer is lost (Redis down): the parked polls then read the database once a
# second instead, so a decision made meanwhile reaches them a second or two late, not at their
# timeout. channels_redis itself retries quietly, so nothing else would tell.
LISTENER_WATCH_SECONDS = 1.0
LISTENER_WATCH_TIMEOUT_SECONDS = 1.0
# What a parked poll is woken with when the listener lost the channel layer.
LAYER_LOST: dict[str, Any] = {}


class QueueFragmentEvent(TypedDict):
    type: str  # EVENT_QUEUE_FRAGMENT
    html: str
    team_id: int | None  # the consumer re-checks access against it before forwarding
    # Unique per push: sockets of one reviewer in one process share one access check per event.
    event_id: str


class QueueRevokeEvent(TypedDict):
    """Sent to a team a request left (escalation): remove its row. Carries only the id."""

    type: str  # EVENT_QUEUE_REVOKE
    html: str


class ApprovalResolvedEvent(TypedDict):
    type: str  # EVENT_APPROVAL_RESOLVED
    code: str
    status: str
    # What GET /api/v1/requests/<code> answers now (approvals.api), read after the commit;
    # None if that read failed: waiters then read for themselves.
    agent_view: dict[str, Any] | None


def team_group(team_id: int) -> str:
    return f"approvals.team.{team_id}"


def reviewer_groups(team_ids: set[int] | None) -> list[str]:
    """The groups a reviewer's socket joins: None (staff) means every request."""
    if team_ids is None:
        return [STAFF_GROUP]
    return [team_group(team_id) for team_id in sorted(team_ids)]


def _groups_for(team_id: int | None) -> list[str]:
    # Unrouted requests reach staff only (approvals/access.py).
    return [STAFF_GROUP] if team_id is None else [STAFF_GROUP, team_group(team_id)]


def render_queue_fragment(approval: object) -> str:
    """The out-of-band fragment for one request: insert, replace or remove its queue row."""
    return render_to_string("approvals/queue.html#queue-oob", {"approval": approval})


def publish_resolved(*, approval_id: int, code: object, status: str) -> None:
    """Wake the agents waiting on a request that was just decided. Runs after commit.

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
        "agent_view": _agent_view(approval_id),
    }
    try:
        async_to_sync(layer.group_send)(RESOLVED_GROUP, resolved)
    except Exception:
        logger.exception("resolved push failed for approval %s", code)
        if resolved["agent_view"] is None:
            return  # the decision stands; the agents' polls re-read at their timeout
        # Perhaps the view could not be sent (serialized): the bare nudge still wakes them.
        with contextlib.suppress(Exception):
            async_to_sync(layer.group_send)(RESOLVED_GROUP, {**resolved, "agent_view": None})


def publish_approval_changed(approval_id: int, previous_team_id: int | None = None) -> None:
    """Tell reviewers that a request was created or changed (waiting agents: publish_resolved).

    `previous_team_id`: the team the request was escalated away from; its reviewers are told to
    drop the row. Runs after commit. A dead channel layer must not turn a recorded decision into
    an error for the reviewer who made it, so failures are logged, not raised.
    """
    from approvals.selectors import approval_get_for_display

    layer = get_channel_layer()
    if layer is None:
        return
    approval = approval_get_for_display(approval_id=approval_id)
    try:
        if previous_team_id is not None and previous_team_id != approval.team_id:
            revoke: QueueRevokeEvent = {
                "type": EVENT_QUEUE_REVOKE,
                "html": render_to_string(
                    "approvals/queue.html#queue-revoke", {"approval": approval}
                ),
            }
            async_to_sync(layer.group_send)(team_group(previous_team_id), revoke)
        fragment: QueueFragmentEvent = {
            "type": EVENT_QUEUE_FRAGMENT,
            "html": render_queue_fragment(approval),
            "team_id": approval.team_id,
            "event_id": uuid.uuid4().hex,
        }
        for group in _groups_for(approval.team_id):
            async_to_sync(layer.group_send)(group, fragment)
    except Exception:
        logger.exception("realtime push failed for approval %s", approval.code)


# Whether any reviewer socket is open anywhere: every server process with one keeps this cache
# key fresh (the cache is Redis when REDIS_URL is set, so all processes share it). Pushing new
# requests costs a read and a render per batch of creations, a large share of what creating
# them costs; with nobody watching the console, nobody would receive them.
LISTENING_KEY = "approvals.realtime.reviewers_listening"
LISTENING_TTL_SECONDS = 60
LISTENING_REFRESH_SECONDS = 20


class _ListeningBeacon:
    """This loop's count of open reviewer sockets, and the task keeping LISTENING_KEY fresh."""

    def __init__(self) -> None:
        self.sockets = 0
        self.refreshing: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        while self.sockets > 0:
            await asyncio.sleep(LISTENING_REFRESH_SECONDS)
            if self.sockets > 0:
                await _listening_mark()


_beacons: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ListeningBeacon]" = (
    weakref.WeakKeyDictionary()
)


# Not cache.aset: inside a consumer, a thread-sensitive call gets a thread of the socket's own,
# which stayed with the socket (about 11 KB each of 10,000 idle sockets).
_cache_set = sync_to_async(cache.set, thread_sensitive=False)


async def _listening_mark() -> None:
    try:
        await _cache_set(LISTENING_KEY, True, LISTENING_TTL_SECONDS)
    except Exception:
        # Pushes then skip until the next refresh; the page re-syncs when it reconnects.
        logger.exception("marking reviewers as listening failed")


async def reviewer_socket_opened() -> None:
    """Call before the socket joins its groups: pushes from then on are rendered."""
    beacon = _beacons.setdefault(asyncio.get_running_loop(), _ListeningBeacon())
    beacon.sockets += 1
    if beacon.refreshing is None or beacon.refreshing.done():
        # The first open socket here: mark now, then keep the mark fresh while any is open.
        # Later sockets find it fresh (refreshed well within its lifetime).
        await _listening_mark()
        beacon.refreshing = asyncio.ensure_future(beacon.refresh())


def reviewer_socket_closed() -> None:
    beacon = _beacons.get(asyncio.get_running_loop())
    if beacon is not None:
        beacon.sockets = max(0, beacon.sockets - 1)


def reviewers_listening() -> bool:
    """False only when no reviewer socket has been open anywhere for LISTENING_TTL_SECONDS."""
    try:
        return bool(cache.get(LISTENING_KEY))
    except Exception:
        return True  # unknown: push, as if someone were listening


def publish_approvals_created(approval_ids: list[int]) -> None:
    """Push requests just created to reviewers: one read, one render and one message per team
    for the lot. Batched intake creates dozens at a time, and a read, a render and a
    channel-layer round trip per request cost more than creating it. New requests have no
    waiting agents and no open detail pages, so only the queue and history rows go out.
    """
    from approvals.selectors import approvals_get_for_created_rows

    if not approval_ids:
        return
    layer = get_channel_layer()
    if layer is None or not reviewers_listening():
        return
    try:
        by_team: dict[int | None, list[object]] = {}
        for approval in approvals_get_for_created_rows(approval_ids=approval_ids):
            by_team.setdefault(approval.team_id, []).append(approval)
        for team_id, approvals in by_team.items():
            # The consumer re-checks access by team_id, so one message carries one team's rows.
            fragment: QueueFragmentEvent = {
                "type": EVENT_QUEUE_FRAGMENT,
                "html": render_to_string(
                    "approvals/queue.html#queue-created", {"approvals": approvals}
                ),
                "team_id": team_id,
                "event_id": uuid.uuid4().hex,
            }
            for group in _groups_for(team_id):
                async_to_sync(layer.group_send)(group, fragment)
    except Exception:
        logger.exception("realtime push failed for %d new approvals", len(approval_ids))


def publish_presence(approval_id: int) -> None:
    """Who is looking at a request now: the presence partial, swapped out-of-band."""
    from approvals.selectors import approval_get_for_display

    approval = approval_get_for_display(approval_id=approval_id)
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        fragment: QueueFragmentEvent = {
            "type": EVENT_QUEUE_FRAGMENT,
            "html": render_to_string("approvals/queue.html#presence-oob", {"approval": approval}),
            "team_id": approval.team_id,
            "event_id": uuid.uuid4().hex,
        }
        for group in _groups_for(approval.team_id):
            async_to_sync(layer.group_send)(group, fragment)
    except Exception:
        logger.exception("presence push failed for approval %s", approval.code)


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


def _agent_view(approval_id: int) -> dict[str, Any] | None:
    # The agent API owns its representation; it imports this module, hence the late import.
    from approvals.api import approval_request_representation
    from approvals.models import ApprovalRequest

    try:
        approval = ApprovalRequest.objects.select_related(
            "decision", "run", "policy_evaluation", "team"
        ).get(pk=approval_id)
        return approval_request_representation(approval)
    except Exception:
        # The waiters read the request themselves: slower, never wrong.
        logger.exception("reading approval %s for its waiting agents failed", approval_id)
        return None


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
