"""Parallel requests from one agent cannot slip past a throttle or a running total, nor a halt.

On PostgreSQL (CI) the threads run concurrently on separate connections; the agent-row lock
taken by policy_decide must serialize them. On SQLite, IMMEDIATE transactions do the same.
"""

import threading
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from agents.services import NewTraceEvent, run_events_append, run_open
from approvals.models import ApprovalRequest, Status
from approvals.policies.evaluation import PolicyQuestion, policy_decide_many
from approvals.policies.halts import agent_halt
from approvals.policies.models import Budget, Throttle
from approvals.services import (
    NewApprovalRequest,
    Submission,
    approval_request_create,
    approval_requests_create,
)
from tests.factories import AgentFactory, PolicyRuleFactory, UserFactory
from tests.races import raised, run_at_once
from tests.waits import a_query_waits_on_a_lock

THREADS = 8


def _crashes(actions: list[Callable[[], Any]]) -> list[BaseException]:
    return raised(run_at_once(actions))


def _creator(agent, key: str, amount: int = 100) -> Callable[[], Any]:
    submission = Submission(tool="issue_refund", arguments={"amount": amount}, timeout="30m")
    return lambda: approval_request_create(agent=agent, idempotency_key=key, submission=submission)


@pytest.mark.django_db(transaction=True)
def test_it_lets_no_parallel_request_slip_past_a_throttle() -> None:
    PolicyRuleFactory(outcome="approve")
    Throttle.objects.create(name="three", max_auto_approvals=3, window_seconds=600)
    for round_number in range(3):
        agent = AgentFactory()
        errors = _crashes([_creator(agent, f"r{round_number}-{i}") for i in range(THREADS)])
        assert not errors, errors
        statuses = list(
            ApprovalRequest.objects.filter(agent=agent).values_list("status", flat=True)
        )
        assert len(statuses) == THREADS
        assert statuses.count(Status.APPROVED) == 3
        assert statuses.count(Status.PENDING) == THREADS - 3


@pytest.mark.django_db(transaction=True)
def test_it_lets_no_parallel_request_slip_past_a_running_total() -> None:
    PolicyRuleFactory(
        position=1,
        total_path="amount",
        total_window_seconds=3600,
        total_above=250,
        outcome="hold",
    )
    PolicyRuleFactory(position=2, outcome="approve")
    agent = AgentFactory()
    errors = _crashes([_creator(agent, f"t{i}", amount=100) for i in range(THREADS)])
    assert not errors, errors
    approved = ApprovalRequest.objects.filter(agent=agent, status=Status.APPROVED).count()
    assert approved == 2  # 100 + 100 = 200; a third would make 300 > 250


@pytest.mark.django_db(transaction=True)
def test_it_sees_a_cost_committed_while_the_request_waited_for_the_run() -> None:
    PolicyRuleFactory(outcome="approve")
    Budget.objects.create(name="cap", scope="run", ceiling=Decimal("1"))
    agent = AgentFactory()
    run, _ = run_open(agent=agent, name="r")
    appended, release = threading.Event(), threading.Event()

    def append_and_hold() -> None:
        try:
            with transaction.atomic():
                run_events_append(
                    run=run, events=[NewTraceEvent(type="note", data={}, cost=Decimal("1"))]
                )
                appended.set()
                release.wait(timeout=10)  # commit only once the request waits for the run
        finally:
            connection.close()

    appender = threading.Thread(target=append_and_hold)
    appender.start()
    assert appended.wait(timeout=10)
    submission = Submission(tool="t", arguments={}, timeout="30m", run=str(run.code))
    results: list[Any] = []
    creator = threading.Thread(
        target=lambda: results.extend(
            run_at_once(
                [
                    lambda: approval_request_create(
                        agent=agent, idempotency_key="k", submission=submission
                    )
                ]
            )
        )
    )
    creator.start()
    try:
        # On PostgreSQL the request must wait for the append's commit, not read past it; SQLite
        # serializes writers, so there it runs after the commit whatever we wait for.
        if connection.vendor == "postgresql":
            assert a_query_waits_on_a_lock(), "the request did not wait for the run's lock"
    finally:
        release.set()
        appender.join(timeout=10)
        creator.join(timeout=30)
    errors = raised(results)
    assert not errors, errors
    approval = ApprovalRequest.objects.get(agent=agent)
    assert approval.status == Status.PENDING
    assert "Budget “cap” reached" in approval.hold_reason


def _batch_creator(agent, prefix: str, size: int = 3) -> Callable[[], Any]:
    submission = Submission(tool="issue_refund", arguments={"amount": 1}, timeout="30m")
    batch = [
        NewApprovalRequest(agent=agent, idempotency_key=f"{prefix}-{i}", submission=submission)
        for i in range(size)
    ]
    return lambda: approval_requests_create(batch)


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.django_db(transaction=True)
def test_it_leaves_nothing_pending_when_a_halt_races_new_requests(batch_size: int) -> None:
    # Alone, a creation takes the agent's row exclusively; a batch with no throttle, running
    # total or circuit breaker takes it in shared mode. A halt must win cleanly either way.
    halter = UserFactory()
    for round_number in range(3):
        agent = AgentFactory()
        actions = [
            _batch_creator(agent, f"h{round_number}-{i}", size=batch_size)
            for i in range(THREADS - 1)
        ]
        actions.append(partial(agent_halt, agent=agent, reason="stop", halted_by=halter))
        errors = _crashes(actions)
        assert not errors, errors
        assert ApprovalRequest.objects.filter(agent=agent).count() == batch_size * (THREADS - 1)
        # Every request either came before the halt (cancelled) or after it (denied).
        assert not ApprovalRequest.objects.filter(agent=agent, status=Status.PENDING).exists()


def _decide_and_hold(
    agent,
    *,
    exclusive: bool,
    decided: threading.Event,
    release: threading.Event,
) -> Callable[[], Any]:
    def action() -> None:
        with transaction.atomic():
            question = PolicyQuestion(
                agent=agent, submission=Submission(tool="t", arguments={}, timeout="30m")
            )
            policy_decide_many([question], now=timezone.now(), exclusive=exclusive)
            decided.set()
            release.wait(timeout=30)  # the lock is held until this transaction ends

    return action


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.django_db(transaction=True)
def test_shared_decisions_do_not_wait_for_each_other_but_a_halt_waits_for_them(
    exclusive: bool,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks exist on PostgreSQL only (SQLite serializes every writer)")
    agent = AgentFactory()
    first, second, release = threading.Event(), threading.Event(), threading.Event()
    halted = threading.Event()

    def halt() -> None:
        agent_halt(agent=agent, reason="stop", halted_by=None)
        halted.set()

    holder = threading.Thread(
        target=run_at_once,
        args=([_decide_and_hold(agent, exclusive=exclusive, decided=first, release=release)],),
    )
    holder.start()
    threads = [holder]
    try:
        assert first.wait(timeout=10)
        other = threading.Thread(
            target=run_at_once,
            args=([_decide_and_hold(agent, exclusive=exclusive, decided=second, release=release)],),
        )
        other.start()
        threads.append(other)
        # Shared: the second decision goes ahead while the first still holds its lock.
        # Exclusive: it waits for the first transaction to end.
        if exclusive:
            assert not second.wait(timeout=1.0)
        else:
            assert second.wait(timeout=10)
        halter = threading.Thread(target=run_at_once, args=([halt],))
        halter.start()
        threads.append(halter)
        # Either way, the halt waits until every decision in flight has committed.
        assert not halted.wait(timeout=0.5)
    finally:
        release.set()  # a failed assertion must not leave the lock holders waiting
        for thread in threads:
            thread.join(timeout=30)
    assert second.is_set() and halted.is_set()
