"""One outbox: claim, attempt, retry, give up and audit, written once for every kind of row.

Rows are written inside the transaction of the event that caused them, so there is never an
event without its deliveries or the reverse. Delivery happens later, in Celery, through one task
(`outbox.deliver`, taking the kind and the row's id) that calls `outbox_deliver`:

- a worker claims a row with one compare-and-set (`lease_until` + one more attempt) before it
  sends, so two workers holding the same task never both send; a worker that dies mid-send
  frees the row when its lease runs out;
- the kind's transport sends; a permanent failure gives the row up, a retryable one backs off
  exponentially (or as long as the receiver asks, its Retry-After), until the kind's attempt
  limit or retry window runs out;
- being sent and being given up are each audited once, in the transaction that records them;
- beat re-enqueues due, undelivered rows (`outbox.requeue_due`), so an enqueue lost to a dead
  broker only delays.

What this cannot promise: if a worker dies after the receiver accepted a message but before the
row is marked sent, the row is sent again when the lease expires. Kinds whose receiver can
de-duplicate send an idempotency key (AAP's `webhook-id`), so the receiver sees it once; Slack,
which takes none, is asked first whether an earlier try got through
(approvals/notifiers/slack_post_once.py).

A kind of row is an `Outbox` subclass, named in KINDS by dotted path so this module imports
neither app's delivery code (and agents' webhooks need not be imported to send a notification).
"""

import logging
from datetime import datetime, timedelta
from functools import cache, partial
from typing import Any, ClassVar

from celery import current_app
from django.db import models, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

from approvals.audit import audit_record
from console.hot_statements import runs_again_if_prepared_stale
from console.outbox import OutboxRow, PermanentError, Postponed, RetryableError, Transport

logger = logging.getLogger(__name__)

TASK_DELIVER = "outbox.deliver"
TASK_REQUEUE_DUE = "outbox.requeue_due"

KIND_NOTIFICATION = "notification"
KIND_AAP_WEBHOOK = "aap-webhook"
KIND_EMAIL_DIGEST = "email-digest"
KINDS = {
    KIND_NOTIFICATION: "approvals.notifications.NotificationOutbox",
    KIND_EMAIL_DIGEST: "approvals.digests.EmailDigestOutbox",
    KIND_AAP_WEBHOOK: "agents.aap.webhooks.WebhookOutbox",
}

# What one attempt came to (the values of NotificationAttempt.Outcome).
OUTCOME_SENT, OUTCOME_RETRY, OUTCOME_FAILED = "sent", "retry", "failed"

GAVE_UP = "gave up"
WINDOW_ENDED = "retry window ended"


class Dropped(Exception):
    """The row no longer needs delivering (decided meanwhile, receiver removed, window over)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Outbox[Row: OutboxRow]:
    """One kind of outbox row: its table, when it is due, its transport and what it writes.

    The delivery algorithm is `outbox_deliver`'s; a kind only says how its own state reads.
    """

    kind: ClassVar[str]
    model: type[Row]
    audit_sent: ClassVar[str]
    audit_failed: ClassVar[str]
    # Written with the claim, and part of the fence that says the lease is still ours.
    claim_fields: ClassVar[dict[str, Any]] = {}
    # Written when a try failed and the row waits for its next attempt.
    retry_fields: ClassVar[dict[str, Any]] = {}

    def lease_seconds(self) -> float:
        raise NotImplementedError

    def claimable(self, now: datetime) -> Q:
        """Rows a worker may claim now: due and undelivered, or held by a lease that ran out."""
        raise NotImplementedError

    def due(self, now: datetime) -> Q:
        """Rows the sweep should enqueue: a worker should have picked them up by now."""
        return self.claimable(now)

    def fetch(self, row_id: int) -> Row:
        return self.model._default_manager.get(pk=row_id)

    def transport_for(self, row: Row, now: datetime) -> Transport:
        """The transport that delivers this row; raises Dropped if it needs no delivery now."""
        raise NotImplementedError

    def max_attempts(self) -> int | None:
        return None

    def deadline(self, row: Row) -> datetime | None:
        """After this no attempt is made: the row is given up."""
        return None

    def backoff(self, attempts: int) -> float:
        raise NotImplementedError

    def retry_from(self, claimed_at: datetime) -> datetime:
        """What the backoff counts from: the claim, or (a kind whose sends take long) the end."""
        return claimed_at

    def sent_fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def failed_fields(self, *, reason: str, error: str) -> dict[str, Any]:
        raise NotImplementedError

    def failed_audit_after(self, *, reason: str, error: str) -> dict[str, Any]:
        raise NotImplementedError

    def audit_context(self, row: Row, receipt: object | None) -> dict[str, object]:
        raise NotImplementedError

    def attempt_begin(self, row: Row, now: datetime) -> models.Model | None:
        """A kind that keeps a row per attempt writes it here."""
        return None

    def attempt_end(self, attempt: models.Model | None, outcome: str, error: str) -> None:
        pass

    def drop(
        self, row: Row, ours: QuerySet[Row], attempt: models.Model | None, reason: str
    ) -> None:
        """A row that needs no delivery any more: by default it is given up, and audited."""
        _give_up(self, row, ours, attempt, reason=reason, error="")

    def after_sent(self, row: Row, receipt: object | None) -> None:
        """In the transaction that marked the row sent."""


@cache
def outbox_for(kind: str) -> Outbox[Any]:
    try:
        path = KINDS[kind]
    except KeyError:
        raise ValueError(f"No outbox of kind {kind!r}.") from None
    outbox: Outbox[Any] = import_string(path)()
    return outbox


def outbox_deliver(*, kind: str, row_id: int, now: datetime | None = None) -> float | None:
    """Make one delivery attempt. Returns seconds until the row should be tried again, or None.

    Claims the row first; if another worker holds it, or it is not due, or it is done, this
    returns None without sending anything.
    """
    outbox = outbox_for(kind)
    now = now or timezone.now()
    claimed = outbox.model.objects.filter(outbox.claimable(now), pk=row_id).update(
        lease_until=now + timedelta(seconds=outbox.lease_seconds()),
        attempts=F("attempts") + 1,
        **outbox.claim_fields,
    )
    if claimed != 1:
        return None
    row = outbox.fetch(row_id)
    # The fence: every later write is ours only while nobody has claimed the row after us.
    ours = outbox.model.objects.filter(pk=row.pk, attempts=row.attempts, **outbox.claim_fields)
    attempt = outbox.attempt_begin(row, now)
    try:
        transport = outbox.transport_for(row, now)
    except Dropped as dropped:
        outbox.drop(row, ours, attempt, dropped.reason)
        return None
    try:
        receipt = transport.notify(row)
    except Postponed as wait:
        return _retry_later(outbox, row, ours, attempt, now, wait.seconds, error="", count=False)
    except PermanentError as error:
        _give_up(outbox, row, ours, attempt, reason=GAVE_UP, error=str(error))
        return None
    except Exception as error:
        if not isinstance(error, RetryableError):
            logger.exception("transport crashed on %s %s", kind, row.pk)
        message = str(error) or type(error).__name__
        limit = outbox.max_attempts()
        if limit is not None and row.attempts >= limit:
            failure = f"gave up after {row.attempts} attempts: {message}"
            _give_up(outbox, row, ours, attempt, reason=GAVE_UP, error=failure)
            return None
        delay = max(outbox.backoff(row.attempts), getattr(error, "retry_after", None) or 0.0)
        return _retry_later(outbox, row, ours, attempt, now, delay, error=message, count=True)

    _sent_record(outbox, row, ours, attempt, receipt)
    return None


@runs_again_if_prepared_stale  # not the sending before it: only what records it was sent
def _sent_record(
    outbox: Outbox[Any],
    row: OutboxRow,
    ours: QuerySet[Any],
    attempt: models.Model | None,
    receipt: object | None,
) -> None:
    with transaction.atomic():
        outbox.attempt_end(attempt, OUTCOME_SENT, "")
        if ours.update(lease_until=None, last_error="", **outbox.sent_fields()):
            audit_record(
                action=outbox.audit_sent, target=row, context=outbox.audit_context(row, receipt)
            )
        outbox.after_sent(row, receipt)


def _retry_later(
    outbox: Outbox[Any],
    row: OutboxRow,
    ours: QuerySet[Any],
    attempt: models.Model | None,
    now: datetime,
    delay: float,
    *,
    error: str,
    count: bool,
) -> float | None:
    next_attempt_at = outbox.retry_from(now) + timedelta(seconds=delay)
    deadline = outbox.deadline(row)
    if deadline is not None and next_attempt_at >= deadline:
        _give_up(outbox, row, ours, attempt, reason=WINDOW_ENDED, error=error)
        return None
    outbox.attempt_end(attempt, OUTCOME_RETRY, error)
    ours.update(
        lease_until=None,
        next_attempt_at=next_attempt_at,
        # Our own rate limit is not the receiver's failure: it does not use up an attempt.
        attempts=F("attempts") - (0 if count else 1),
        **({"last_error": error} if error else {}),
        **outbox.retry_fields,
    )
    return delay


@runs_again_if_prepared_stale  # one fenced transaction: a lease lost meanwhile writes nothing
def _give_up(
    outbox: Outbox[Any],
    row: OutboxRow,
    ours: QuerySet[Any],
    attempt: models.Model | None,
    *,
    reason: str,
    error: str,
) -> None:
    """Give the row up for good. Only a lease we still hold may do that, and only once."""
    with transaction.atomic():
        outbox.attempt_end(attempt, OUTCOME_FAILED, error)
        if ours.update(lease_until=None, **outbox.failed_fields(reason=reason, error=error)):
            audit_record(
                action=outbox.audit_failed,
                target=row,
                after=outbox.failed_audit_after(reason=reason, error=error),
                context=outbox.audit_context(row, None),
            )


# --- Enqueueing -------------------------------------------------------------------------------


def outbox_enqueue(*, kind: str, row_ids: list[int], countdown: float = 0) -> None:
    """Hand rows to a worker. If the broker is down, the beat sweep picks them up later."""
    # By task name through the current app (console.celery, loaded with the project): importing
    # console.celery here would tie this layer to the tasks module that imports it.
    for row_id in row_ids:
        try:
            current_app.send_task(TASK_DELIVER, args=[kind, row_id], countdown=countdown or None)
        except Exception:
            # The row is committed: beat's re-enqueue sweep delivers it once the broker is back.
            logger.warning("could not enqueue %s %s; beat will", kind, row_id)


def outbox_enqueue_after_commit(*, kind: str, row_ids: list[int]) -> None:
    if row_ids:
        transaction.on_commit(partial(outbox_enqueue, kind=kind, row_ids=row_ids))


def outbox_due(*, kind: str, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Rows a worker should have picked up by now: their enqueue was lost, or their worker died."""
    outbox = outbox_for(kind)
    return list(
        outbox.model.objects.filter(outbox.due(now or timezone.now()))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
