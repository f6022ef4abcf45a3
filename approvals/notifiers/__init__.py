"""One transport per channel. The outbox (approvals/outbox.py) decides what and when; these
only deliver, and say whether a failure is worth retrying."""

from approvals.models import Channel
from approvals.notifiers.base import Notifier


def notifier_for(channel: str) -> Notifier:
    # Imported here so that loading the outbox never requires the Slack SDK's import cost.
    if channel == Channel.EMAIL:
        from approvals.notifiers.email import EmailNotifier

        return EmailNotifier()
    if channel == Channel.SLACK:
        from approvals.notifiers.slack import SlackNotifier

        return SlackNotifier()
    if channel == Channel.CONSOLE:
        from approvals.notifiers.console import ConsoleNotifier

        return ConsoleNotifier()
    raise ValueError(f"No notifier for channel {channel!r}.")
