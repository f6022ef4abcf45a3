"""The contract every transport keeps: deliver one notification or raise one of two errors."""

from dataclasses import dataclass

from approvals.models import Notification


class NotifierError(Exception):
    pass


class PermanentError(NotifierError):
    """Retrying cannot help (unknown recipient, bad credentials): mark the row failed."""


class RetryableError(NotifierError):
    """The receiver may accept it later (outage, rate limit). `retry_after` is the receiver's
    own wish in seconds (Slack's Retry-After), which beats our backoff when it is longer."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class PostedMessage:
    """Where a chat message landed, so it can be updated with the outcome later."""

    channel: str
    ts: str


class Notifier:
    channel: str = ""

    def notify(self, notification: Notification) -> PostedMessage | None:
        raise NotImplementedError
