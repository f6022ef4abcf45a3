"""What a reviewer's decision waits on before its commit, which is when the waiting agent hears."""

import pytest
from django.db import connection

from approvals.models import Status
from approvals.services import approval_request_approve, approval_request_create
from tests.factories import AgentFactory, UserFactory, build_submission
from tests.wire import round_trips


@pytest.mark.skipif(connection.vendor != "postgresql", reason="round trips of PostgreSQL's path")
@pytest.mark.django_db(transaction=True)  # the decision's own BEGIN and COMMIT, not savepoints
def test_a_decision_waits_on_four_round_trips_to_its_commit() -> None:
    agent, reviewer = AgentFactory(), UserFactory(is_staff=True)
    submission = build_submission()
    warm, _ = approval_request_create(agent=agent, idempotency_key="w", submission=submission)
    approval_request_approve(approval=warm, reviewer=reviewer)  # statements prepared
    approval, _ = approval_request_create(
        agent=agent, idempotency_key="k", submission=build_submission()
    )
    with round_trips() as trips:
        decided = approval_request_approve(approval=approval, reviewer=reviewer)
    # BEGIN with the request's lock; the Slack messages to update; the decision's rows, the
    # status update and the audit head's lock; the record with the head's move and the COMMIT.
    # One more before (the record and the head's move had their own), and two before that
    # (psycopg's BEGIN alone, and the head's lock after the rows).
    committed = next(n for n, trip in enumerate(trips) if '"COMMIT"' in trip)
    assert "BEGIN" in trips[0] and committed + 1 == 4, "\n".join(trips)
    assert decided.status == Status.APPROVED
