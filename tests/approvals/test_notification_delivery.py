"""Delivery by a real Celery worker: retries, backoff, lost enqueues, duplicate tasks."""

import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import transaction
from django.utils import timezone

from approvals.models import Channel, Notification, NotificationAttempt, NotificationStatus
from approvals.notifications import notifications_create
from approvals.outbox import KIND_NOTIFICATION
from approvals.tasks import deliver_outbox_row, requeue_due_outbox_rows
from console.celery import app
from tests.factories import ApprovalRequestFactory, UserFactory
from tests.notify_servers import smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for(predicate, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _run_everything_queued(approval) -> None:
    """Wait until the worker has run every task queued so far.

    The one solo worker takes its queue in order, so once a delivery enqueued now has been sent,
    every task queued before it has run: waiting for that replaces guessing how long they take.
    """
    marker = UserFactory()
    with transaction.atomic():
        [row] = notifications_create(
            approval=approval, recipients=[marker], channels=[Channel.EMAIL], reason="marker"
        )
    assert _wait_for(lambda: Notification.objects.get(pk=row.pk).status == NotificationStatus.SENT)


def _mail_to(smtp_server, user) -> int:  # noqa: F811
    return sum(message["To"] == user.email for message in smtp_server.handler.messages)


def test_beat_schedules_escalations_and_the_requeue_sweep(settings) -> None:
    app.loader.import_default_modules()
    schedule = app.conf.beat_schedule
    assert schedule["fire due escalation steps"]["task"] == "approvals.fire_due_escalations"
    requeue = schedule["re-enqueue undelivered notifications"]
    assert requeue["task"] == "outbox.requeue_due"


def test_a_failing_receiver_still_gets_exactly_one_email(settings, smtp_server) -> None:  # noqa: F811
    settings.NOTIFICATION_BACKOFF_BASE_SECONDS = 1
    smtp_server.handler.fail_first = 2
    alice = UserFactory(username="alice")
    approval = ApprovalRequestFactory()

    with start_worker(app, perform_ping_check=False, pool="solo", shutdown_timeout=10):
        with transaction.atomic():
            [row] = notifications_create(
                approval=approval, recipients=[alice], channels=[Channel.EMAIL], reason="test"
            )
        # Enqueued after commit; the receiver refuses twice, backoff 1 s then 2 s.
        assert _wait_for(
            lambda: Notification.objects.get(pk=row.pk).status == NotificationStatus.SENT
        )
        # A duplicate task (a redelivered message, a second enqueue) finds nothing to send.
        deliver_outbox_row.delay(KIND_NOTIFICATION, row.pk)
        deliver_outbox_row.delay(KIND_NOTIFICATION, row.pk)
        _run_everything_queued(approval)

    assert smtp_server.handler.refused == 2
    assert _mail_to(smtp_server, alice) == 1
    outcomes = list(
        NotificationAttempt.objects.filter(notification=row).values_list("outcome", flat=True)
    )
    assert outcomes == ["retry", "retry", "sent"]


def test_beat_recovers_a_lost_enqueue(settings, smtp_server) -> None:  # noqa: F811
    settings.NOTIFICATION_REQUEUE_AFTER_SECONDS = 0
    alice = UserFactory(username="alice")
    approval = ApprovalRequestFactory()
    # The row committed, but its enqueue never reached the broker (it was down).
    now = timezone.now()
    row = Notification.objects.create(
        recipient=alice,
        channel=Channel.EMAIL,
        approval=approval,
        reason="test",
        dedupe_key="lost",
        created_at=now,
        next_attempt_at=now - timedelta(seconds=1),
    )

    with start_worker(app, perform_ping_check=False, pool="solo", shutdown_timeout=10):
        requeue_due_outbox_rows.delay(KIND_NOTIFICATION)
        assert _wait_for(
            lambda: Notification.objects.get(pk=row.pk).status == NotificationStatus.SENT
        )
        requeue_due_outbox_rows.delay(KIND_NOTIFICATION)
        _run_everything_queued(approval)

    assert _mail_to(smtp_server, alice) == 1
