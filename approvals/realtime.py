"""The only module that talks to the channel layer.

Two kinds of listeners:
- reviewers' sockets, in one group per team (staff in STAFF_GROUP, which gets every request):
  they get the same row partial the queue page renders, as an htmx out-of-band swap (new rows are
  inserted, changed rows replaced, decided rows removed), and who is looking at which request.
  Every event names the request's team, and the consumer re-checks access before forwarding;
- agents' long polls, one group per request: they get a bare "resolved" nudge and re-read the
  request, so the response always comes from the database, never from the message.

Pushes are best-effort wake-ups: a lost one delays a long poll until its timeout re-read, and a
reviewer's page re-syncs when its socket reconnects. Nothing is decided by a message.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypedDict

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import connections
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

# Staff see every request, routed or not; reviewers listen to their teams' groups only.
STAFF_GROUP = "approvals.staff"

# Event names: the consumer method a message is dispatched to is its type with "." -> "_".
EVENT_QUEUE_FRAGMENT = "queue.fragment"
EVENT_QUEUE_REVOKE = "queue.revoke"
EVENT_APPROVAL_RESOLVED = "approval.resolved"


class QueueFragmentEvent(TypedDict):
    type: str  # EVENT_QUEUE_FRAGMENT
    html: str
    team_id: int | None  # the consumer re-checks access against it before forwarding


class QueueRevokeEvent(TypedDict):
    """Sent to a team a request left (escalation): remove its row. Carries only the id."""

    type: str  # EVENT_QUEUE_REVOKE
    html: str


class ApprovalResolvedEvent(TypedDict):
    type: str  # EVENT_APPROVAL_RESOLVED
    status: str


def approval_group(code: object) -> str:
    return f"approval.{code}"


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


def publish_approval_changed(approval_id: int, previous_team_id: int | None = None) -> None:
    """Tell reviewers and waiting agents that a request was created or changed.

    `previous_team_id`: the team the request was escalated away from; its reviewers are told to
    drop the row. Runs after commit. A dead channel layer must not turn a recorded decision into
    an error for the reviewer who made it, so failures are logged, not raised.
    """
    from approvals.selectors import approval_get_for_display

    approval = approval_get_for_display(approval_id=approval_id)
    layer = get_channel_layer()
    if layer is None:
        return
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
        }
        for group in _groups_for(approval.team_id):
            async_to_sync(layer.group_send)(group, fragment)
        if approval.is_terminal:
            resolved: ApprovalResolvedEvent = {
                "type": EVENT_APPROVAL_RESOLVED,
                "status": approval.status,
            }
            async_to_sync(layer.group_send)(approval_group(approval.code), resolved)
    except Exception:
        logger.exception("realtime push failed for approval %s", approval.code)


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
        }
        for group in _groups_for(approval.team_id):
            async_to_sync(layer.group_send)(group, fragment)
    except Exception:
        logger.exception("presence push failed for approval %s", approval.code)


async def wait_until_resolved(
    *, code: object, timeout: float, is_resolved: Callable[[], Awaitable[bool]]
) -> None:
    """Return when the request is resolved or `timeout` seconds pass, whichever is first.

    Subscribes before checking the database, so a decision landing between the check and the
    subscription still wakes us: no lost wake-up, and no polling loop. Before parking, the
    request's database connection goes back to the pool: a waiting agent holds no connection,
    or a few dozen waiters per process would exhaust the pool and fail everyone else's requests.
    """
    layer = get_channel_layer()
    if layer is None:
        await _release_database_connections()
        await asyncio.sleep(timeout)
        return
    group = approval_group(code)
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    try:
        if await is_resolved():
            return
        await _release_database_connections()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(layer.receive(channel), timeout=timeout)
    finally:
        await layer.group_discard(group, channel)


# Runs in the request's own sync thread (thread-sensitive), so it closes the connections that
# this request's reads opened; with a pool, closing returns the connection to the pool.
_release_database_connections = sync_to_async(connections.close_all)
