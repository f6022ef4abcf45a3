"""Expiry by a real Celery worker consuming from the configured broker."""

import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from approvals.models import Status
from approvals.tasks import expire_overdue_requests
from console.celery import app
from tests.factories import ApprovalRequestFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_beat_schedules_the_expiry_sweep(settings) -> None:
    app.loader.import_default_modules()
    schedule = app.conf.beat_schedule
    entry = schedule["expire overdue approval requests"]
    assert entry["task"] == "approvals.expire_overdue_requests"
    assert entry["schedule"] == float(settings.APPROVAL_EXPIRY_SWEEP_SECONDS)


def test_a_worker_expires_overdue_requests() -> None:
    overdue = ApprovalRequestFactory(deadline_at=timezone.now() - timedelta(seconds=1))
    current = ApprovalRequestFactory()
    with start_worker(app, perform_ping_check=False, pool="solo", shutdown_timeout=10):
        expire_overdue_requests.delay()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            overdue.refresh_from_db()
            if overdue.status != Status.PENDING:
                break
            time.sleep(0.1)
    assert overdue.status == Status.EXPIRED
    current.refresh_from_db()
    assert current.status == Status.PENDING
