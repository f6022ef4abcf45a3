"""The only package that talks to the channel layer: groups (names, events, payload types),
reviewers (pushes to reviewers' sockets), sockets (this process's reviewer sockets,
one subscription for all), longpoll (waking agents' long polls).

Two kinds of listeners: reviewers' sockets, one group per team (approvals.realtime.reviewers),
and agents' long polls, one subscription per server process (approvals.realtime.longpoll).

Pushes are best-effort wake-ups: a lost one delays a long poll until its timeout re-read, and a
reviewer's page re-syncs when its socket reconnects. Nothing is decided by a message.
"""

from approvals.realtime.groups import (
    EVENT_APPROVAL_RESOLVED,
    EVENT_LISTENER_PROBE,
    EVENT_QUEUE_FRAGMENT,
    EVENT_QUEUE_REVOKE,
    LISTENER_PROBE_SECONDS,
    RESOLVED_GROUP,
    RESOLVED_GROUP_RENEW_SECONDS,
    STAFF_GROUP,
    ApprovalResolvedEvent,
    QueueFragmentEvent,
    QueueRevokeEvent,
    reviewer_groups,
    team_group,
)
from approvals.realtime.longpoll import (
    DEGRADED_POLL_SECONDS,
    ResolutionListener,
    _listeners,
    drain,
    draining,
    publish_resolved,
    wait_until_resolved,
)
from approvals.realtime.reviewers import (
    LISTENING_KEY,
    LISTENING_REFRESH_SECONDS,
    LISTENING_TTL_SECONDS,
    publish_approval_changed,
    publish_approvals_created,
    publish_presence,
    render_queue_fragment,
    reviewer_socket_closed,
    reviewer_socket_opened,
    reviewers_listening,
    reviewers_listening_forget,
)
from approvals.realtime.sockets import ReviewerSockets, reviewer_sockets, send_to_groups

__all__ = [
    "DEGRADED_POLL_SECONDS",
    "EVENT_APPROVAL_RESOLVED",
    "EVENT_LISTENER_PROBE",
    "EVENT_QUEUE_FRAGMENT",
    "EVENT_QUEUE_REVOKE",
    "LISTENER_PROBE_SECONDS",
    "LISTENING_KEY",
    "LISTENING_REFRESH_SECONDS",
    "LISTENING_TTL_SECONDS",
    "RESOLVED_GROUP",
    "RESOLVED_GROUP_RENEW_SECONDS",
    "STAFF_GROUP",
    "ApprovalResolvedEvent",
    "QueueFragmentEvent",
    "QueueRevokeEvent",
    "ResolutionListener",
    "ReviewerSockets",
    "_listeners",
    "drain",
    "draining",
    "publish_approval_changed",
    "publish_approvals_created",
    "publish_presence",
    "publish_resolved",
    "render_queue_fragment",
    "reviewer_groups",
    "reviewer_socket_closed",
    "reviewer_socket_opened",
    "reviewer_sockets",
    "reviewers_listening",
    "reviewers_listening_forget",
    "send_to_groups",
    "team_group",
    "wait_until_resolved",
]
