"""Credentials the intake verified lately (agents/remembered_credentials.py): a caller seen before
skips the lookup's round trip, and its lookup rides in the creation's transaction instead, so a
revocation still stops it before anything is written."""

import uuid
from collections.abc import Iterator

import pytest
from django.db import connection

from agents import remembered_credentials
from agents.api.fast_path import _render_created
from agents.api.intake import IntakeBatcher, IntakeItem
from agents.remembered_credentials import credentials_authenticate_remembered
from agents.services import credential_issue, credential_revoke
from approvals.models import ApprovalRequest, AuditRecord
from console.request_context import RequestContext
from tests.factories import AgentFactory, PolicyRuleFactory, build_submission
from tests.wire import round_trips

# transaction=True: the intake writer closes its connection after each batch, as in a server.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _nothing_remembered() -> Iterator[None]:
    remembered_credentials._remembered.clear()
    yield
    remembered_credentials._remembered.clear()


def _item(token: str, tool: str = "read_file") -> IntakeItem:
    return IntakeItem(
        token=token,
        idempotency_key=str(uuid.uuid4()),
        submission=build_submission(tool),
        origin=RequestContext(request_id="r", ip_address="127.0.0.1", user_agent="t"),
    )


def _written(batcher: IntakeBatcher, *tokens: str) -> list[ApprovalRequest | None]:
    outcomes, _ = batcher._write([_item(token) for token in tokens], lambda _: None)
    return [outcome.result.approval if outcome.result is not None else None for outcome in outcomes]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="round trips of PostgreSQL's path")
@pytest.mark.django_db(transaction=True)  # the creation's own BEGIN and COMMIT
def test_a_caller_seen_before_has_its_credential_looked_up_with_the_agents_lock() -> None:
    PolicyRuleFactory(name="approve reads", outcome="approve", tool_glob="read_*", reason="Safe.")
    token = credential_issue(agent=AgentFactory()).plaintext
    batcher = IntakeBatcher(_render_created)
    _written(batcher, token)  # verified and remembered; statements prepared
    item = _item(token)
    # What the writer does, within one connection (it closes its connection after each batch).
    with round_trips() as trips:
        agents, still_active = credentials_authenticate_remembered(tokens=[token])
        _, (result,) = batcher._create([item], agents, still_active)
    approval = result.approval
    committed = next((n for n, trip in enumerate(trips) if '"COMMIT"' in trip), None)
    assert committed is not None, "\n".join(trips)
    # BEGIN with the agent's lock, its halts, the request's id and the credential's lookup; the
    # rows with the audit head's lock; the records with the COMMIT. On the old code: the
    # lookup first, in a round trip of its own (four).
    assert committed + 1 == 3, "\n".join(trips)
    assert "BEGIN" in trips[0], trips[0]
    assert approval is not None and approval.status == "approved"


def test_a_credential_revoked_after_it_was_remembered_creates_nothing() -> None:
    agent = AgentFactory()
    issued = credential_issue(agent=agent)
    batcher = IntakeBatcher(_render_created)
    assert _written(batcher, issued.plaintext)[0] is not None
    requests, records = ApprovalRequest.objects.count(), AuditRecord.objects.count()

    credential_revoke(credential=issued.credential)
    assert _written(batcher, issued.plaintext) == [None]  # not authenticated: Django says 401

    assert ApprovalRequest.objects.count() == requests
    revocation_only = AuditRecord.objects.count() - records
    assert revocation_only == 1  # the revocation's own record, nothing of a creation
    # Forgotten: the next call is looked up afresh, and refused there.
    assert credentials_authenticate_remembered(tokens=[issued.plaintext]) == (
        {issued.plaintext: None},
        None,
    )


def test_a_batch_with_a_revoked_credential_still_creates_the_others() -> None:
    kept, revoked = credential_issue(agent=AgentFactory()), credential_issue(agent=AgentFactory())
    batcher = IntakeBatcher(_render_created)
    _written(batcher, kept.plaintext, revoked.plaintext)
    credential_revoke(credential=revoked.credential)

    created, refused = _written(batcher, kept.plaintext, revoked.plaintext)

    assert created is not None and created.agent_id == kept.credential.agent_id
    assert refused is None


def test_a_rename_after_the_credential_was_remembered_is_what_the_creation_records() -> None:
    agent = AgentFactory(name="old name")
    token = credential_issue(agent=agent).plaintext
    batcher = IntakeBatcher(_render_created)
    _written(batcher, token)
    agent.name = "new name"
    agent.save()

    (approval,) = _written(batcher, token)

    assert approval is not None
    submitted = AuditRecord.objects.filter(
        action="request.submitted", object_id=str(approval.code)
    ).get()
    assert submitted.actor_label == "new name"


def test_a_wrong_secret_for_a_remembered_prefix_is_looked_up_and_refused() -> None:
    token = credential_issue(agent=AgentFactory()).plaintext
    batcher = IntakeBatcher(_render_created)
    _written(batcher, token)
    forged = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")

    assert _written(batcher, forged) == [None]
    assert credentials_authenticate_remembered(tokens=[forged]) == ({forged: None}, None)


def test_only_digests_of_tokens_are_kept_and_the_oldest_go_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remembered_credentials, "REMEMBERED_MAX", 2)
    tokens = [credential_issue(agent=AgentFactory()).plaintext for _ in range(3)]
    for token in tokens:
        credentials_authenticate_remembered(tokens=[token])

    kept = remembered_credentials._remembered
    assert len(kept) == 2
    assert not any(token in repr(kept) for token in tokens)
    assert not any(token.split("_", 2)[2] in repr(kept) for token in tokens)  # nor secrets
    _, check_first = credentials_authenticate_remembered(tokens=[tokens[0]])
    assert check_first is None  # the oldest was forgotten: looked up again
    _, check_last = credentials_authenticate_remembered(tokens=[tokens[2]])
    assert check_last is not None  # remembered: its lookup rides with the creation
