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


@contextmanager
def columns_retyped(*columns: tuple[str, str]) -> Iterator[None]:
    """The text `columns` (table, column) as varchar instead, meanwhile.

    Afterwards their type is restored and the pool's connections closed, so no connection keeps
    a statement prepared for the changed type.
    """
    for table, column in columns:
        schema_change(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar(5000)")
    try:
        yield
    finally:
        for table, column in columns:
            schema_change(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE text")
        connection.close()
        if getattr(connection, "pool", None) is not None:
            connection.close_pool()  # type: ignore[attr-defined]
