"""The outbox's own guarantees: same transaction, dedupe, claim before send, give up in the end."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from approvals.models import (
    Channel,
    Notification,
    NotificationPreference,
    NotificationStatus,
)
from approvals.notifications import (
    notification_backoff_seconds,
    notifications_create,
    notifications_on_submitted,
)
from approvals.outbox import KIND_NOTIFICATION, outbox_deliver, outbox_due
from approvals.services import approval_request_approve
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory
from tests.notify_servers import smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db


def test_rows_roll_back_with_the_event_that_caused_them() -> None:
    alice = UserFactory(username="alice")
    approval = ApprovalRequestFactory()

    with pytest.raises(RuntimeError), transaction.atomic():
        notifications_create(
            approval=approval, recipients=[alice], channels=[Channel.EMAIL], reason="test"
        )
        raise RuntimeError("the event failed")

    assert not Notification.objects.exists()


def test_writing_the_same_notification_twice_is_a_no_op() -> None:
    alice = UserFactory(username="alice")
    approval = ApprovalRequestFactory()
    for _ in range(2):
        with transaction.atomic():
            notifications_create(
                approval=approval,
                recipients=[alice, alice],
                channels=[Channel.EMAIL, Channel.CONSOLE],
                reason="test",
            )
    assert Notification.objects.count() == 2


def test_a_routed_request_notifies_its_team_on_the_channels_each_member_chose() -> None:
    alice = UserFactory(username="alice")
    NotificationPreference.objects.create(user=alice, email_enabled=False)
    bob = UserFactory(username="bob", email="")
    outsider = UserFactory(username="otto")
    approval = ApprovalRequestFactory(team=TeamFactory(members=[alice, bob]))

    with transaction.atomic():
        notifications_on_submitted(approval=approval)

    rows = Notification.objects.order_by("recipient__username", "channel")
    # No Slack: no bot token configured. No mail for alice (off) or bob (no address).
    assert list(rows.values_list("recipient__username", "channel", "status")) == [
        ("alice", Channel.CONSOLE, NotificationStatus.SENT),
        ("bob", Channel.CONSOLE, NotificationStatus.SENT),
    ]
    assert not Notification.objects.filter(recipient=outsider).exists()


def test_a_claimed_row_is_not_sent_by_a_second_worker(smtp_server) -> None:  # noqa: F811
    alice = UserFactory(username="alice")
    approval = ApprovalRequestFactory()
    with transaction.atomic():
        [row] = notifications_create(
            approval=approval, recipients=[alice], channels=[Channel.EMAIL], reason="test"
        )
    now = timezone.now()
    # Worker one claimed it and is sending; worker two gets the same task.
    Notification.objects.filter(pk=row.pk).update(
        status=NotificationStatus.SENDING, lease_until=now + timedelta(seconds=120), attempts=1
    )

    assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk, now=now) is None
    assert smtp_server.handler.messages == []

    # Worker one died: once its lease runs out the row is claimed again and sent.
    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk, now=now + timedelta(seconds=121))
    assert len(smtp_server.handler.messages) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (NotificationStatus.SENT, 2)


def test_it_gives_up_after_the_last_attempt_and_says_why(settings) -> None:
    from tests.notify_servers import free_port

    settings.NOTIFICATION_MAX_ATTEMPTS = 2
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": free_port(), "timeout": 2},
        }
    }
    alice = UserFactory(username="alice")
    approval = ApprovalRequestFactory()
    with transaction.atomic():
        [row] = notifications_create(
            approval=approval, recipients=[alice], channels=[Channel.EMAIL], reason="test"
        )
    now = timezone.now()

    assert outbox_deliver(
        kind=KIND_NOTIFICATION, row_id=row.pk, now=now
    ) == notification_backoff_seconds(1)
    assert (
        outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk, now=now + timedelta(hours=1)) is None
    )

    row.refresh_from_db()
    assert row.status == NotificationStatus.FAILED
    assert row.last_error.startswith("gave up after 2 attempts")


def test_the_backoff_doubles_up_to_its_cap(settings) -> None:
    settings.NOTIFICATION_BACKOFF_BASE_SECONDS = 10
    settings.NOTIFICATION_BACKOFF_MAX_SECONDS = 60
    assert [notification_backoff_seconds(n) for n in range(1, 6)] == [10, 20, 40, 60, 60]


def test_a_request_decided_before_delivery_sends_no_please_decide(smtp_server) -> None:  # noqa: F811
    alice = UserFactory(username="alice")
    approval = ApprovalRequestFactory()
    with transaction.atomic():
        [row] = notifications_create(
            approval=approval, recipients=[alice], channels=[Channel.EMAIL], reason="test"
        )
    approval_request_approve(approval=approval, reviewer=alice)

    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk)

    assert smtp_server.handler.messages == []
    row.refresh_from_db()
    assert row.status == NotificationStatus.SKIPPED


def test_only_overdue_rows_are_requeued(settings) -> None:
    settings.NOTIFICATION_REQUEUE_AFTER_SECONDS = 30
    alice = UserFactory(username="alice")
    approval = ApprovalRequestFactory()
    with transaction.atomic():
        [row] = notifications_create(
            approval=approval, recipients=[alice], channels=[Channel.EMAIL], reason="test"
        )
    now = timezone.now()

    assert outbox_due(kind=KIND_NOTIFICATION, now=now) == []
    assert outbox_due(kind=KIND_NOTIFICATION, now=now + timedelta(seconds=31)) == [row.pk]
