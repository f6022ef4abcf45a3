"""A schema change under prepared statements (console/hot_statements.py): a statement prepared
before a column's type changed is refused by PostgreSQL ("cached plan must not change result
type") on every connection that prepared it. The hot path forgets them and runs again, instead
of failing the caller, and only for that error."""

from collections.abc import Iterator

import pytest
from django.db import IntegrityError, NotSupportedError, connection, transaction
from django.test.utils import CaptureQueriesContext

from console.hot_statements import is_stale_prepared, prepared_forget, statements_rows
from tests.schema_changes import schema_change

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="prepared statements of PostgreSQL"
    ),
    pytest.mark.django_db(transaction=True),
]

_TABLE = "stale_prepared_probe"
_SELECT = (f"SELECT id, amount FROM {_TABLE} WHERE id = %s", [1])  # noqa: S608 (the test's table)
_SELECT_AS_PREPARED = f"SELECT id, amount FROM {_TABLE} WHERE id = $1"  # noqa: S608


@pytest.fixture
def probe() -> Iterator[None]:
    schema_change(f"CREATE TABLE {_TABLE} (id int PRIMARY KEY, amount int)")
    schema_change(f"INSERT INTO {_TABLE} VALUES (1, 42)")  # noqa: S608 (the test's table)
    try:
        yield
    finally:
        schema_change(f"DROP TABLE {_TABLE}")


def _prepared_here(text: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement = %s", [text])
        (count,) = cursor.fetchone()
    return int(count)


def test_a_statement_prepared_before_a_column_type_change_runs_again(probe) -> None:
    for _ in range(3):
        assert statements_rows([_SELECT]) == [[(1, 42)]]
    assert _prepared_here(_SELECT_AS_PREPARED) == 1

    schema_change(f"ALTER TABLE {_TABLE} ALTER COLUMN amount TYPE bigint")

    assert statements_rows([_SELECT]) == [[(1, 42)]]
    # The connection stays usable, and the statement is prepared again (once), for the new type.
    assert statements_rows([_SELECT, ("SELECT %s::int + 1", [1])]) == [[(1, 42)], [(2,)]]
    assert _prepared_here(_SELECT_AS_PREPARED) == 1


def test_statements_sent_together_run_again_together(probe) -> None:
    together = [("SELECT %s::int", [7]), _SELECT]
    statements_rows(together)
    schema_change(f"ALTER TABLE {_TABLE} ADD COLUMN note text")
    schema_change(f"ALTER TABLE {_TABLE} ALTER COLUMN amount TYPE numeric")
    assert statements_rows(together) == [[(7,)], [(1, 42)]]


def test_in_a_transaction_the_error_goes_up_and_the_next_attempt_succeeds(probe) -> None:
    statements_rows([_SELECT])
    schema_change(f"ALTER TABLE {_TABLE} ALTER COLUMN amount TYPE bigint")

    # PostgreSQL aborted the transaction: nothing can run again in it. The caller's caller
    # (retried_if_prepared_stale) runs the whole unit again.
    with pytest.raises(NotSupportedError) as raised, transaction.atomic():
        statements_rows([_SELECT])
    assert is_stale_prepared(raised.value)

    with transaction.atomic():
        assert statements_rows([_SELECT]) == [[(1, 42)]]


def test_psycopg_forgets_what_deallocate_all_dropped() -> None:
    # prepared_forget relies on psycopg reading DEALLOCATE ALL's status (psycopg 3.3.6 and
    # later): if it kept its record, the next execution would name a statement the server no
    # longer has ("prepared statement "_pg3_0" does not exist").
    statement = ("SELECT %s::int * 2", [21])
    for _ in range(2):
        assert statements_rows([statement]) == [[(42,)]]
    assert _prepared_here("SELECT $1::int * 2") == 1

    prepared_forget()

    assert _prepared_here("SELECT $1::int * 2") == 0
    assert statements_rows([statement]) == [[(42,)]]
    assert _prepared_here("SELECT $1::int * 2") == 1


def test_another_error_is_not_run_again(probe) -> None:
    insert = (f"INSERT INTO {_TABLE} VALUES (%s, %s)", [1, 7])  # noqa: S608 (the test's table)
    statements_rows([_SELECT])
    with CaptureQueriesContext(connection) as queries, pytest.raises(IntegrityError) as raised:
        statements_rows([insert])
    assert not is_stale_prepared(raised.value)
    inserts = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"]]
    assert len(inserts) == 1, inserts  # once, not again
    assert statements_rows([_SELECT]) == [[(1, 42)]]
