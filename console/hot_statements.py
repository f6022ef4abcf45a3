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

A schema change can make a prepared statement unusable: when a migration changes the type of a
column a statement selects (or adds or drops a column of a table it selects `*` or every column
of), PostgreSQL refuses the next execution of the statement as prepared before ("cached plan must
not change result type", SQLSTATE 0A000), on every connection that prepared it, until the
connection forgets it. In a rolling deploy that is every pooled connection of the old and the new
servers. So such a failure makes the connection forget its prepared statements (psycopg's and
the server's, `prepared_forget`), and:

- outside a transaction, the statements run again, once, here: the failure left nothing behind
  (statements sent together outside a transaction are one implicit transaction, rolled back
  whole);
- in a transaction, PostgreSQL has aborted it: nothing can run again in it. The error goes up
  (`is_stale_prepared` tells it), the transaction is rolled back (psycopg forgets its prepared
  statements with the rollback), and the unit of work that holds the transaction runs again,
  whole, from its outermost level (`retried_if_prepared_stale`, or `runs_again_if_prepared_stale`
  on the function that holds the transaction, used where that is safe: a request's creation,
  idempotent by its key; a decision or any other compare-and-set, which the run again finds
  decided if someone else decided meanwhile; a task's transaction).

- Deferred: a statement whose result nobody reads (the audit records' insert, the chain head's
  move) can wait for the transaction's next round trip instead of taking one of its own:
  `statements_deferred` queues it on the connection, and it goes first in the next round trip,
  whatever sends it (statements here, any query of Django's, a savepoint) or, if nothing else
  does, with the transaction's `COMMIT` (console/postgresql/base.py). PostgreSQL runs it in the
  same order among the transaction's statements as if it had been sent at once; only its error,
  should it fail, is raised by that later round trip. A rollback discards the queue.

Statements write their lists as `= ANY(%s)` (one text, hence one prepared statement, for any
number of values): `values_in` writes a column's membership test for either database. Errors
come out as Django's, and query logging, `CaptureQueriesContext` and execute wrappers see every
statement (through Django's cursor wrapper, used while one of them watches). Elsewhere than
PostgreSQL they run one by one through Django's cursor.
"""

import logging
from collections.abc import Callable, Sequence
from functools import cache, partial, wraps
from typing import Any, Protocol

import psycopg
from django.db import DatabaseError, connection, connections, models
from django.db.backends.postgresql.base import ServerBindingCursor
from psycopg import Connection
from psycopg.pq import ExecStatus, TransactionStatus

Statement = tuple[str, Sequence[Any]]

logger = logging.getLogger(__name__)

# PostgreSQL's refusal of a prepared statement whose result type changed since it was prepared:
# feature_not_supported, raised by the plan cache's revalidation (whatever the server's language).
_STALE_SQLSTATE = "0A000"
_STALE_SOURCE_FUNCTION = "RevalidateCachedQuery"
_STALE_MESSAGE = "cached plan must not change result type"


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
    deferred = _deferred_taken()
    if deferred:
        # In a transaction, by construction: an error is the transaction's, not retried here.
        return _rows_on(raw, [*deferred, *statements])[len(deferred) :]
    try:
        return _rows_on(raw, statements)
    except DatabaseError as error:
        # Outside a transaction the failure left nothing behind, and the connection is idle:
        # forget the statements prepared before the schema changed, and run these again.
        if (
            not is_stale_prepared(error)
            or connection.in_atomic_block
            or raw.info.transaction_status != TransactionStatus.IDLE
        ):
            raise
        logger.warning("prepared statements outdated by a schema change: preparing them again")
        prepared_forget()
        return _rows_on(raw, statements)


def statements_deferred(statements: Sequence[Statement]) -> None:
    """Run statements whose results nobody reads with the transaction's next round trip: the
    next one anything sends, or its `COMMIT`'s. One round trip fewer for a transaction that
    ends with them (a lone creation, a decision: the audit records' insert and the head's move).

    In order with everything else the transaction runs. An error they raise comes from that
    later round trip (from the commit: Django then rolls the transaction back and raises it).
    Outside a transaction, or elsewhere than PostgreSQL, they run at once.
    """
    queue = _deferred_queue()
    if queue is None or not connection.in_atomic_block:
        statements_rows(statements)
        return
    queue.extend(statements)


def deferred_sent(*, commit: bool) -> bool:
    """Send the connection's deferred statements now, in one round trip, with `COMMIT` if
    `commit`; whether there were any. For the backend (console/postgresql/base.py): before any
    other query of Django's, and at commit."""
    deferred = _deferred_taken()
    if not deferred:
        return False
    _rows_on(connection.connection, deferred, commit=commit)
    return True


def _deferred_queue() -> list[Statement] | None:
    # On the connection itself (one per thread), where the backend keeps it: None for a backend
    # that does not send it (SQLite; Django's own PostgreSQL backend).
    queue: list[Statement] | None = getattr(
        connections[connection.alias], "deferred_statements", None
    )
    return queue


def _deferred_taken() -> list[Statement]:
    queue = _deferred_queue()
    if not queue:
        return []
    taken = list(queue)
    queue.clear()
    return taken


def _rows_on(
    raw: Connection[Any], statements: Sequence[Statement], *, commit: bool = False
) -> list[list[tuple[Any, ...]]]:
    # One cursor per statement: each keeps its own results until the pipeline's end fetches
    # them. Through Django's cursor wrapper only while something watches the statements (the
    # query log, an execute wrapper): otherwise the wrapper's checks and error translation on
    # every call, about a quarter of a lone creation's Python calls, add nothing to the one
    # translation around them all below.
    db = connections[connection.alias]
    raws: list[Any] = [ServerBindingCursor(raw) for _ in statements]  # type: ignore[call-arg, arg-type]
    cursors: Sequence[Any] = raws
    if db.queries_logged or db.execute_wrappers:
        wrap = db.make_debug_cursor if db.queries_logged else db.make_cursor
        cursors = [wrap(cursor) for cursor in raws]
    else:
        db.validate_no_broken_transaction()  # as the wrapper checks before each statement
    begins = False
    try:
        with connection.wrap_database_errors:
            begins = _begin_rides_along(raw, committing=commit)
            if len(statements) == 1 and not begins and not commit:
                cursors[0].execute(*statements[0])
            else:
                # Leaving the pipeline sends one Sync and reads every result: one round trip.
                # After a failed statement PostgreSQL skips the rest up to the Sync: a COMMIT
                # sent with them then never runs, and the transaction is rolled back.
                with raw.pipeline():
                    if begins:
                        with raw.cursor() as begin:
                            begin.execute(b"BEGIN", prepare=False)
                    for cursor, (sql, params) in zip(cursors, statements, strict=True):
                        cursor.execute(sql, params)
                    if commit:
                        with raw.cursor() as end:
                            end.execute(b"COMMIT", prepare=False)
            return [_rows_of(cursor) for cursor in raws]
    except BaseException:
        if begins and not raw.closed and raw.info.transaction_status == TransactionStatus.IDLE:
            # Failed before our BEGIN ran: psycopg must send its own before the transaction's
            # next statement, or that statement would commit on its own.
            raw.autocommit = False
        raise
    finally:
        for cursor in raws:
            cursor.close()


def _rows_of(cursor: psycopg.Cursor[Any]) -> list[tuple[Any, ...]]:
    # The status, not `description`: that builds a Column for each field at every reading.
    result = cursor.pgresult
    if result is None or result.status != ExecStatus.TUPLES_OK:
        return []
    return cursor.fetchall()


def is_stale_prepared(error: BaseException | None) -> bool:
    """Whether `error` (Django's, or psycopg's it wraps) is PostgreSQL refusing a statement
    prepared before a schema change changed its result type ("cached plan must not change
    result type"). Not any other error, not even another of the same SQLSTATE.

    Nor PL/pgSQL's "type of parameter ... does not match that when preparing the plan" (42804,
    a function that read a row's field before a migration changed the column's type): PL/pgSQL
    keeps that plan for the connection's life, so a run again would fail again. The one PL/pgSQL
    an audited write runs, the audit head's guard, reads its rows whole to never raise it
    (approvals/migrations/0027_audit_head_guard_reads_rows_whole.py)."""
    seen = 0
    while error is not None and seen < 10:  # Django's error, psycopg's under it
        if isinstance(error, psycopg.Error):
            if error.sqlstate != _STALE_SQLSTATE:
                return False
            # The message may be in the server's language; the function that raised it is not.
            return error.diag.source_function == _STALE_SOURCE_FUNCTION or _STALE_MESSAGE in str(
                error
            )
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def prepared_forget() -> None:
    """Make the connection forget the statements it prepared, on the server and in psycopg: the
    next execution of each prepares it again, against the schema as it is now.

    `DEALLOCATE ALL` through psycopg: psycopg (3.3.6 and later: the lower bound in
    pyproject.toml) sees its status and forgets its own record of them, so it does not send an
    execution of a statement that no longer exists (test: tests/console/test_stale_prepared.py).
    Not `DISCARD ALL`, which would also reset the session (its time zone, for one).

    Only right after one of the connection's prepared statements failed, and on an idle
    connection: psycopg reads `DEALLOCATE ALL`'s status only while it has statements prepared
    and only the first time it sees that text since it last forgot them. In an aborted
    transaction nothing runs, and its rollback forgets them anyway (psycopg clears them with
    every rollback).
    """
    raw = connection.connection
    if connection.vendor != "postgresql" or raw is None or raw.closed:
        return
    if raw.info.transaction_status != TransactionStatus.IDLE:
        return
    with connection.wrap_database_errors, raw.cursor() as cursor:
        cursor.execute(b"DEALLOCATE ALL", prepare=False)


def retried_if_prepared_stale[T](work: Callable[[], T]) -> T:
    """`work()`, and once more if it failed because a statement prepared before a schema change
    no longer fits it (is_stale_prepared): then the transaction `work` ran in was aborted and
    rolled back, so nothing it did was kept.

    For a unit of work that is safe to run again whole: it holds its own transaction, and what
    it did before that transaction, or after it commits, is idempotent (a request's creation:
    by its idempotency key). Inside a caller's transaction it runs once, as it is: the caller's
    transaction is aborted too, and only the caller's caller can run it again.
    """
    if connection.in_atomic_block:
        return work()
    try:
        return work()
    except DatabaseError as error:
        if not is_stale_prepared(error):
            raise
    # The rollback of its transaction made psycopg forget the connection's prepared statements
    # (it clears them with every rollback): they are prepared again as the work runs again.
    logger.warning("prepared statements outdated by a schema change: running the work again")
    return work()


def runs_again_if_prepared_stale[**P, T](unit: Callable[P, T]) -> Callable[P, T]:
    """`unit`, each call of it run as retried_if_prepared_stale runs work: once more, whole, if
    a statement prepared before a schema change aborted its transaction.

    For the function that holds a unit of work's own transaction, when it is safe to run again
    whole: the transaction rolled back, and what it does before the transaction or after the
    commit is idempotent. A compare-and-set in it (a decision, an escalation's firing) compares
    again: what someone else changed meanwhile stands, and this run finds it changed.
    """

    @wraps(unit)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return retried_if_prepared_stale(partial(unit, *args, **kwargs))

    return run


def _begin_rides_along(raw: Connection[Any], *, committing: bool = False) -> bool:
    """Whether these statements open the caller's transaction, with a `BEGIN` of their own.

    In a transaction (`atomic()`) that has sent nothing yet, psycopg would send `BEGIN` before
    the first statement, alone, and wait for its answer, pipeline or not: a round trip for
    nothing. Instead the `BEGIN` goes first in the statements' own round trip, and psycopg is
    told not to send one (its autocommit on: it then sends statements as they are). The
    transaction stays Django's: Django still believes autocommit off, as it is on the server, and
    its commit or rollback ends the transaction (psycopg sends `COMMIT`/`ROLLBACK` whenever one
    is open, whatever its autocommit says); Django turns autocommit on again after it anyway.
    Not when psycopg's `BEGIN` would say more (an isolation level, read-only, deferrable).
    `committing`: the statements end the transaction with its COMMIT (Django has already left
    its atomic block then).
    """
    if raw.autocommit or not (connection.in_atomic_block or committing):
        return False
    if raw.info.transaction_status != TransactionStatus.IDLE:
        return False  # already begun
    if raw.isolation_level is not None or raw.read_only is not None or raw.deferrable is not None:
        return False
    raw.autocommit = True
    return True
