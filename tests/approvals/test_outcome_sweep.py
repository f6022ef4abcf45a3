"""Approved, never executed: an approval whose validity passed with no outcome is marked
`not_reported` by the console (source system), never assumed to have worked."""

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import Decision, RequestOutcome
from approvals.services import OutcomeReport, approval_outcome_report, approval_request_approve
from approvals.tasks import mark_unreported_outcomes
from tests.factories import ApprovalRequestFactory, UserFactory

pytestmark = pytest.mark.django_db


def _approved(*, expired: bool):
    approval = approval_request_approve(
        approval=ApprovalRequestFactory(), reviewer=UserFactory(is_staff=True)
    )
    moment = timezone.now() + (timedelta(minutes=-1) if expired else timedelta(minutes=10))
    Decision.objects.filter(approval=approval).update(expires_at=moment)
    return approval


def test_it_marks_an_expired_approval_without_outcome_as_not_reported() -> None:
    silent = _approved(expired=True)
    still_valid = _approved(expired=False)
    assert mark_unreported_outcomes() == 1
    outcome = RequestOutcome.objects.get()
    assert outcome.approval_id == silent.pk
    assert (outcome.status, outcome.source) == ("not_reported", "system")
    assert not RequestOutcome.objects.filter(approval=still_valid).exists()
    assert mark_unreported_outcomes() == 0


def test_it_leaves_a_reported_outcome_alone() -> None:
    reported = _approved(expired=True)
    approval_outcome_report(approval=reported, report=OutcomeReport(status="succeeded"))
    assert mark_unreported_outcomes() == 0
    assert RequestOutcome.objects.get().status == "succeeded"


def test_it_lets_a_late_report_replace_the_consoles_mark() -> None:
    late = _approved(expired=True)
    mark_unreported_outcomes()
    outcome, written = approval_outcome_report(
        approval=late, report=OutcomeReport(status="failed", error="timeout")
    )
    assert written and (outcome.status, outcome.source) == ("failed", "agent")
    assert RequestOutcome.objects.count() == 1
