"""Celery application. The broker comes from settings: filesystem:// embedded, Redis otherwise."""

import os

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun

from console.request_context import (
    attach_request_id_header,
    bind_task_request_id,
    unbind_task_request_id,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# A task carries the request id of the exchange that enqueued it, for its logs and audit records.
before_task_publish.connect(attach_request_id_header, weak=False, dispatch_uid="request_id_out")
task_prerun.connect(bind_task_request_id, weak=False, dispatch_uid="request_id_in")
task_postrun.connect(unbind_task_request_id, weak=False, dispatch_uid="request_id_done")


# long: one table of every periodic task and its schedule
@app.on_after_finalize.connect
def _schedule_periodic_tasks(sender: Celery, **kwargs: object) -> None:
    from django.conf import settings

    from approvals.outbox import KIND_AAP_WEBHOOK, KIND_EMAIL_DIGEST, KIND_NOTIFICATION
    from approvals.tasks import (
        expire_overdue_requests,
        expire_stale_presence,
        fire_due_escalations,
        mark_unreported_outcomes,
        requeue_due_outbox_rows,
        send_due_email_digests,
    )

    sender.add_periodic_task(
        float(settings.APPROVAL_EXPIRY_SWEEP_SECONDS),
        expire_overdue_requests.s(),
        name="expire overdue approval requests",
    )
    sender.add_periodic_task(
        float(settings.APPROVAL_PRESENCE_HEARTBEAT_SECONDS),
        expire_stale_presence.s(),
        name="expire stale reviewer presence",
    )
    sender.add_periodic_task(
        float(settings.ESCALATION_SWEEP_SECONDS),
        fire_due_escalations.s(),
        name="fire due escalation steps",
    )
    # Validities are minutes long: once a minute marks a silent approval soon enough.
    sender.add_periodic_task(
        60.0,
        mark_unreported_outcomes.s(),
        name="mark approvals with no outcome as not reported",
    )
    sender.add_periodic_task(
        float(settings.NOTIFICATION_SWEEP_SECONDS),
        requeue_due_outbox_rows.s(KIND_NOTIFICATION),
        name="re-enqueue undelivered notifications",
    )
    sender.add_periodic_task(
        float(settings.NOTIFICATION_DIGEST_SWEEP_SECONDS),
        send_due_email_digests.s(),
        name="send due email digests",
    )
    sender.add_periodic_task(
        float(settings.NOTIFICATION_SWEEP_SECONDS),
        requeue_due_outbox_rows.s(KIND_EMAIL_DIGEST),
        name="re-enqueue undelivered email digests",
    )
    sender.add_periodic_task(
        float(settings.AAP_WEBHOOK_SWEEP_SECONDS),
        requeue_due_outbox_rows.s(KIND_AAP_WEBHOOK),
        name="deliver due AAP webhook notifications",
    )
    if settings.RETENTION_DAYS > 0:
        # Decided requests past RETENTION_DAYS: archived, then removed (approvals/retention.py).
        sender.add_periodic_task(
            float(settings.RETENTION_SWEEP_SECONDS),
            sender.signature("approvals.archive_decided_requests"),
            name="archive decided requests past retention",
        )
    if settings.AUDIT_ARCHIVE_AFTER_DAYS > 0:
        # Audit records past AUDIT_ARCHIVE_AFTER_DAYS: archived, then pruned (approvals/audit).
        sender.add_periodic_task(
            float(settings.AUDIT_ARCHIVE_SWEEP_SECONDS),
            sender.signature("approvals.archive_old_audit_records"),
            name="archive and prune old audit records",
        )
