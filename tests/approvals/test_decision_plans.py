"""A decision finds its request by primary key, whatever the table's statistics say.

PostgreSQL plans each statement from statistics. With stale ones (autovacuum off or behind, as
right after a burst of new requests), a compare-and-set written as one UPDATE with
`status = 'pending' AND team_id IS NULL` took the pending-queue index and walked every pending
request: 40 ms per decision at 150,000 pending, found by `make bench`. Every statement a
decision or an escalation runs against the requests table must look the row up by its key.
"""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import ApprovalRequest, Impact, Status
from approvals.reviews import check_approval_request_escalate
from approvals.services import approval_request_approve, approval_request_expire_if_overdue
from console.row_inserts import rows_insert
from tests.factories import AgentFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

TABLE = ApprovalRequest._meta.db_table


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("query plans are PostgreSQL's")


def _many_pending_without_a_team(count: int) -> None:
    agent, deadline = AgentFactory(), timezone.now() + timedelta(hours=1)
    rows_insert(
        [
            ApprovalRequest(
                agent=agent,
                idempotency_key=f"bulk-{number}",
                fingerprint="f",
                tool="t",
                arguments={},
                impact=Impact.LOW,
                timeout="1h",
                timeout_seconds=3600,
                deadline_at=deadline,
                status=Status.PENDING,
            )
            for number in range(count)
        ]
    )


def _plans_touching_requests(queries: list[dict[str, str]]) -> list[str]:
    plans = []
    # A query may carry several statements (a decision's update rides with its rows' insert).
    statements = [
        statement
        for query in queries
        for statement in re.split(r";\s+(?=SELECT|UPDATE|INSERT|WITH)", query["sql"])
    ]
    with connection.cursor() as cursor:
        for sql in statements:
            if f'"{TABLE}"' not in sql or not re.match(r"(SELECT|UPDATE)", sql):
                continue
            cursor.execute(f"EXPLAIN {sql}")
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


def _assert_by_key(plans: list[str]) -> None:
    assert plans
    for plan in plans:
        scans = re.findall(r"Scan(?: Backward)? using (\w+) on " + TABLE, plan)
        scans += re.findall(r"Seq Scan on " + TABLE, plan)
        assert scans, plan
        assert set(scans) <= {f"{TABLE}_pkey"}, plan


def test_a_decision_looks_its_request_up_by_key() -> None:
    _many_pending_without_a_team(3000)  # and no ANALYZE: statistics as stale as they get
    approval = ApprovalRequest.objects.filter(status=Status.PENDING).order_by("pk").first()
    assert approval is not None
    reviewer = UserFactory(is_staff=True)
    with CaptureQueriesContext(connection) as captured:
        approval_request_approve(approval=approval, reviewer=reviewer)
    # (The pushes after commit are not run here: the test's transaction never commits.)
    _assert_by_key(_plans_touching_requests(captured.captured_queries))


def test_an_escalation_and_an_expiry_look_their_request_up_by_key() -> None:
    _many_pending_without_a_team(3000)
    approval = ApprovalRequest.objects.filter(status=Status.PENDING).order_by("pk").first()
    assert approval is not None
    reviewer, team = UserFactory(is_staff=True), TeamFactory()
    with CaptureQueriesContext(connection) as captured:
        check_approval_request_escalate(approval=approval, reviewer=reviewer, team=team, note="n")
    _assert_by_key(_plans_touching_requests(captured.captured_queries))
    ApprovalRequest.objects.filter(pk=approval.pk).update(deadline_at=timezone.now())
    approval.refresh_from_db()
    with CaptureQueriesContext(connection) as captured:
        approval_request_expire_if_overdue(approval=approval)
    _assert_by_key(_plans_touching_requests(captured.captured_queries))
