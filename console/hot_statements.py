"""The hot path's own fixed statements: sent together, bound and planned on the server once.

A request alone (the usual case below full load) waits on its database round trips and on the
CPU spent on each statement: Django's ORM compiles every query it builds, psycopg quotes each
value into the SQL text (Django binds on the client), and PostgreSQL parses and plans every
statement again. The few statements that every agent call runs (the credential's lookup, the
agents' lock, their halts, the new request's id and its rows) are fixed SQL instead, run here:

- Together: statements that follow one another go in one round trip (psycopg's pipeline mode).
  PostgreSQL still runs them one after the other, each with its own snapshot, exactly as if each
  had waited for the one before. When they are the first of a transaction, its `BEGIN` goes with
  them too: psycopg would send it alone and wait for it (`_begin_rides_along`).
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
from functools import cache
from typing import Any, Protocol

from django.db import connection, models
from django.db.backends.postgresql.base import ServerBindingCursor
from psycopg import Connection
from psycopg.pq import TransactionStatus

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


@cache
def columns_of(model: type[models.Model], alias: str = "") -> str:
    """A model's columns, in its fields' order: what a statement selects for instance_from_row.
    `alias`: the table's alias in that statement, if it has one."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{field.column}" for field in model._meta.concrete_fields)


def instance_from_row[M: models.Model](model: type[M], row: Sequence[Any]) -> M:
    """The instance a row of `columns_of(model)` describes, as if the ORM had read it: each
    value through the converters the ORM applies (SQLite returns UUIDs and times as text)."""
    values = list(row)
    for index, converters in _converters(model, connection.vendor):
        for convert, column in converters:
            values[index] = convert(values[index], column, connection)
    return model.from_db(connection.alias, _attnames(model), values)


@cache
def _attnames(model: type[models.Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


@cache
def _converters(model: type[models.Model], vendor: str) -> list[tuple[int, list[Any]]]:
    # As the ORM's compiler finds them: the backend's for the column's type, then the field's.
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        column = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if converters:
            found.append((index, [(convert, column) for convert in converters]))
    return found


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
            begins = _begin_rides_along(raw)
            if len(statements) == 1 and not begins:
                cursors[0].execute(*statements[0])
            else:
                # Leaving the pipeline sends one Sync and reads every result: one round trip.
                with raw.pipeline():
                    if begins:
                        with raw.cursor() as begin:
                            begin.execute(b"BEGIN", prepare=False)
                    for cursor, (sql, params) in zip(cursors, statements, strict=True):
                        cursor.execute(sql, params)
            return [
                cursor.fetchall() if cursor.description is not None else [] for cursor in cursors
            ]
    finally:
        for cursor in cursors:
            cursor.close()


def _begin_rides_along(raw: Connection[Any]) -> bool:
    """Whether these statements open the caller's transaction, with a `BEGIN` of their own.

    In a transaction (`atomic()`) that has sent nothing yet, psycopg would send `BEGIN` before
    the first statement, alone, and wait for its answer, pipeline or not: a round trip for
    nothing. Instead the `BEGIN` goes first in the statements' own round trip, and psycopg is
    told not to send one (its autocommit on: it then sends statements as they are). The
    transaction stays Django's: Django still believes autocommit off, as it is on the server, and
    its commit or rollback ends the transaction (psycopg sends `COMMIT`/`ROLLBACK` whenever one
    is open, whatever its autocommit says); Django turns autocommit on again after it anyway.
    Not when psycopg's `BEGIN` would say more (an isolation level, read-only, deferrable).
    """
    if raw.autocommit or not connection.in_atomic_block:
        return False
    if raw.info.transaction_status != TransactionStatus.IDLE:
        return False  # already begun
    if raw.isolation_level is not None or raw.read_only is not None or raw.deferrable is not None:
        return False
    raw.autocommit = True
    return True
