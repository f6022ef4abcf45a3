"""Run services: sequences, cost totals and closing, including under concurrent appends."""

from decimal import Decimal
from functools import partial

import pytest
from django.db import connection

from agents.exceptions import RunClosed
from agents.models import Run, RunStatus, TraceEvent
from agents.services import NewTraceEvent, run_close, run_events_append, run_open
from tests.factories import AgentFactory
from tests.races import raised, run_at_once

THREADS = 6
BATCHES_PER_THREAD = 10


def _llm(cost: str) -> NewTraceEvent:
    return NewTraceEvent(type="llm_call", data={"model": "m"}, cost=Decimal(cost))


@pytest.mark.django_db
def test_it_numbers_events_per_run() -> None:
    agent = AgentFactory()
    first, _ = run_open(agent=agent, name="a")
    second, _ = run_open(agent=agent, name="b")
    run_events_append(run=first, events=[_llm("0.1"), _llm("0.2")])
    run_events_append(run=second, events=[_llm("1")])
    run_events_append(run=first, events=[_llm("0.3")])
    assert list(first.events.values_list("sequence", flat=True)) == [1, 2, 3]
    assert list(second.events.values_list("sequence", flat=True)) == [1]
    first.refresh_from_db()
    assert first.total_cost == Decimal("0.6") and first.last_sequence == 3


@pytest.mark.django_db
def test_it_refuses_to_append_to_a_closed_run_or_reopen_it() -> None:
    run, _ = run_open(agent=AgentFactory(), name="a")
    run_close(run=run, status=RunStatus.FAILED, reason="crashed")
    with pytest.raises(RunClosed):
        run_events_append(run=run, events=[_llm("1")])
    with pytest.raises(ValueError, match="open"):
        run_close(run=run, status=RunStatus.OPEN)
    run.refresh_from_db()
    assert run.total_cost == 0 and run.last_sequence == 0 and run.status == RunStatus.FAILED


@pytest.mark.django_db(transaction=True)
def test_it_loses_no_cost_or_sequence_under_concurrent_appends() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("real concurrency needs PostgreSQL (SQLite serializes every writer)")
    run, _ = run_open(agent=AgentFactory(), name="busy")

    def append_batches() -> None:
        for _ in range(BATCHES_PER_THREAD):
            run_events_append(run=run, events=[_llm("0.00000001"), _llm("0.1")])

    assert raised(run_at_once([append_batches] * THREADS)) == []
    batches = THREADS * BATCHES_PER_THREAD
    run.refresh_from_db()
    assert run.total_cost == batches * Decimal("0.10000001")
    assert run.last_sequence == 2 * batches
    sequences = sorted(TraceEvent.objects.filter(run=run).values_list("sequence", flat=True))
    assert sequences == list(range(1, 2 * batches + 1))


def _race_append_and_close(run: Run) -> list[str]:
    appended, closed = run_at_once(
        [
            partial(run_events_append, run=run, events=[_llm("1")]),
            partial(run_close, run=run, status=RunStatus.COMPLETED),
        ],
        timeout=30,
    )
    assert raised([appended, closed], RunClosed) == []
    return ["refused" if isinstance(appended, RunClosed) else "appended"]


@pytest.mark.django_db(transaction=True)
def test_it_never_appends_after_a_racing_close() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("real concurrency needs PostgreSQL (SQLite serializes every writer)")
    for _ in range(10):
        run, _ = run_open(agent=AgentFactory(), name="racing")
        outcomes = _race_append_and_close(run)
        run.refresh_from_db()
        stored = TraceEvent.objects.filter(run=run).count()
        assert run.status == RunStatus.COMPLETED
        assert (outcomes, stored) in ((["appended"], 1), (["refused"], 0))
        assert run.total_cost == stored
