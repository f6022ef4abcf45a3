"""The only package that talks to the channel layer: groups (names, events, payload types),
reviewers (pushes to reviewers' sockets), longpoll (waking agents' long polls).

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
)

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
    "_listeners",
    "publish_approval_changed",
    "publish_approvals_created",
    "publish_presence",
    "publish_resolved",
    "render_queue_fragment",
    "reviewer_groups",
    "reviewer_socket_closed",
    "reviewer_socket_opened",
    "reviewers_listening",
    "team_group",
    "wait_until_resolved",
]
