"""Statements a transaction defers to its next round trip (statements_deferred, in
console/hot_statements.py): sent with the COMMIT when nothing else goes first, before any query of
Django's otherwise, in the transaction's order, and never without the rest of their transaction."""

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from agents.models import Agent
from console.hot_statements import statements_deferred, statements_rows
from tests.factories import AgentFactory
from tests.wire import round_trips

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="deferring needs the PostgreSQL backend"
)
_RENAME = "UPDATE agents_agent SET name = %s WHERE id = %s"


def _stored_name(agent: Agent) -> str:
    return Agent.objects.get(pk=agent.pk).name


@postgresql_only
@pytest.mark.django_db(transaction=True)  # a real COMMIT
def test_deferred_statements_go_with_the_commit_in_one_round_trip() -> None:
    agent = AgentFactory(name="before")
    with round_trips() as trips, transaction.atomic():
        (locked,) = statements_rows([("SELECT id FROM agents_agent WHERE id = %s", [agent.pk])])
        statements_deferred([(_RENAME, ["after", agent.pk])])
    # BEGIN with the lock; the rename with the COMMIT. On the old code: three.
    assert len(trips) == 2, "\n".join(trips)
    assert '"COMMIT"' in trips[1] and "UPDATE agents_agent" in trips[1], trips[1]
    assert locked == [(agent.pk,)]
    assert _stored_name(agent) == "after"


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_transaction_of_deferred_statements_only_begins_and_commits_with_them() -> None:
    agent = AgentFactory(name="before")
    with round_trips() as trips, transaction.atomic():
        statements_deferred([(_RENAME, ["after", agent.pk])])
    assert len(trips) == 1, "\n".join(trips)
    assert "BEGIN" in trips[0] and '"COMMIT"' in trips[0], trips[0]
    assert _stored_name(agent) == "after"


@postgresql_only
def test_a_query_of_djangos_comes_after_the_deferred_statements() -> None:
    agent = AgentFactory(name="before")
    with transaction.atomic():
        statements_deferred([(_RENAME, ["after", agent.pk])])
        assert _stored_name(agent) == "after"  # the ORM's read sends them first
        (rows,) = statements_rows([("SELECT name FROM agents_agent WHERE id = %s", [agent.pk])])
        assert rows == [("after",)]


@postgresql_only
def test_statements_of_this_module_send_the_deferred_ones_first() -> None:
    agent = AgentFactory(name="before")
    with transaction.atomic():
        statements_deferred([(_RENAME, ["first", agent.pk])])
        statements_deferred([(_RENAME, ["second", agent.pk])])
        (rows,) = statements_rows([("SELECT name FROM agents_agent WHERE id = %s", [agent.pk])])
    assert rows == [("second",)]  # in the order they were deferred, before the read


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_rollback_discards_the_deferred_statements() -> None:
    agent = AgentFactory(name="before")
    with pytest.raises(RuntimeError), transaction.atomic():
        statements_deferred([(_RENAME, ["after", agent.pk])])
        raise RuntimeError("the unit of work fails")
    assert _stored_name(agent) == "before"
    with transaction.atomic():  # and they are not sent with the next transaction either
        AgentFactory(name="next")
    assert _stored_name(agent) == "before"


@postgresql_only
def test_a_savepoints_rollback_discards_what_was_deferred_inside_it() -> None:
    agent = AgentFactory(name="before")
    with transaction.atomic():
        statements_deferred([(_RENAME, ["outer", agent.pk])])
        with pytest.raises(RuntimeError), transaction.atomic():
            statements_deferred([(_RENAME, ["inner", agent.pk])])
            raise RuntimeError("the inner unit fails")
        assert _stored_name(agent) == "outer"


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_deferred_statement_that_fails_fails_its_whole_transaction_at_commit() -> None:
    agent = AgentFactory(name="before")
    with pytest.raises(DatabaseError), transaction.atomic():
        AgentFactory(name="written in the same transaction")
        statements_deferred([("UPDATE agents_agent SET name = NULL WHERE id = %s", [agent.pk])])
    assert _stored_name(agent) == "before"
    assert not Agent.objects.filter(name="written in the same transaction").exists()
    # The connection is usable again, and commits on its own outside a transaction.
    statements_deferred([(_RENAME, ["after", agent.pk])])
    assert _stored_name(agent) == "after"


@pytest.mark.django_db(transaction=True)  # no test transaction around it
def test_outside_a_transaction_deferred_statements_run_at_once() -> None:
    agent = AgentFactory(name="before")
    statements_deferred([(_RENAME, ["after", agent.pk])])
    assert not getattr(connection, "deferred_statements", [])
    assert _stored_name(agent) == "after"


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_commit_that_carried_deferred_statements_is_logged_once() -> None:
    agent = AgentFactory(name="before")
    with CaptureQueriesContext(connection) as logged, transaction.atomic():
        statements_deferred([(_RENAME, ["after", agent.pk])])
    # The query log (DEBUG, django-debug-toolbar) reads what was sent: one COMMIT, not two.
    commits = [query["sql"] for query in logged.captured_queries if query["sql"] == "COMMIT"]
    assert commits == ["COMMIT"], logged.captured_queries
    assert _stored_name(agent) == "after"
