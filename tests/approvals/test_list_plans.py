"""The history's counts and the queue's rows are read through their indexes, on PostgreSQL.

The history counts cover the latest decisions (HISTORY_COUNT_WINDOW). Grouped in SQL as
`id IN (the latest ids)`, PostgreSQL looked each of them up by primary key, or scanned the
whole table: 60 ms at 1,000,000 decided requests, in `make bench`. They are read in the order
of approval_decided_order instead, from that index alone (the rows it points at lie together).
"""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals import selectors
from approvals.models import ApprovalRequest, Impact, Status
from approvals.selectors import QueueFilters
from console.row_inserts import rows_insert
from tests.factories import AgentFactory, UserFactory

pytestmark = pytest.mark.django_db

TABLE = ApprovalRequest._meta.db_table


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("query plans are PostgreSQL's")


def _requests(count: int, *, status: str) -> None:
    agent, now = AgentFactory(), timezone.now()
    rows_insert(
        [
            ApprovalRequest(
                agent=agent,
                idempotency_key=f"{status}-{number}",
                fingerprint="f",
                tool=f"tool-{number % 7}",
                arguments={},
                impact=Impact.values[number % 4],
                confidence=(number % 10) / 10,
                timeout="1h",
                timeout_seconds=3600,
                deadline_at=now + timedelta(hours=1, seconds=number),
                status=status,
                decided_at=None if status == Status.PENDING else now - timedelta(seconds=number),
            )
            for number in range(count)
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")


def _scans_of_requests(sql: str, params: tuple) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    scans = re.findall(r"Scan(?: Backward)? using (\w+) on " + TABLE, plan)
    return scans + ["sequential"] * len(re.findall(r"Seq Scan on " + TABLE, plan))


def test_the_history_counts_read_the_latest_decisions_from_their_index(monkeypatch) -> None:
    monkeypatch.setattr(selectors.queue, "HISTORY_COUNT_WINDOW", 100)
    _requests(5000, status=Status.APPROVED)
    staff = UserFactory(is_staff=True)
    with CaptureQueriesContext(connection) as captured:
        counts = selectors.approvals_facet_counts(user=staff, filters=QueueFilters(), pending=False)
    assert counts.total == 100
    grouped = [
        query["sql"] for query in captured.captured_queries if f'"{TABLE}"."impact"' in query["sql"]
    ]
    assert len(grouped) == 1
    # The captured SQL has its values inlined; EXPLAIN it as it ran.
    assert set(_scans_of_requests(grouped[0], ())) == {"approval_decided_order"}


def test_the_queue_rows_are_read_in_index_order() -> None:
    _requests(5000, status=Status.PENDING)
    staff = UserFactory(is_staff=True)
    with CaptureQueriesContext(connection) as captured:
        page = selectors.approvals_queue_page(user=staff, filters=QueueFilters(), limit=50)
    assert len(page.rows) == 50
    plans = {
        "urgent" if '"deadline_at" <=' in query["sql"] else "later": _scans_of_requests(
            query["sql"], ()
        )
        for query in captured.captured_queries
        if query["sql"].startswith("SELECT") and '"queue_order" ASC' in query["sql"]
    }
    # None is urgent here: that query finds so by the deadline index, or in the queue's order.
    assert set(plans["urgent"]) <= {"approval_status_deadline", "approval_queue_order"}
    assert plans["later"] == ["approval_queue_order"]
