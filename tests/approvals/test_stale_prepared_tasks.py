"""Background tasks right after a rolling deploy's migration changed a column under the
prepared lock their transactions take first (console/hot_statements.py): the first run does its
work, once, instead of failing and leaving it to the next run."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from approvals.audit import AuditAction
from approvals.escalations import escalations_fire_due
from approvals.models import (
    ApprovalRequest,
    AuditRecord,
    Decision,
    EscalationChain,
    EscalationFiring,
    EscalationStep,
    Status,
)
from approvals.tasks import expire_overdue_requests
from tests.factories import ApprovalRequestFactory, TeamFactory
from tests.schema_changes import APPROVAL_LOCK, columns_retyped

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
