"""The parts of the outbox that know nothing of what is delivered: the row's delivery fields,
the transport interface with its two kinds of failure, and the retry arithmetic.

Every outbox table (reviewer notifications in approvals, AAP webhook events in agents) inherits
`OutboxRow`, and every channel (email, Slack, console, AAP webhook) is a `Transport`, in the way
healthchecks' `hc/api/transports.py` gives each channel one class and one delivery path. The
delivery itself (claim, attempt, retry, give up, audit) is written once, in approvals/outbox.py.
This module imports nothing of either app, so both apps' models can inherit from it.
"""

import math
import random
from email.utils import parsedate_to_datetime
from typing import Any

from django.db import models
from django.utils import timezone


class OutboxRow(models.Model):
    """What every outbox row carries for its delivery, under one set of names.

    A worker claims a row by setting `lease_until` in one compare-and-set (and counting the
    attempt); a worker that dies mid-send frees the row when its lease runs out. Subclasses may
    redeclare a field with a different column type where their table had one before.
    """

    next_attempt_at = models.DateTimeField()
    # A claimed row belongs to one worker until then; a worker that died frees it on expiry.
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        abstract = True


class TransportError(Exception):
    pass


class PermanentError(TransportError):
    """Retrying cannot help (unknown recipient, bad credentials): give the row up."""


class RetryableError(TransportError):
    """The receiver may accept it later (outage, rate limit). `retry_after` is the receiver's
    own wish in seconds (a Retry-After header), which beats our backoff when it is longer."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Postponed(TransportError):
    """Not tried at all (our own rate limit said wait): come back after `seconds`, and do not
    count this as an attempt."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"postponed for {seconds:.0f} s")
        self.seconds = seconds


class Transport:
    """One channel's way of delivering a row. Raises PermanentError, RetryableError or Postponed;
    anything else it raises counts as retryable (and is logged: it is a bug). Returns a receipt
    (what the receiver gave back, kept for the audit record), or None."""

    def notify(self, row: Any) -> object | None:
        raise NotImplementedError


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
        except (TypeError, ValueError):
            return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def backoff_seconds(attempts: int, *, base: float, cap: float, jitter: bool = False) -> float:
    """base * 2^(attempts-1), capped. With jitter a random point in [delay/2, delay], so many
    rows failing together do not come back at the receiver in lockstep."""
    delay = float(min(base * 2 ** max(attempts - 1, 0), cap))
    return delay * random.uniform(0.5, 1.0) if jitter else delay
