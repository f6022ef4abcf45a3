"""The notification list, one entry per request: a request routed to the reviewer's team, then
escalated to them, then decided is one line with three steps, not three lines."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from approvals.models import REASON_OUTCOME_FAILED, Notification
from approvals.notifications import REASON_RESOLVED, REASON_ROUTED


def notification_step_label(reason: str) -> str:
    """What one notification said, in the reviewer's words."""
    if reason == REASON_ROUTED:
        return "routed to your team"
    if reason == REASON_RESOLVED:
        return "decided"
    if reason == REASON_OUTCOME_FAILED:
        return "failed when it ran, after you approved it"
    if reason.startswith("escalation"):
        return "escalated to you"
    return reason


@dataclass
class NotificationGroup:
    approval: Any
    steps: list[Notification] = field(default_factory=list)  # oldest first

    @property
    def latest(self) -> Notification:
        return self.steps[-1]

    @property
    def unread(self) -> bool:
        return any(step.read_at is None for step in self.steps)


def notifications_grouped(notifications: Iterable[Notification]) -> list[NotificationGroup]:
    """Notifications (newest first) grouped by request, the request notified last on top."""
    groups: dict[int, NotificationGroup] = {}
    for notification in notifications:
        group = groups.setdefault(
            notification.approval_id, NotificationGroup(approval=notification.approval)
        )
        group.steps.insert(0, notification)
        notification.step_label = notification_step_label(notification.reason)  # type: ignore[attr-defined]
    return list(groups.values())
