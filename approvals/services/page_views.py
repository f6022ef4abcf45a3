"""Telemetry of the decision page: when a reviewer first looked at a request."""

from django.contrib.auth.models import User
from django.utils import timezone

from approvals.models import (
    ApprovalRequest,
    DecisionPageView,
    Status,
)


def decision_page_view_record(*, approval: ApprovalRequest, reviewer: User) -> None:
    """Remember when a reviewer first opened a pending request: the start of their time on it,
    which the rubber-stamping signal compares with when they decided."""
    if approval.status != Status.PENDING or not reviewer.is_authenticated:
        return
    DecisionPageView.objects.get_or_create(
        approval=approval, reviewer_id=reviewer.pk, defaults={"first_viewed_at": timezone.now()}
    )
