"""One outcome per request, whatever races: two different reports at once leave one outcome
and one clean 409; the console's not_reported mark racing a report never wins over it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.exceptions import OutcomeRefused
from approvals.models import ApprovalRequest, AuditRecord, Decision, RequestOutcome
from approvals.services import (
    OutcomeReport,
    approval_outcome_report,
    approval_outcomes_mark_not_reported,
    approval_request_approve,
)
from tests.factories import ApprovalRequestFactory, UserFactory
from tests.races import raised, run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


def _approved() -> ApprovalRequest:
    return approval_request_approve(
        approval=ApprovalRequestFactory(), reviewer=UserFactory(is_staff=True)
    )


def _report(pk: int, status: str):
    def report():
        return approval_outcome_report(
            approval=ApprovalRequest.objects.get(pk=pk), report=OutcomeReport(status=status)
        )

    return report


def test_two_different_reports_at_once_leave_one_outcome() -> None:
    approval = _approved()
    results = run_at_once([_report(approval.pk, "succeeded"), _report(approval.pk, "failed")])
    assert raised(results, OutcomeRefused) == []
    refused = [r for r in results if isinstance(r, OutcomeRefused)]
    assert len(refused) == 1 and refused[0].code == "outcome_already_reported"
    assert RequestOutcome.objects.filter(approval=approval).count() == 1
    assert AuditRecord.objects.filter(action="request.outcome_reported").count() == 1


def test_a_report_racing_the_not_reported_mark_is_the_outcome() -> None:
    approval = _approved()
    Decision.objects.filter(approval=approval).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    results = run_at_once([_report(approval.pk, "failed"), approval_outcomes_mark_not_reported])
    assert raised(results) == []
    outcome = RequestOutcome.objects.get(approval=approval)
    assert (outcome.status, outcome.source) == ("failed", "agent")
