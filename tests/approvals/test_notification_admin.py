"""Operators find permanent failures in the admin and can send them again."""

import pytest
from django.db import transaction

from approvals.models import Channel, Notification, NotificationStatus
from approvals.notifications import notifications_create
from tests.factories import ApprovalRequestFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_failed_notifications_are_listed_and_can_be_retried(client) -> None:
    admin = UserFactory(username="ops", is_staff=True, is_superuser=True)
    alice = UserFactory(username="alice")
    with transaction.atomic():
        [row] = notifications_create(
            approval=ApprovalRequestFactory(),
            recipients=[alice],
            channels=[Channel.EMAIL],
            reason="test",
        )
    Notification.objects.filter(pk=row.pk).update(
        status=NotificationStatus.FAILED, attempts=8, last_error="Slack refused: invalid_auth"
    )
    client.force_login(admin)

    page = client.get("/admin/approvals/notification/", {"status__exact": "failed"})
    assert page.status_code == 200
    assert "Slack refused: invalid_auth" in page.content.decode()

    response = client.post(
        "/admin/approvals/notification/",
        {"action": "retry_failed", "_selected_action": [row.pk]},
    )
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.status, row.attempts) == (NotificationStatus.PENDING, 0)
