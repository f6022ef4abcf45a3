"""The tables every gated call writes carry no index another one already does the work of.

Each index is one more insertion, inside the gate's transaction, for every row written: an
approved-at-once call writes its request, 3 audit records, 2 events, a policy evaluation and a
decision (and a held one notifications). An index whose columns lead another index with the same
predicate serves nothing the longer one does not; Django's varchar_pattern_ops twin of a
CharField with db_index or unique serves only LIKE 'prefix%', which nothing here runs. Migration
0028 dropped those; this keeps new ones from coming back (read from the catalog, so a field's
db_index counts as much as a Meta index).
"""

import pytest
from django.db import connection, models

from approvals.models import (
    ApprovalEvent,
    ApprovalRequest,
    AuditRecord,
    Decision,
    Notification,
    PolicyEvaluation,
)

pytestmark = pytest.mark.django_db

HOT_WRITE_MODELS = (
    ApprovalRequest,
    AuditRecord,
    ApprovalEvent,
    PolicyEvaluation,
    Decision,
    Notification,
)
HOT_WRITE_TABLES = [model._meta.db_table for model in HOT_WRITE_MODELS]

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the index catalog read here is PostgreSQL's"
)


@pytest.mark.parametrize("model", HOT_WRITE_MODELS, ids=lambda model: model.__name__)
def test_the_database_has_the_indexes_and_constraints_the_model_names(model) -> None:
    # Migration 0028 renamed indexes in place (SQLite: built them again under the new name).
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    for index in model._meta.indexes:
        assert index.name in found
    for constraint in model._meta.constraints:
        if not isinstance(constraint, models.UniqueConstraint):
            continue
        if connection.vendor == "postgresql":
            assert found[constraint.name]["unique"]
        else:
            # SQLite keeps a table's inline UNIQUE under its own name, and drops it by
            # rebuilding the table, whatever the name.
            columns = [model._meta.get_field(name).column for name in constraint.fields]
            assert any(info["unique"] and info["columns"] == columns for info in found.values())


def _indexes() -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.relname, i.relname, x.indisunique, x.indnkeyatts, x.indkey::int2[],
                   x.indclass::oid[], x.indexprs IS NOT NULL,
                   pg_get_expr(x.indpred, x.indrelid), am.amname, pg_get_indexdef(x.indexrelid)
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_am am ON am.oid = i.relam
            WHERE t.relname = ANY(%s)
            """,
            [HOT_WRITE_TABLES],
        )
        rows = cursor.fetchall()
    return [
        {
            "table": table,
            "name": name,
            "unique": unique,
            # Key columns only (INCLUDE columns serve no lookup), each with its operator class.
            "keys": list(zip(columns[:key_count], classes[:key_count], strict=True)),
            "expressions": expressions,
            "predicate": predicate,
            "method": method,
            "definition": definition,
        }
        for (
            table,
            name,
            unique,
            key_count,
            columns,
            classes,
            expressions,
            predicate,
            method,
            definition,
        ) in rows
    ]


def _covers(longer: dict, shorter: dict) -> bool:
    """Whether `longer` serves every lookup `shorter` does: same table, method and predicate,
    and `shorter`'s columns (with their operator classes) lead it. A unique index is never
    redundant: it enforces something."""
    return (
        longer is not shorter
        and not shorter["unique"]
        and not (longer["expressions"] or shorter["expressions"])
        and (longer["table"], longer["method"], longer["predicate"])
        == (shorter["table"], shorter["method"], shorter["predicate"])
        and longer["keys"][: len(shorter["keys"])] == shorter["keys"]
    )


@postgres_only
def test_it_reads_the_index_catalog_of_every_hot_table() -> None:
    # Each has at least its primary key: a table name the query misspelt would find nothing.
    assert {index["table"] for index in _indexes()} == set(HOT_WRITE_TABLES)


@postgres_only
def test_it_keeps_no_index_that_leads_another_on_a_hot_table() -> None:
    indexes = _indexes()
    redundant = [
        f"{shorter['definition']}  (led by it: {longer['name']})"
        for shorter in indexes
        for longer in indexes
        if _covers(longer, shorter)
    ]
    assert redundant == []


@postgres_only
def test_it_keeps_no_like_only_index_on_a_hot_table() -> None:
    like_only = [
        index["definition"] for index in _indexes() if "_pattern_ops" in index["definition"]
    ]
    assert like_only == []


def test_the_audit_trail_keeps_only_the_indexes_its_readers_use() -> None:
    """Three records per approved call: an index there is three insertions per call. Kept: the
    chain's order and uniqueness (sequence, hash), retention and the export's time range
    (created_at), the filter by action, and lookups by object (a run export, archiving). Nothing
    reads by HTTP request id or by the actor's type (migration 0030 dropped those)."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, AuditRecord._meta.db_table)
    indexed = sorted(
        tuple(info["columns"])
        for info in found.values()
        if (info["index"] or info["unique"]) and not info["primary_key"]
    )
    assert indexed == sorted(
        [("sequence",), ("created_at",), ("action",), ("object_id", "object_type"), ("hash",)]
    )
