"""Pushes to reviewers' sockets: one group per team (staff in STAFF_GROUP, which gets every
request). They get the same row partial the queue page renders, as an htmx out-of-band swap
(new rows inserted, changed rows replaced, decided rows removed), and who is looking at which
request. Every event names the request's team; the consumer re-checks access before forwarding."""

import asyncio
import logging
import time
import uuid
import weakref

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.template.loader import render_to_string

from approvals.models import Status
from approvals.realtime.groups import (
    EVENT_QUEUE_FRAGMENT,
    EVENT_QUEUE_REVOKE,
    QueueFragmentEvent,
    QueueRevokeEvent,
    _groups_for,
    team_group,
)
from approvals.realtime.sockets import send_to_groups
from approvals.selectors import approval_get_for_display, approvals_get_for_created_rows

logger = logging.getLogger("approvals.realtime")


def render_queue_fragment(approval: object) -> str:
    """The out-of-band fragment for one request: insert, replace or remove its queue row."""
    return render_to_string("approvals/queue.html#queue-oob", {"approval": approval})


def publish_approval_changed(approval_id: int, previous_team_id: int | None = None) -> None:
    """Tell reviewers that a request was created or changed (waiting agents: publish_resolved).

    `previous_team_id`: the team the request was escalated away from; its reviewers are told to
    drop the row. Runs after commit. A dead channel layer must not turn a recorded decision into
    an error for the reviewer who made it, so failures are logged, not raised.
    """
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
            send_to_groups(layer, [team_group(previous_team_id)], revoke)
        fragment: QueueFragmentEvent = {
            "type": EVENT_QUEUE_FRAGMENT,
            "html": render_queue_fragment(approval),
            "team_id": approval.team_id,
            "event_id": uuid.uuid4().hex,
        }
        send_to_groups(layer, _groups_for(approval.team_id), fragment)
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
        self.marked_at = 0.0  # time.monotonic() once LISTENING_KEY was set for its sockets

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
    """Call before the socket joins its groups: pushes from then on are rendered. Returns once
    no process still remembers a "no" from before (reviewers_listening), a quarter second after
    the mark at most; if cancelled meanwhile, the socket is not counted."""
    beacon = _beacons.setdefault(asyncio.get_running_loop(), _ListeningBeacon())
    beacon.sockets += 1
    try:
        if beacon.refreshing is None or beacon.refreshing.done():
            # The first open socket here: mark now, then keep the mark fresh while any is
            # open. Later sockets find it fresh (refreshed well within its lifetime).
            await _listening_mark()
            beacon.marked_at = time.monotonic()
            beacon.refreshing = asyncio.ensure_future(beacon.refresh())
        # Until every process's remembered "no" from before the mark has run out (see
        # reviewers_listening): a later socket of this process waits out what remains of it.
        if (wait := beacon.marked_at + LISTENING_NO_REMEMBERED_SECONDS - time.monotonic()) > 0:
            await asyncio.sleep(wait)
    except BaseException:  # the client left during the handshake: never counted as open
        reviewer_socket_closed()
        raise


def reviewer_socket_closed() -> None:
    beacon = _beacons.get(asyncio.get_running_loop())
    if beacon is not None:
        beacon.sockets = max(0, beacon.sockets - 1)


# Answers are remembered in this process for a moment, so that the intake writer, which asks
# after every batch it writes, mostly does not ask the cache (a round trip, and 3 to 7% of a
# batch's CPU):
# - a "yes" for a twelfth of the key's life (5 s): pushing a little longer after the last socket
#   closed costs only the push;
# - a "no" for LISTENING_NO_REMEMBERED_SECONDS, counted from before the cache was asked: with
#   nobody watching (a fleet working unattended), the writer would ask after every batch. So a
#   socket that opens waits that long after marking the key before it is accepted
#   (reviewer_socket_opened), and the page re-reads its rows once accepted: any "no" taken
#   before the mark has run out by then, in every process, so each new row is in that read or
#   pushed to the socket.
LISTENING_NO_REMEMBERED_SECONDS = 0.25
# The answer and until when (time.monotonic()), as one tuple: the writer and push threads both
# read it, and neither may see one answer with the other's deadline.
_remembered: tuple[bool, float] = (False, 0.0)


def reviewers_listening() -> bool:
    """False only when no reviewer socket has been open anywhere for LISTENING_TTL_SECONDS
    (give or take the moments answers are remembered, above)."""
    global _remembered
    asked_at = time.monotonic()
    answer, until = _remembered
    if asked_at < until:
        return answer
    try:
        listening = bool(cache.get(LISTENING_KEY))
    except Exception:
        return True  # unknown: push, as if someone were listening
    _remembered = (
        listening,
        asked_at + (LISTENING_TTL_SECONDS / 12 if listening else LISTENING_NO_REMEMBERED_SECONDS),
    )
    return listening


def reviewers_listening_forget() -> None:
    """The next reviewers_listening() asks the cache (for tests that set LISTENING_KEY)."""
    global _remembered
    _remembered = (False, 0.0)


def publish_approvals_created(approval_ids: list[int]) -> None:
    """Push requests just created to reviewers: one read, one render and one message per team
    for the lot. Batched intake creates dozens at a time, and a read, a render and a
    channel-layer round trip per request cost more than creating it. New requests have no
    waiting agents and no open detail pages, so only the queue and history rows go out.

    Held requests go to their team's reviewers; those the policy decided to staff only, as
    before they had a team. They belong to their rule's team, whose reviewers find them in
    their history when it loads, but nobody needs to act on them, and policy-decided calls are
    the commonest: pushing them to their teams too would add a message per team to most
    batches, and a row on every open page of that team, for nothing to decide.
    """
    if not approval_ids:
        return
    layer = get_channel_layer()
    if layer is None or not reviewers_listening():
        return
    try:
        by_team: dict[int | None, list[object]] = {}
        for approval in approvals_get_for_created_rows(approval_ids=approval_ids):
            held = approval.status == Status.PENDING
            by_team.setdefault(approval.team_id if held else None, []).append(approval)
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
            send_to_groups(layer, _groups_for(team_id), fragment)
    except Exception:
        logger.exception("realtime push failed for %d new approvals", len(approval_ids))


def publish_presence(approval_id: int) -> None:
    """Who is looking at a request now: the presence partial, swapped out-of-band."""
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
        send_to_groups(layer, _groups_for(approval.team_id), fragment)
    except Exception:
        logger.exception("presence push failed for approval %s", approval.code)
