"""Celery application. The broker comes from settings: filesystem:// embedded, Redis otherwise."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _schedule_periodic_tasks(sender: Celery, **kwargs: object) -> None:
    from django.conf import settings

    from approvals.tasks import expire_overdue_requests

    sender.add_periodic_task(
        float(settings.APPROVAL_EXPIRY_SWEEP_SECONDS),
        expire_overdue_requests.s(),
        name="expire overdue approval requests",
    )
    sender.add_periodic_task(
        float(settings.AAP_WEBHOOK_SWEEP_SECONDS),
        sender.signature("aap.deliver_due_notifications"),
        name="deliver due AAP webhook notifications",
    )
