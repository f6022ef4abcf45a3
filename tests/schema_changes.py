"""A rolling deploy's migration, as the hot path's prepared statements see it: a column type
changed by another connection while the console's connections keep what they prepared."""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection


def schema_change(sql: str) -> None:
    """`sql` from a connection of its own, committed, as a deploy's migration runs it."""
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute(sql)


# Text columns that prepared hot statements select: the agents' description by the credential's
# lookup (outside any transaction), the halts' reason by the read that goes with the agents' lock
# (in a creation's transaction), and a request's summary by the lock every decision, expiry and
# escalation takes first in its own transaction (approvals.selectors.approval_lock).
CREDENTIAL_LOOKUP = ("agents_agent", "description")
HALTS_READ = ("agents_agenthalt", "reason")
APPROVAL_LOCK = ("approvals_approvalrequest", "summary")
# The audit chain head's hash (varchar(64)): selected by the head's lock, which every audited
# write takes in its transaction (approvals.audit.trail), and read by the head's guard, a
# PL/pgSQL trigger (migration 0027).
AUDIT_HEAD = ("approvals_auditchainhead", "last_hash")


def _column_type(table: str, column: str) -> str:
    with psycopg.connect(**connection.get_connection_params()) as other:
        row = other.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attname = %s",
            [table, column],
        ).fetchone()
    assert row is not None, f"no column {table}.{column}"
    return str(row[0])


@contextmanager
def columns_retyped(*columns: tuple[str, str]) -> Iterator[None]:
    """The text `columns` (table, column) as the other text type meanwhile: `text` as varchar,
    a varchar as `text` (another type, not only another length: what PL/pgSQL notices).

    Afterwards their type is restored and the pool's connections closed, so no connection keeps
    a statement prepared for the changed type.
    """
    was = [(table, column, _column_type(table, column)) for table, column in columns]
    for table, column, type_was in was:
        retyped = "varchar(5000)" if type_was == "text" else "text"
        schema_change(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {retyped}")
    try:
        yield
    finally:
        for table, column, type_was in was:
            schema_change(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {type_was}")
        connection.close()
        if getattr(connection, "pool", None) is not None:
            connection.close_pool()  # type: ignore[attr-defined]
