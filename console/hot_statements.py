"""The hot path's own fixed statements: sent together, bound and planned on the server once.

A request alone (the usual case below full load) waits on its database round trips and on the
CPU spent on each statement: Django's ORM compiles every query it builds, psycopg quotes each
value into the SQL text (Django binds on the client), and PostgreSQL parses and plans every
statement again. The few statements that every agent call runs (the credential's lookup, the
agents' lock, their halts, the new request's id and its rows) are fixed SQL instead, run here:

- Together: statements that follow one another go in one round trip (psycopg's pipeline mode).
  PostgreSQL still runs them one after the other, each with its own snapshot, exactly as if each
  had waited for the one before. (A transaction's `BEGIN` does not go along: psycopg sends it,
  in pipeline mode too, and waits for it, to know the transaction's state.)
- Prepared: bound on the server and prepared once per connection (the pool keeps connections),
  so a statement is neither parsed nor planned again. Django's ORM never prepares (its cursors
  bind on the client). `DATABASE_PREPARED_STATEMENTS=false` turns preparing off, for a
  connection pooler that cannot keep prepared statements (PgBouncer before 1.21, or without
  `max_prepared_statements`); statements are then still bound on the server.

Statements write their lists as `= ANY(%s)` (one text, hence one prepared statement, for any
number of values): `values_in` writes a column's membership test for either database. Each still
passes through Django's cursor wrapper: errors come out as Django's, and query logging,
`CaptureQueriesContext` and execute wrappers see every statement. Elsewhere than PostgreSQL they
run one by one through Django's cursor.
"""

from collections.abc import Sequence
from typing import Any, Protocol

from django.db import connection

Statement = tuple[str, Sequence[Any]]


class RidesAlong(Protocol):
    """A statement that needs nothing before it, sent with another caller's round trip instead
    of one of its own (the new request's id, with the agent's lock): `statement()` is sent at
    the end of that round trip, and `take` gets its rows."""

    def statement(self) -> Statement: ...

    def take(self, rows: list[tuple[Any, ...]]) -> None: ...


def values_in(column: str, values: Sequence[Any]) -> Statement:
    """SQL testing that `column` is one of `values`, and its parameters, for statements run here."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def statements_rows(statements: Sequence[Statement]) -> list[list[tuple[Any, ...]]]:
    """Run the statements in order, in one round trip on PostgreSQL; the rows of each (empty for
    a statement that selects nothing)."""
    if connection.vendor != "postgresql":
        results = []
        with connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)
                results.append(cursor.fetchall() if cursor.description is not None else [])
        return results
    from django.db.backends.postgresql.base import ServerBindingCursor

    # What Django's own cursor() does first.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = connection.connection
    # Through Django's wrapper (its error translation, query log and execute wrappers), one
    # cursor per statement: each keeps its own results until the pipeline's end fetches them.
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    cursors = [wrap(ServerBindingCursor(raw)) for _ in statements]  # type: ignore[call-arg, arg-type]
    try:
        with connection.wrap_database_errors:
            if len(statements) == 1:
                cursors[0].execute(*statements[0])
            else:
                # Leaving the pipeline sends one Sync and reads every result: one round trip.
                with raw.pipeline():
                    for cursor, (sql, params) in zip(cursors, statements, strict=True):
                        cursor.execute(sql, params)
            return [
                cursor.fetchall() if cursor.description is not None else [] for cursor in cursors
            ]
    finally:
        for cursor in cursors:
            cursor.close()
