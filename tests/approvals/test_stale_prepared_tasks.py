"""Background tasks right after a rolling deploy's migration changed a column under a prepared
statement their transactions run (console/hot_statements.py): the request's lock they take first,
or the audit chain head's lock their audit record takes. The first run does its work, once,
instead of failing and leaving it to the next run (or, for a delivery, sending it again)."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from approvals.audit import AuditAction
from approvals.escalations import escalations_fire_due
from approvals.models import (
    ApprovalRequest,
    AuditRecord,
    Channel,
    Decision,
    EscalationChain,
    EscalationFiring,
    EscalationStep,
    Notification,
    NotificationStatus,
    RequestOutcome,
    Status,
)
from approvals.notifications import notifications_create
from approvals.outbox import KIND_NOTIFICATION, outbox_deliver
from approvals.services import approval_request_approve
from approvals.tasks import expire_overdue_requests, mark_unreported_outcomes
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory
from tests.notify_servers import smtp_server  # noqa: F401
from tests.schema_changes import APPROVAL_LOCK, AUDIT_HEAD, columns_retyped

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="prepared statements of PostgreSQL"
    ),
    pytest.mark.django_db(transaction=True),
]


def _records(approval: ApprovalRequest, action: str) -> int:
    return AuditRecord.objects.filter(object_id=str(approval.code), action=action).count()


def _overdue() -> ApprovalRequest:
    return ApprovalRequestFactory(deadline_at=timezone.now() - timedelta(seconds=1))


def test_expiry_expires_at_the_first_run_after_a_column_type_change() -> None:
    assert expire_overdue_requests() == 0
    _overdue()
    assert expire_overdue_requests() == 1  # the connection prepares the expiry's statements
    approval = _overdue()
    with columns_retyped(APPROVAL_LOCK):
        assert expire_overdue_requests() == 1

        approval.refresh_from_db()
        assert approval.status == Status.EXPIRED
        assert Decision.objects.filter(approval=approval).count() == 1
        assert _records(approval, AuditAction.REQUEST_EXPIRED) == 1


def test_escalation_fires_at_the_first_run_after_a_column_type_change() -> None:
    chain = EscalationChain.objects.create(name="payments")
    EscalationStep.objects.create(
        chain=chain,
        position=1,
        after_minutes=5,
        notify_team=TeamFactory(name="first-line"),
        notify_slack=False,
    )
    later = timezone.now() + timedelta(minutes=6)
    ApprovalRequestFactory(escalation_chain=chain)
    assert escalations_fire_due(now=later) == 1  # the connection prepares the firing's statements
    approval = ApprovalRequestFactory(escalation_chain=chain)
    with columns_retyped(APPROVAL_LOCK):
        assert escalations_fire_due(now=later) == 1

        assert EscalationFiring.objects.filter(approval=approval).count() == 1
        assert _records(approval, AuditAction.ESCALATION_STEP_FIRED) == 1


# --- Under the audit head's lock: what records a delivery, the unreported outcomes' sweep ------


def _email(recipient) -> Notification:
    with transaction.atomic():
        [row] = notifications_create(
            approval=ApprovalRequestFactory(),
            recipients=[recipient],
            channels=[Channel.EMAIL],
            reason="test",
        )
    return row


def _notification_records(row: Notification, action: str) -> int:
    return AuditRecord.objects.filter(
        object_type="approvals.notification", object_id=str(row.pk), action=action
    ).count()


@pytest.fixture
def alice(smtp_server):  # noqa: F811
    """A reviewer with an address, whose first email this connection delivered: it prepared the
    head's lock, which recording a delivery (or giving it up) takes."""
    alice = UserFactory(username="alice")
    assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=_email(alice).pk) is None
    return alice


def _delivered_after_a_column_type_change(row: Notification) -> Notification:
    with columns_retyped(AUDIT_HEAD):
        assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk) is None
    row.refresh_from_db()
    return row


def test_a_delivery_is_recorded_at_its_first_attempt_after_a_column_type_change(
    alice,
    smtp_server,  # noqa: F811
) -> None:
    row = _delivered_after_a_column_type_change(_email(alice))

    assert (row.status, row.attempts) == (NotificationStatus.SENT, 1)
    # Sent once (the first message was the fixture's): only what records it ran again.
    assert len(smtp_server.handler.messages) == 2
    assert list(row.attempt_rows.values_list("outcome", flat=True)) == ["sent"]
    assert _notification_records(row, AuditAction.NOTIFICATION_SENT) == 1


def test_a_delivery_is_given_up_at_its_first_attempt_after_a_column_type_change(alice) -> None:
    row = _email(alice)
    # Nowhere to send it any more: the mail notifier's permanent error, and the row is given up.
    type(alice).objects.filter(pk=alice.pk).update(email="")

    row = _delivered_after_a_column_type_change(row)

    assert (row.status, row.attempts) == (NotificationStatus.FAILED, 1)
    assert row.last_error == "The reviewer has no email address."
    assert list(row.attempt_rows.values_list("outcome", flat=True)) == ["failed"]
    assert _notification_records(row, AuditAction.NOTIFICATION_FAILED) == 1


def _approved_and_expired() -> ApprovalRequest:
    approval = approval_request_approve(
        approval=ApprovalRequestFactory(), reviewer=UserFactory(is_staff=True)
    )
    Decision.objects.filter(approval=approval).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    return approval


def test_an_unreported_outcome_is_marked_at_the_first_run_after_a_column_type_change() -> None:
    # The approval's own audit record prepares the head's lock on this connection.
    silent = _approved_and_expired()
    with columns_retyped(AUDIT_HEAD):
        assert mark_unreported_outcomes() == 1

        outcome = RequestOutcome.objects.get(approval=silent)
        assert (outcome.status, outcome.source) == ("not_reported", "system")
        assert _records(silent, AuditAction.OUTCOME_REPORTED) == 1
