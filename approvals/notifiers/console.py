"""In-console notifications: the outbox row is the message, shown on the reviewer's
notification page and raised as a browser notification by static/js/notifications.js."""

from approvals.models import Channel, Notification
from approvals.notifiers.base import Notifier, PostedMessage


class ConsoleNotifier(Notifier):
    channel = Channel.CONSOLE

    def notify(self, notification: Notification) -> PostedMessage | None:
        return None
