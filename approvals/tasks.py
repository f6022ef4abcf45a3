"""Celery tasks: fetch, call one service, own the retry policy."""

import logging

from celery import shared_task

from approvals.audit.prune import AuditArchiveUnnamed, AuditPruneRefused, audit_archive_past_age
from approvals.digests import email_digests_create
from approvals.escalations import escalations_fire_due
from approvals.outbox import (
    TASK_DELIVER,
    TASK_REQUEUE_DUE,
    outbox_deliver,
    outbox_due,
    outbox_enqueue,
)
from approvals.reviews import presences_expire
from approvals.services import (
    approval_outcomes_mark_not_reported,
    approval_requests_expire_overdue,
)

logger = logging.getLogger(__name__)


@shared_task(name="approvals.expire_overdue_requests", ignore_result=True)
def expire_overdue_requests() -> int:
    """Run by beat every few seconds. Reads expire overdue requests too: a late beat is safe."""
    return approval_requests_expire_overdue()


@shared_task(name=TASK_DELIVER, ignore_result=True)
def deliver_outbox_row(kind: str, row_id: int) -> None:
    """Deliver one outbox row of any kind; the service claims it, so a duplicate task sends
    nothing. A retry is a new task with a countdown; if the broker is down then, beat's sweep
    takes over."""
    retry_in = outbox_deliver(kind=kind, row_id=row_id)
    if retry_in is not None:
        outbox_enqueue(kind=kind, row_ids=[row_id], countdown=retry_in)


@shared_task(name=TASK_REQUEUE_DUE, ignore_result=True)
def requeue_due_outbox_rows(kind: str) -> int:
    """Run by beat, per kind: enqueue rows whose enqueue was lost or whose worker died."""
    due = outbox_due(kind=kind)
    outbox_enqueue(kind=kind, row_ids=due)
    return len(due)


@shared_task(name="approvals.fire_due_escalations", ignore_result=True)
def fire_due_escalations() -> int:
    """Run by beat every few seconds. Idempotent: a step fires once however often this runs."""
    return escalations_fire_due()


@shared_task(name="approvals.expire_stale_presence", ignore_result=True)
def expire_stale_presence() -> int:
    """Run by beat: drop "looking now" whose page stopped its heartbeat (a dead server process)."""
    return presences_expire()


@shared_task(name="approvals.archive_decided_requests", ignore_result=True)
def archive_decided_requests() -> None:
    # Lazy: the retention module reaches into every app's models to find what to archive.
    from approvals.retention import approvals_archive_past_retention

    approvals_archive_past_retention()


@shared_task(name="approvals.archive_old_audit_records", ignore_result=True)
def archive_old_audit_records() -> None:
    """Run by beat when AUDIT_ARCHIVE_AFTER_DAYS is set. A refused chunk deleted nothing (the
    chunks before it stay pruned): it is logged, and the next run goes on from there."""
    try:
        audit_archive_past_age()
    except AuditPruneRefused as refused:
        logger.error("Audit archive: a chunk was refused, nothing of it deleted: %s.", refused)
    except AuditArchiveUnnamed as unnamed:
        logger.error("Audit archive: %s.", unnamed)


@shared_task(name="approvals.send_due_email_digests", ignore_result=True)
def send_due_email_digests() -> int:
    """Run by beat every minute: write the digests that are due into the outbox."""
    return len(email_digests_create())


@shared_task(name="approvals.mark_unreported_outcomes", ignore_result=True)
def mark_unreported_outcomes() -> int:
    """Run by beat: approvals whose validity passed with no outcome become `not_reported`."""
    return approval_outcomes_mark_not_reported()
