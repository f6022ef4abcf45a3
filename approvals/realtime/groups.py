"""What the channel layer carries: group names, event names and payload types, one place."""

from typing import Any, TypedDict

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
    # What GET /api/v1/requests/<code> answers now (agents.api.native), read after the commit;
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
