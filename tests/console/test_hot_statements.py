"""The hot path's fixed statements (console/hot_statements.py): in order, in one round trip,
prepared once per connection, and still Django's statements to everything that watches them
(errors, query logs)."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from agents.models import Agent
from approvals.audit.trail import audit_record
from console.hot_statements import columns_of, instance_from_row, statements_rows, values_in
from console.row_inserts import ids_assign
from tests.factories import AgentFactory
from tests.wire import round_trips

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="round trips and prepared statements of PostgreSQL"
)


def test_statements_give_their_rows_in_order_and_a_write_gives_none() -> None:
    first, second = AgentFactory(name="first"), AgentFactory(name="second")
    agents_in, params = values_in("id", [second.pk, first.pk])

    names, updated, after = statements_rows(
        [
            (f"SELECT name FROM agents_agent WHERE {agents_in} ORDER BY name", params),  # noqa: S608
            ("UPDATE agents_agent SET name = %s WHERE id = %s", ["renamed", first.pk]),
            ("SELECT name FROM agents_agent WHERE id = %s", [first.pk]),
        ]
    )

    assert names == [("first",), ("second",)]
    assert updated == []
    assert after == [("renamed",)]  # the statement after a write sees it


def test_a_row_of_a_models_columns_reads_as_the_orm_would_read_it() -> None:
    agent = AgentFactory(name="read back", description="as stored")
    (rows,) = statements_rows(
        [(f"SELECT {columns_of(Agent, 'a')} FROM agents_agent a WHERE a.id = %s", [agent.pk])]  # noqa: S608
    )
    read = instance_from_row(Agent, rows[0])
    stored = Agent.objects.get(pk=agent.pk)
    assert [getattr(read, f.attname) for f in Agent._meta.concrete_fields] == [
        getattr(stored, f.attname) for f in Agent._meta.concrete_fields
    ]
    assert not read._state.adding  # saving it updates, as for a row the ORM read


def test_every_statement_is_logged_as_djangos_own_are() -> None:
    with CaptureQueriesContext(connection) as queries:
        statements_rows([("SELECT %s + 10", [1]), ("SELECT %s + 20", [2])])
    logged = [q["sql"] for q in queries.captured_queries if "SELECT" in q["sql"]]
    assert len(logged) == 2
    assert "+ 10" in logged[0] and "1" in logged[0], logged
    assert "+ 20" in logged[1] and "2" in logged[1], logged


def test_an_execute_wrapper_sees_every_statement() -> None:
    seen = []

    def watch(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        rows = statements_rows([("SELECT %s + 10", [1]), ("SELECT %s + 20", [2])])
    assert rows == [[(11,)], [(22,)]]
    assert seen == ["SELECT %s + 10", "SELECT %s + 20"]


def test_a_transaction_marked_for_rollback_refuses_them_as_djangos_own_queries() -> None:
    with transaction.atomic():
        transaction.set_rollback(True)
        with pytest.raises(TransactionManagementError):
            Agent.objects.count()
        with pytest.raises(TransactionManagementError):
            statements_rows([("SELECT 1", [])])


def test_a_failing_statement_raises_djangos_error_and_the_connection_recovers() -> None:
    agent = AgentFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        statements_rows(
            [
                ("SELECT 1", []),
                (
                    "INSERT INTO agents_agent (code, name, description, created_at) "
                    "SELECT code, name, description, created_at FROM agents_agent WHERE id = %s",
                    [agent.pk],
                ),
            ]
        )
    assert statements_rows([("SELECT name FROM agents_agent WHERE id = %s", [agent.pk])]) == [
        [(agent.name,)]
    ]
    assert Agent.objects.count() == 1


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_statements_share_one_round_trip_in_a_transaction() -> None:
    agent = AgentFactory()
    with round_trips() as trips, transaction.atomic():
        statements_rows(
            [
                ("SELECT id FROM agents_agent WHERE id = %s FOR UPDATE", [agent.pk]),
                ("SELECT name FROM agents_agent WHERE id = %s", [agent.pk]),
                ("SELECT count(*) FROM agents_agenthalt WHERE agent_id = %s", [agent.pk]),
            ]
        )
    # The transaction's BEGIN with the three statements, then the COMMIT. psycopg's own BEGIN
    # would have been a round trip of its own; one statement at a time: five.
    assert len(trips) == 2, trips
    assert "BEGIN" in trips[0] and "COMMIT" in trips[1]


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_transaction_the_statements_begin_is_still_djangos_to_roll_back() -> None:
    agent = AgentFactory(name="before")
    with pytest.raises(RuntimeError), transaction.atomic():
        statements_rows([("UPDATE agents_agent SET name = %s WHERE id = %s", ["one", agent.pk])])
        Agent.objects.filter(pk=agent.pk).update(description="two")  # the ORM, same transaction
        with pytest.raises(IntegrityError), transaction.atomic():  # a savepoint rolls back alone
            Agent.objects.create(code=agent.code, name="duplicate code")
        raise RuntimeError("the caller fails after its writes")
    agent.refresh_from_db()
    assert (agent.name, agent.description) == ("before", "")
    # Autocommit is back on as Django left it, for psycopg too; the next transaction commits.
    assert connection.get_autocommit() and connection.connection.autocommit
    with transaction.atomic():
        statements_rows([("UPDATE agents_agent SET name = %s WHERE id = %s", ["three", agent.pk])])
    agent.refresh_from_db()
    assert agent.name == "three"


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_an_isolation_level_keeps_psycopgs_own_begin() -> None:
    # psycopg's BEGIN then says the level: the statements must not open the transaction without.
    from psycopg import IsolationLevel

    agent = AgentFactory()
    connection.ensure_connection()
    raw = connection.connection
    raw.isolation_level = IsolationLevel.SERIALIZABLE
    try:
        with round_trips() as trips, transaction.atomic():
            statements_rows([("SELECT id FROM agents_agent WHERE id = %s", [agent.pk])])
            level = statements_rows([("SHOW transaction_isolation", [])])
    finally:
        raw.isolation_level = None
    assert level == [[("serializable",)]]
    assert trips[0] == 'Query  "BEGIN ISOLATION LEVEL SERIALIZABLE"', trips  # alone, psycopg's


@postgresql_only
def test_a_statement_is_prepared_once_then_only_executed() -> None:
    agent = AgentFactory()
    statement = ("SELECT name FROM agents_agent WHERE id = %s", [agent.pk])
    statements_rows([statement])

    with round_trips() as trips:
        assert statements_rows([statement]) == [[(agent.name,)]]

    assert len(trips) == 1
    assert not trips[0].startswith("Parse"), trips  # bound to the statement already prepared
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [
            "SELECT name FROM agents_agent WHERE id = $1"
        ])  # fmt: skip
        assert cursor.fetchone() == (1,)


@postgresql_only
def test_without_prepared_statements_a_statement_is_parsed_every_time() -> None:
    # DATABASE_PREPARED_STATEMENTS=false, for a connection pooler that cannot keep them.
    connection.ensure_connection()
    raw = connection.connection
    threshold = raw.prepare_threshold
    raw.prepare_threshold = None
    try:
        statement = ("SELECT %s::int + 1", [41])
        statements_rows([statement])
        with round_trips() as trips:
            assert statements_rows([statement]) == [[(42,)]]
    finally:
        raw.prepare_threshold = threshold
    assert trips[0].startswith('Parse  "" '), trips  # the unnamed statement, parsed again


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_statements_failing_before_they_are_sent_leave_the_transaction_whole() -> None:
    # Refused before anything reached the server: the transaction's next statement must still
    # be in the transaction, not committed on its own.
    agent = AgentFactory(name="before")
    with pytest.raises(RuntimeError), transaction.atomic():
        with pytest.raises(Exception, match="adapt"):
            statements_rows([("SELECT %s", [object()])])
        Agent.objects.filter(pk=agent.pk).update(name="after")
        raise RuntimeError("the caller fails after its write")
    agent.refresh_from_db()
    assert agent.name == "before"


@postgresql_only
def test_the_id_reserving_statements_are_planned_once_not_at_every_execution() -> None:
    """A prepared statement that takes n ids from `generate_series(1, $n)` was planned again at
    every execution: its plan for any n (estimated at 1,000 rows) looked dearer than the plan
    for n = 3, so PostgreSQL never kept one. That is the chain head's lock, taken by every
    audited write, and the ids of every batch of new rows."""
    agents = AgentFactory.create_batch(2)
    for _ in range(12):
        with transaction.atomic():
            audit_record(action="agent.created", target=agents[0])
            ids_assign([Agent(name="a"), Agent(name="b")])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE %s",
            ["%generate_series%"],
        )
        plans = cursor.fetchall()
    assert len(plans) == 2, plans  # the head's lock and the ids' reservation
    # PostgreSQL tries five custom plans before it compares them with the generic one.
    assert all(generic > 0 and custom <= 5 for generic, custom in plans), plans
