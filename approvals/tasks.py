"""Celery tasks: fetch, call one service, own the retry policy."""

from celery import Task, shared_task

from approvals.escalations import escalations_fire_due
from approvals.notifications import notification_deliver, notifications_due_for_requeue
from approvals.reviews import presences_expire
from approvals.services import approval_requests_expire_overdue


@shared_task(name="approvals.expire_overdue_requests", ignore_result=True)
def expire_overdue_requests() -> int:
    """Run by beat every few seconds. Reads expire overdue requests too: a late beat is safe."""
    return approval_requests_expire_overdue()


@shared_task(
    bind=True,
    name="approvals.deliver_notification",
    ignore_result=True,
    max_retries=None,
)
def deliver_notification(self: Task, notification_id: int) -> None:
    """Deliver one outbox row; the service claims it, so a duplicate task sends nothing."""
    retry_in = notification_deliver(notification_id=notification_id)
    if retry_in is not None:
        # If the broker is down now, this raises and beat's re-enqueue sweep takes over.
        raise self.retry(countdown=retry_in)


@shared_task(name="approvals.requeue_due_notifications", ignore_result=True)
def requeue_due_notifications() -> int:
    """Run by beat: enqueue rows whose enqueue was lost or whose worker died."""
    due = notifications_due_for_requeue()
    for notification_id in due:
        deliver_notification.delay(notification_id)
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
