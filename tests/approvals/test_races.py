"""Approve, deny, cancel and expire racing on one request from several threads.

On PostgreSQL (CI) the threads really run concurrently on separate connections; the
compare-and-set must leave exactly one outcome, one Decision and one terminal event.
"""

from datetime import timedelta
from functools import partial

import pytest
from django.utils import timezone

from approvals.exceptions import TransitionConflict
from approvals.models import ApprovalEvent, ApprovalRequest, Decision, Status
from approvals.services import (
    approval_request_approve,
    approval_request_cancel,
    approval_request_deny,
    approval_request_expire_if_overdue,
)
from tests.factories import ApprovalRequestFactory, UserFactory
from tests.races import raised, run_at_once

ROUNDS = 12
THREADS_PER_ACTION = 2


def _race(actions: list) -> tuple[list[str], list[BaseException]]:
    """Start every action at the same instant; a conflict is an outcome, anything else a crash."""
    results = run_at_once(actions, timeout=30)
    outcomes = [
        f"conflict:{result.current_status}"
        if isinstance(result, TransitionConflict)
        else result.status
        for result in results
        if not isinstance(result, BaseException) or isinstance(result, TransitionConflict)
    ]
    return outcomes, raised(results, TransitionConflict)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("deadline_offset_ms", [5_000, 30])
def test_it_records_exactly_one_outcome_whatever_races(deadline_offset_ms: int) -> None:
    approver, denier = UserFactory(), UserFactory()
    for _ in range(ROUNDS):
        approval = ApprovalRequestFactory(
            deadline_at=timezone.now() + timedelta(milliseconds=deadline_offset_ms)
        )
        actions = [
            partial(approval_request_approve, approval=approval, reviewer=approver),
            partial(approval_request_deny, approval=approval, reviewer=denier, reason="No."),
            partial(approval_request_cancel, approval=approval, agent=approval.agent),
            partial(approval_request_expire_if_overdue, approval=approval),
        ] * THREADS_PER_ACTION
        outcomes, errors = _race(actions)

        assert not errors, errors
        final = ApprovalRequest.objects.get(pk=approval.pk)
        if final.status == Status.PENDING:
            pytest.fail(f"no outcome recorded: {outcomes}")
        assert Decision.objects.filter(approval=approval).count() == 1
        assert Decision.objects.get(approval=approval).status == final.status
        terminal_events = ApprovalEvent.objects.filter(
            approval=approval, from_status=Status.PENDING
        )
        assert terminal_events.count() == 1
        assert terminal_events.get().to_status == final.status
        # Every racer that did not win saw the winner's outcome, never its own.
        for outcome in outcomes:
            assert outcome in {final.status, f"conflict:{final.status}", Status.PENDING}
