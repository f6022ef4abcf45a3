"""A request alone (the usual case below full load): what it waits on, and that its shortcuts
keep the rules of a batch. A lone creation skips the batch's lookup by idempotency key (the
unique key answers a replay), reads the policy's version with the agent's lock, and inserts
its rows in the round trip that locks the audit chain's head."""

import pytest
from django.db import connection

from approvals.audit import audit_chain_verify
from approvals.exceptions import IdempotencyConflict
from approvals.models import ApprovalRequest, AuditRecord, Status
from approvals.policies.halts import agent_halt
from approvals.services import approval_request_create, approval_requests_create
from approvals.services.creation import NewApprovalRequest
from tests.factories import (
    AgentFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    build_submission,
)
from tests.wire import round_trips

pytestmark = pytest.mark.django_db


@pytest.mark.skipif(connection.vendor != "postgresql", reason="round trips of PostgreSQL's path")
@pytest.mark.django_db(transaction=True)  # the creation's own BEGIN and COMMIT, not savepoints
@pytest.mark.parametrize("rule_names_a_team", [False, True])
def test_a_lone_request_the_policy_approves_waits_on_three_round_trips(
    rule_names_a_team: bool,
) -> None:
    # A rule naming a team gives the request that team with no read of it: the team's id comes
    # with the rule the policy loaded, and nobody needs its name for a request nobody decides.
    team = TeamFactory(name="ops") if rule_names_a_team else None
    PolicyRuleFactory(
        name="approve reads", outcome="approve", tool_glob="read_*", reason="Safe.", team=team
    )
    agent = AgentFactory()
    approval_request_create(agent=agent, idempotency_key="warm", submission=build_submission())
    with round_trips() as trips:
        approval, created = approval_request_create(
            agent=agent, idempotency_key="k", submission=build_submission("read_file")
        )
    # BEGIN with the agent's lock and the policy's version, then its halts and the request's
    # id; its rows, then the audit head's lock with the records' ids; the records, the head's
    # move and the COMMIT. Before: four (the records and the head's move had a round trip of
    # their own before the COMMIT's), five before that (psycopg's BEGIN alone), seven before
    # that (the halts waited for the lock's answer, and the id for the verdict), and nine
    # statements before that (a lookup by key, the version, the head's lock and the records'
    # ids on their own).
    # Up to its commit: after it, the push to reviewers reads the row if a reviewer's socket is
    # open somewhere (an earlier test's may still count), and no agent waits on that.
    committed = next(n for n, trip in enumerate(trips) if '"COMMIT"' in trip)
    assert committed + 1 == 3, "\n".join(trips)
    assert created and approval.status == Status.APPROVED
    assert approval.team_id == (team.pk if team else None)


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


@pytest.mark.skipif(connection.vendor != "postgresql", reason="round trips of PostgreSQL's path")
@pytest.mark.django_db(transaction=True)
def test_a_batchs_fixed_statements_are_prepared_and_its_begin_rides_with_the_first() -> None:
    PolicyRuleFactory(name="approve reads", outcome="approve", tool_glob="read_*", reason="Safe.")
    agent = AgentFactory()

    def batch(prefix: str) -> list[NewApprovalRequest]:
        return [
            NewApprovalRequest(
                agent=agent,
                idempotency_key=f"{prefix}{number}",
                submission=build_submission("read_file"),
            )
            for number in range(3)
        ]

    approval_requests_create(batch("warm"))  # statements prepared
    with round_trips() as trips:
        results = approval_requests_create(batch("k"))
    # The lookup of replays (before the transaction); BEGIN with the policy's version; the
    # agents' lock, halts and ids; a COPY per table of the requests' rows; the audit head's lock;
    # the records with the head's move and the COMMIT. Only the COPYs are simple queries: the
    # fixed statements are bound to statements already prepared.
    # Up to its commit (after it, a push to reviewers may read, as for a lone request).
    trips = trips[: next(n for n, trip in enumerate(trips) if '"COMMIT"' in trip) + 1]
    assert len(trips) == 9, "\n".join(trips)
    assert "BEGIN" in trips[1], trips[1]
    unprepared = [t for t in trips if not t.startswith(("Bind", 'Parse  "" "BEGIN"'))]
    assert all(t.startswith('Query  "COPY') for t in unprepared), unprepared
    assert all(result.created for result in results)
