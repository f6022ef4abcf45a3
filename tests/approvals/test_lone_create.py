"""A request alone (the usual case below full load): what it waits on, and that its shortcuts
keep the rules of a batch. A lone creation skips the batch's lookup by idempotency key (the
unique key answers a replay), reads the policy's version with the agent's lock, and inserts
its rows in the round trip that locks the audit chain's head."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.audit import audit_chain_verify
from approvals.exceptions import IdempotencyConflict
from approvals.models import ApprovalRequest, AuditRecord, Status
from approvals.policies.halts import agent_halt
from approvals.services import approval_request_create
from tests.factories import AgentFactory, PolicyRuleFactory, UserFactory, build_submission

pytestmark = pytest.mark.django_db

_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="round trips of PostgreSQL's path")
def test_a_lone_request_the_policy_approves_waits_on_five_statements() -> None:
    PolicyRuleFactory(name="approve reads", outcome="approve", tool_glob="read_*", reason="Safe.")
    agent = AgentFactory()
    approval_request_create(agent=agent, idempotency_key="warm", submission=build_submission())
    with CaptureQueriesContext(connection) as queries:
        approval, created = approval_request_create(
            agent=agent, idempotency_key="k", submission=build_submission("read_file")
        )
    statements = [
        q["sql"] for q in queries.captured_queries if not q["sql"].startswith(_TRANSACTION_CONTROL)
    ]
    # The agent's lock with the policy's version; its halts; the request's id; its rows with
    # the audit head's lock and the records' ids; the records with the head's move. Before:
    # nine (a lookup by key, the version, the head's lock and the records' ids on their own).
    assert len(statements) == 5, statements
    assert created and approval.status == Status.APPROVED


def test_a_lone_replay_gets_the_stored_request_and_writes_nothing() -> None:
    agent = AgentFactory()
    submission = build_submission()
    first, created = approval_request_create(
        agent=agent, idempotency_key="k", submission=submission
    )
    records = AuditRecord.objects.count()

    again, created_again = approval_request_create(
        agent=agent, idempotency_key="k", submission=submission
    )

    assert created and not created_again
    assert again.pk == first.pk
    assert ApprovalRequest.objects.count() == 1
    assert AuditRecord.objects.count() == records
    assert audit_chain_verify().ok


def test_a_lone_replay_with_other_fields_is_a_conflict() -> None:
    agent = AgentFactory()
    approval_request_create(agent=agent, idempotency_key="k", submission=build_submission())
    with pytest.raises(IdempotencyConflict):
        approval_request_create(
            agent=agent,
            idempotency_key="k",
            submission=build_submission(arguments={"payment_id": "pay_2", "amount": 1}),
        )
    assert ApprovalRequest.objects.count() == 1


def test_a_lone_replay_after_a_halt_gets_the_request_as_it_was_not_a_denial() -> None:
    # The replay now goes as far as the insert: the halt's denial it is decided with there
    # must not reach the agent, nor the database.
    agent = AgentFactory()
    submission = build_submission()
    first, _ = approval_request_create(agent=agent, idempotency_key="k", submission=submission)
    agent_halt(agent=agent, halted_by=UserFactory(), reason="incident")
    first.refresh_from_db()

    again, created = approval_request_create(
        agent=agent, idempotency_key="k", submission=submission
    )

    assert not created and again.pk == first.pk and again.status == first.status
    assert ApprovalRequest.objects.count() == 1
    assert audit_chain_verify().ok
