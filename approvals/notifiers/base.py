"""What the reviewer-notification transports share. The transport interface and its errors are
the one outbox's (console/outbox.py), so a notifier fails the way an AAP webhook does."""

from dataclasses import dataclass

from approvals.models import Notification
from console.outbox import PermanentError, RetryableError, Transport, TransportError

__all__ = ["Notifier", "PermanentError", "PostedMessage", "RetryableError", "TransportError"]


@dataclass(frozen=True)
class PostedMessage:
    """Where a chat message landed, so it can be updated with the outcome later."""

    channel: str
    ts: str


class Notifier(Transport):
    """A transport for reviewer notifications: one per channel."""

    channel: str = ""

    def notify(self, notification: Notification) -> PostedMessage | None:
        raise NotImplementedError
