"""The audit records about some objects are found through an index, on PostgreSQL.

Archiving decided requests (approvals.retention) and a run's export (approvals.run_export) read
the records about a set of request and run codes, by id alone: they know no object type. The
object index was (object_type, object_id), which such a lookup cannot use (PostgreSQL 15 has no
skip scan): each batch and each export read the whole audit trail, the largest table there is.
"""

import json

import pytest
from django.db import connection
from django.utils import timezone

from approvals.audit.export import audit_records_about
from approvals.models import AuditRecord
from console.row_inserts import rows_insert

pytestmark = pytest.mark.django_db

TABLE = AuditRecord._meta.db_table
OBJECT_TYPES = ("approvals.approvalrequest", "agents.run", "auth.user", "approvals.policyrule")


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("query plans are PostgreSQL's")


def _records(count: int) -> None:
    now = timezone.now()
    rows_insert(
        [
            AuditRecord(
                sequence=number + 1,
                created_at=now,
                action="request.approved",
                actor_type="reviewer",
                actor_id=str(number % 50),
                object_type=OBJECT_TYPES[number % len(OBJECT_TYPES)],
                object_id=f"object-{number // 4}",
                object_label="issue_refund",
                request_id=f"request-{number}",
                before={"status": "pending"},
                after={"status": "approved", "note": "looks right " * 5},
                prev_hash=f"{number:064x}",
                hash=f"{number + 1:064x}",
            )
            for number in range(count)
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")


def _nodes(plan: dict) -> list[dict]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


def _leading_column(index: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_index x JOIN pg_attribute a"
            " ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]"
            " WHERE x.indexrelid = to_regclass(%s)",
            [index],
        )
        row = cursor.fetchone()
    assert row is not None, index
    return str(row[0])


def _audit_reads(plan_json: str) -> list[str]:
    """How the plan reads the audit records: "sequential", or the leading column of each index
    it scans for them."""
    audit_indexes = {
        name
        for name, info in _constraints().items()
        if info["index"] or info["unique"] or info["primary_key"]
    }
    reads = []
    for node in _nodes(json.loads(plan_json)[0]["Plan"]):
        if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == TABLE:
            reads.append("sequential")
        elif node.get("Index Name") in audit_indexes:
            reads.append(_leading_column(node["Index Name"]))
    return reads


def _constraints() -> dict:
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, TABLE)


def test_the_records_about_some_objects_are_read_through_an_index_led_by_their_id() -> None:
    _records(20_000)
    codes = [f"object-{number}" for number in (7, 1_000, 2_500, 4_999)]
    about = audit_records_about(codes)
    assert about.count() == 16
    # As archiving reads them, and as a run export does (up to the anchor it signs).
    for records in (about, about.filter(sequence__lte=19_000)):
        assert set(_audit_reads(records.explain(format="json"))) == {"object_id"}
