"""Creating many requests in one batch gives what creating them one by one would, in fewer queries.

approval_requests_create writes a whole batch in one transaction; these tests hold it to the
one-at-a-time rules: idempotency (in the batch and against stored rows), unknown and closed
runs, policy verdicts, throttles and circuit breakers that see earlier requests of the same
batch, the audit chain, and a concurrent writer of the same key.
"""

import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from agents.models import AgentHalt, RunStatus
from agents.services import run_close, run_open
from approvals.agent_view import approval_request_representation
from approvals.audit import AuditAction, audit_chain_verify
from approvals.exceptions import IdempotencyConflict, UnknownRun
from approvals.models import ApprovalRequest, AuditRecord, Decision, Status
from approvals.policies.models import CircuitBreaker, PolicyEvaluation, Throttle
from approvals.services import (
    CreateResult,
    NewApprovalRequest,
    Submission,
    approval_requests_create,
)
from console import row_inserts
from console.request_context import RequestContext
from tests.factories import (
    AgentFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    build_submission,
)
from tests.waits import a_query_waits_on_a_lock

pytestmark = pytest.mark.django_db


def _new(agent, key: str, submission: Submission, **extra: Any) -> NewApprovalRequest:
    return NewApprovalRequest(agent=agent, idempotency_key=key, submission=submission, **extra)


def _approval_rules() -> None:
    PolicyRuleFactory(name="approve reads", outcome="approve", tool_glob="read_*", reason="Safe.")
    PolicyRuleFactory(name="deny drops", outcome="deny", tool_glob="drop_*", reason="Never.")
    PolicyRuleFactory(name="hold refunds", outcome="hold", tool_glob="issue_*", reason="Money.")


def _outcome(result: CreateResult) -> tuple[Any, ...]:
    """What an agent and an auditor can see of one result, without ids and times."""
    if result.error is not None:
        return ("error", type(result.error).__name__)
    assert result.approval is not None
    stored = ApprovalRequest.objects.get(pk=result.approval.pk)
    assert stored.status == result.approval.status
    evaluation = PolicyEvaluation.objects.get(approval=stored)
    decision = Decision.objects.filter(approval=stored).first()
    return (
        result.created,
        stored.idempotency_key,
        stored.status,
        stored.tool,
        stored.hold_reason,
        stored.timeout_seconds,
        evaluation.outcome,
        evaluation.decided_by,
        evaluation.rule_name,
        evaluation.reason,
        None if decision is None else (decision.status, decision.note, decision.reviewer_id),
        stored.events.count(),
    )


class _Fleet:
    """Three agents with what they need for the mixed batch: runs and stored earlier requests."""

    def __init__(self) -> None:
        self.a, self.b, self.c = AgentFactory(), AgentFactory(), AgentFactory()
        self.open_run, _ = run_open(agent=self.c, name="nightly")
        closed, _ = run_open(agent=self.c, name="yesterday")
        self.closed_run = run_close(run=closed, status=RunStatus.COMPLETED)
        # A run of another agent: unknown to C, exactly like a made-up id.
        self.foreign_run, _ = run_open(agent=self.a, name="not yours")
        approval_requests_create([_new(self.b, "stored-same", build_submission())])
        approval_requests_create([_new(self.b, "stored-other", build_submission())])

    def submissions(self) -> list[NewApprovalRequest]:
        return [
            _new(self.a, "a-read", build_submission("read_file", arguments={"path": "/etc/motd"})),
            _new(self.a, "a-drop", build_submission("drop_table", arguments={"table": "users"})),
            _new(self.b, "b-refund", build_submission()),
            # The same key again in this batch, same fields: a replay of the first.
            _new(self.a, "a-read", build_submission("read_file", arguments={"path": "/etc/motd"})),
            _new(self.b, "stored-same", build_submission()),
            _new(self.b, "stored-other", build_submission(arguments={"amount": 1})),
            _new(self.c, "c-foreign", build_submission(run=str(self.foreign_run.code))),
            _new(self.c, "c-made-up", build_submission(run=str(uuid.uuid4()))),
            _new(self.c, "c-closed", build_submission("read_file", run=str(self.closed_run.code))),
            _new(self.c, "c-open", build_submission("read_file", run=str(self.open_run.code))),
            # The same key again in this batch, different fields: a conflict.
            _new(self.b, "b-refund", build_submission(arguments={"amount": 2})),
        ]


def test_a_mixed_batch_ends_as_the_same_submissions_one_by_one() -> None:
    _approval_rules()
    batched, alone = _Fleet(), _Fleet()

    batch_results = approval_requests_create(batched.submissions())
    one_by_one = [approval_requests_create([new])[0] for new in alone.submissions()]

    assert [_outcome(r) for r in batch_results] == [_outcome(r) for r in one_by_one]
    outcomes = [_outcome(r) for r in batch_results]
    # The verdicts are the ones the rules and runs call for, not merely equal to each other.
    assert [o[2] if o[0] != "error" else o[1] for o in outcomes] == [
        Status.APPROVED,
        Status.DENIED,
        Status.PENDING,
        Status.APPROVED,
        Status.PENDING,
        "IdempotencyConflict",
        "UnknownRun",
        "UnknownRun",
        Status.DENIED,
        Status.APPROVED,
        "IdempotencyConflict",
    ]
    assert [o[0] for o in outcomes if o[0] != "error"] == [
        True,
        True,
        True,
        False,
        False,
        True,
        True,
    ]
    assert outcomes[8][7] == "run"  # the closed run denied it, whatever the rule says
    assert isinstance(batch_results[5].error, IdempotencyConflict)
    assert isinstance(batch_results[6].error, UnknownRun)
    # The in-batch replay is the very request the first one created.
    assert batch_results[3].approval is not None and batch_results[0].approval is not None
    assert batch_results[3].approval.pk == batch_results[0].approval.pk


def test_a_mixed_batch_stores_nothing_for_the_items_that_failed() -> None:
    _approval_rules()
    fleet = _Fleet()
    original = ApprovalRequest.objects.get(agent=fleet.b, idempotency_key="stored-other")

    approval_requests_create(fleet.submissions())

    assert sorted(
        ApprovalRequest.objects.filter(agent=fleet.a).values_list("idempotency_key", flat=True)
    ) == [
        "a-drop",
        "a-read",
    ]
    assert sorted(
        ApprovalRequest.objects.filter(agent=fleet.b).values_list("idempotency_key", flat=True)
    ) == [
        "b-refund",
        "stored-other",
        "stored-same",
    ]
    assert sorted(
        ApprovalRequest.objects.filter(agent=fleet.c).values_list("idempotency_key", flat=True)
    ) == [
        "c-closed",
        "c-open",
    ]
    conflicted = ApprovalRequest.objects.get(pk=original.pk)
    assert (conflicted.arguments, conflicted.fingerprint) == (
        original.arguments,
        original.fingerprint,
    )
    b_refund = ApprovalRequest.objects.get(agent=fleet.b, idempotency_key="b-refund")
    assert b_refund.arguments == {"payment_id": "pay_1", "amount": 4900}
    # One submitted record per stored request, no more: failed items left no audit trace.
    submitted = AuditRecord.objects.filter(action=AuditAction.REQUEST_SUBMITTED)
    assert submitted.count() == ApprovalRequest.objects.count()


def test_the_audit_chain_holds_and_tells_each_request_from_its_own_exchange() -> None:
    _approval_rules()
    agents = [AgentFactory(), AgentFactory()]
    tools = ["read_file", "drop_table", "issue_refund"] * 3
    batch = [
        _new(
            agents[i % 2],
            f"k{i}",
            build_submission(tool, arguments={"n": i}),
            origin=RequestContext(
                request_id=f"req-{i}", ip_address="192.0.2.7", user_agent=f"ua-{i}"
            ),
        )
        for i, tool in enumerate(tools)
    ]
    # One item without an origin: it takes the context bound now (none here).
    batch.append(_new(agents[0], "no-origin", build_submission("read_file", arguments={"n": 99})))

    results = approval_requests_create(batch)

    assert audit_chain_verify().ok
    expected_terminal = {
        Status.APPROVED: AuditAction.REQUEST_APPROVED,
        Status.DENIED: AuditAction.REQUEST_DENIED,
    }
    for new, result in zip(batch, results, strict=True):
        approval, created = result.unwrap()
        assert created
        records = list(
            AuditRecord.objects.filter(object_id=str(approval.code)).order_by("sequence")
        )
        actions = [record.action for record in records]
        wanted = [AuditAction.REQUEST_SUBMITTED, AuditAction.POLICY_DECIDED]
        if approval.status in expected_terminal:
            wanted.append(expected_terminal[approval.status])
        assert actions == wanted, (new.idempotency_key, approval.status, actions)
        origin = new.origin or RequestContext()
        for record in records:
            assert (record.request_id, record.ip_address, record.user_agent) == (
                origin.request_id,
                origin.ip_address,
                origin.user_agent,
            )
        submitted = records[0]
        assert (submitted.actor_type, submitted.actor_id) == ("agent", str(new.agent.code))
    assert {r.approval.status for r in results if r.approval} == {
        Status.APPROVED,
        Status.DENIED,
        Status.PENDING,
    }


@pytest.fixture
def batch_inserts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows go in as a batch's do (a COPY per table) at every size: a lone request's few rows
    take one statement instead (console.row_inserts), which is fewer round trips, not more."""
    monkeypatch.setattr(row_inserts, "ONE_STATEMENT_MAX_ROWS", 0)


def _queries_for(batch: list[NewApprovalRequest]) -> int:
    """Creating the batch and the answers the agents get (the intake renders them in turn)."""
    with CaptureQueriesContext(connection) as queries:
        results = approval_requests_create(batch)
        answers = [approval_request_representation(r.approval) for r in results if r.approval]
    assert all(result.created for result in results)
    assert all(answer["outcome"] is None for answer in answers)
    return len(queries.captured_queries)


@pytest.mark.parametrize(
    ("tool", "status"), [("issue_refund", Status.PENDING), ("read_file", Status.APPROVED)]
)
@pytest.mark.usefixtures("batch_inserts")
def test_a_batch_costs_the_same_queries_whatever_its_size(tool: str, status: str) -> None:
    _approval_rules()
    agents = [AgentFactory() for _ in range(3)]

    def batch(size: int, prefix: str) -> list[NewApprovalRequest]:
        return [
            _new(agents[i % 3], f"{prefix}{i}", build_submission(tool, arguments={"n": i}))
            for i in range(size)
        ]

    approval_requests_create(batch(3, "warm"))  # caches (rules, content types) filled
    small, large = _queries_for(batch(2, "s")), _queries_for(batch(40, "l"))

    assert small == large, (small, large)
    assert set(ApprovalRequest.objects.values_list("status", flat=True)) == {status}


@pytest.mark.usefixtures("batch_inserts")
def test_a_batch_of_team_routed_held_requests_costs_the_same_queries_whatever_its_size() -> None:
    team = TeamFactory(members=[UserFactory(), UserFactory()])
    PolicyRuleFactory(name="hold for the team", outcome="hold", team=team, reason="Theirs.")
    agents = [AgentFactory() for _ in range(3)]

    def batch(size: int, prefix: str) -> list[NewApprovalRequest]:
        return [
            _new(agents[i % 3], f"{prefix}{i}", build_submission(arguments={"n": i}))
            for i in range(size)
        ]

    approval_requests_create(batch(3, "warm"))
    small, large = _queries_for(batch(2, "s")), _queries_for(batch(40, "l"))

    assert ApprovalRequest.objects.filter(team=team, status=Status.PENDING).count() == 45
    assert small == large, (small, large)


def test_a_running_total_sees_the_approvals_earlier_in_the_same_batch() -> None:
    PolicyRuleFactory(
        name="too much at once",
        position=1,
        total_path="amount",
        total_window_seconds=3600,
        total_above=250,
        outcome="hold",
        reason="Over 250 within the hour.",
    )
    PolicyRuleFactory(name="approve the rest", position=2, outcome="approve", reason="Small.")
    batched, alone = AgentFactory(), AgentFactory()

    def refunds(agent, prefix: str) -> list[NewApprovalRequest]:
        return [
            _new(agent, f"{prefix}{i}", build_submission(arguments={"amount": 100, "n": i}))
            for i in range(4)
        ]

    batch_results = approval_requests_create(refunds(batched, "b"))
    one_by_one = [approval_requests_create([new])[0] for new in refunds(alone, "a")]

    expected = [(Status.APPROVED, "rule")] * 2 + [(Status.PENDING, "rule")] * 2
    assert _decided_by(one_by_one) == expected
    assert _decided_by(batch_results) == expected


def _throttled_setup() -> None:
    PolicyRuleFactory(name="approve all", outcome="approve", reason="Fine.")
    Throttle.objects.create(name="two a minute", max_auto_approvals=2, window_seconds=600)


def test_a_throttle_sees_the_auto_approvals_earlier_in_the_same_batch() -> None:
    _throttled_setup()
    agent = AgentFactory()

    results = approval_requests_create(
        [_new(agent, f"t{i}", build_submission("read_file", arguments={"n": i})) for i in range(5)]
    )

    statuses = [r.approval.status for r in results if r.approval]
    assert statuses == [Status.APPROVED] * 2 + [Status.PENDING] * 3
    held = PolicyEvaluation.objects.filter(approval__agent=agent, outcome="hold")
    assert sorted(held.values_list("decided_by", flat=True)) == ["throttle"] * 3


def test_a_throttle_counts_each_agent_of_an_interleaved_batch_apart() -> None:
    _throttled_setup()
    first, second = AgentFactory(), AgentFactory()
    batch = [
        _new(agent, f"t{i}", build_submission("read_file", arguments={"n": i}))
        for i in range(4)
        for agent in (first, second)
    ]

    results = approval_requests_create(batch)

    for agent in (first, second):
        statuses = [
            r.approval.status for r in results if r.approval and r.approval.agent_id == agent.pk
        ]
        assert statuses == [Status.APPROVED, Status.APPROVED, Status.PENDING, Status.PENDING]


def _breaker_batch(agent, prefix: str) -> list[NewApprovalRequest]:
    return [
        _new(agent, f"{prefix}-1", build_submission("drop_table", arguments={"n": 1})),
        _new(agent, f"{prefix}-2", build_submission("issue_refund", arguments={"n": 2})),
        _new(agent, f"{prefix}-3", build_submission("drop_table", arguments={"n": 3})),
        _new(agent, f"{prefix}-4", build_submission("read_file", arguments={"n": 4})),
        _new(agent, f"{prefix}-5", build_submission("issue_refund", arguments={"n": 5})),
    ]


def _decided_by(results: list[CreateResult]) -> list[tuple[str, str]]:
    outcome = []
    for result in results:
        approval, _ = result.unwrap()
        stored = ApprovalRequest.objects.select_related("policy_evaluation").get(pk=approval.pk)
        outcome.append((stored.status, stored.policy_evaluation.decided_by))
    return outcome


def test_a_circuit_breaker_tripped_inside_a_batch_denies_the_rest_as_one_by_one() -> None:
    _approval_rules()
    CircuitBreaker.objects.create(name="two strikes", max_denials=2, window_seconds=600)
    batched, alone = AgentFactory(), AgentFactory()
    bystander = AgentFactory()

    batch_results = approval_requests_create(
        [*_breaker_batch(batched, "b"), _new(bystander, "x", build_submission("read_file"))]
    )
    one_by_one = [approval_requests_create([new])[0] for new in _breaker_batch(alone, "a")]

    expected = [
        (Status.DENIED, "rule"),
        # Held before the breaker tripped, then cancelled by the halt the second denial caused.
        (Status.CANCELLED, "rule"),
        (Status.DENIED, "rule"),
        (Status.DENIED, "halt"),
        (Status.DENIED, "halt"),
    ]
    assert _decided_by(one_by_one) == expected
    assert _decided_by(batch_results[:5]) == expected
    assert _decided_by(batch_results[5:]) == [(Status.APPROVED, "rule")]
    assert AgentHalt.objects.filter(agent=batched, resumed_at__isnull=True).count() == 1
    assert not AgentHalt.objects.filter(agent=bystander).exists()
    assert audit_chain_verify().ok


@pytest.mark.django_db(transaction=True)
def test_a_batch_racing_a_single_create_of_the_same_key_yields_one_request() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("real concurrency needs PostgreSQL (SQLite serializes every writer)")
    for round_number in range(5):
        agent = AgentFactory()
        submission = build_submission(arguments={"round": round_number})
        shared = _new(agent, "K", submission)
        batch = [
            shared,
            _new(agent, "K2", replace(submission, summary="two")),
            _new(agent, "K3", replace(submission, summary="three")),
        ]
        outcomes: dict[str, list[CreateResult]] = {}
        errors = _in_parallel(
            {
                "alone": partial(approval_requests_create, [shared]),
                "batch": partial(approval_requests_create, batch),
            },
            outcomes,
        )

        assert not errors, errors
        for results in outcomes.values():
            assert all(result.error is None and result.approval is not None for result in results)
        ids_for_k = {outcomes["alone"][0].approval.pk, outcomes["batch"][0].approval.pk}
        assert len(ids_for_k) == 1
        assert ApprovalRequest.objects.filter(agent=agent, idempotency_key="K").count() == 1
        assert [outcomes["alone"][0].created, outcomes["batch"][0].created].count(True) == 1
        assert sorted(
            ApprovalRequest.objects.filter(agent=agent).values_list("idempotency_key", flat=True)
        ) == ["K", "K2", "K3"]
        assert all(r.created for r in outcomes["batch"][1:])
    assert audit_chain_verify().ok


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_meets_a_key_committed_meanwhile_is_retried_item_by_item() -> None:
    """Deterministic version of the race: the batch has looked for existing keys and waits on
    the agent's lock while another transaction inserts one of its keys and commits."""
    if connection.vendor != "postgresql":
        pytest.skip("needs two concurrent transactions (SQLite serializes every writer)")
    agent = AgentFactory()
    submission = build_submission(arguments={"amount": 7})
    key = _new(agent, "K", submission)
    batch = [key, _new(agent, "K2", submission), _new(agent, "K3", submission)]
    inserted, release = threading.Event(), threading.Event()
    outcomes: dict[str, list[CreateResult]] = {}
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with transaction.atomic():
                outcomes["first"] = approval_requests_create([key])
                inserted.set()  # uncommitted, and the agent's row stays locked
                release.wait(timeout=30)
        except BaseException as error:  # surfaced below: a crash is a failure
            errors.append(error)
        finally:
            inserted.set()
            connection.close()

    def second() -> None:
        try:
            inserted.wait(timeout=30)
            outcomes["batch"] = approval_requests_create(batch)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    waited_on_lock = a_query_waits_on_a_lock()
    release.set()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    assert waited_on_lock, "the batch never waited for the first transaction's lock"
    stored = ApprovalRequest.objects.get(agent=agent, idempotency_key="K")
    assert outcomes["first"][0].created and outcomes["first"][0].approval.pk == stored.pk
    replayed, created_k2, created_k3 = outcomes["batch"]
    assert (replayed.created, replayed.error) == (False, None)
    assert replayed.approval is not None and replayed.approval.pk == stored.pk
    assert created_k2.created and created_k3.created
    assert ApprovalRequest.objects.filter(agent=agent).count() == 3
    submitted = AuditRecord.objects.filter(action=AuditAction.REQUEST_SUBMITTED)
    assert submitted.count() == 3
    assert audit_chain_verify().ok


def _in_parallel(
    actions: dict[str, Callable[[], list[CreateResult]]], outcomes: dict[str, list[CreateResult]]
) -> list[BaseException]:
    barrier = threading.Barrier(len(actions))
    errors: list[BaseException] = []

    def run(name: str, action: Callable[[], list[CreateResult]]) -> None:
        try:
            barrier.wait()
            outcomes[name] = action()
        except BaseException as error:  # surfaced by the caller: a crash is a failure
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=item) for item in actions.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_held_requests_no_team_is_told_of_are_not_read_back() -> None:
    # Nobody is paged for a request held without a team: reading the batch back for the
    # notifications (every held row, whole) cost every creation a query and its decoding.
    agent = AgentFactory()
    approval_requests_create([_new(agent, "warm", build_submission(arguments={"n": 0}))])
    batch = [_new(agent, f"k{i}", build_submission(arguments={"n": i})) for i in range(1, 5)]
    with CaptureQueriesContext(connection) as queries:
        results = approval_requests_create(batch)
    assert {r.approval.status for r in results if r.approval} == {Status.PENDING}
    read_back = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT")
        and 'FROM "approvals_approvalrequest"' in q["sql"]
        and "idempotency_key" not in q["sql"].rpartition("WHERE")[2]  # the replay check's
    ]
    assert read_back == []
