"""Write paths for agents, their credentials, and their runs and traces."""

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from agents.events import RunHalted, ToolResultsTraced, TracedToolResult
from agents.exceptions import IdempotencyConflict, RunClosed, RunExternalIdConflict
from agents.models import (
    CLOSED_RUN_STATUSES,
    Agent,
    AgentCredential,
    ProvisionerToken,
    Run,
    RunStatus,
    TraceEvent,
    TraceEventType,
)
from approvals.audit import AuditAction, audit_record
from approvals.reasons import AgentValue, Reason
from console.events import emit
from console.hot_statements import (
    Statement,
    columns_of,
    instance_from_row,
    statements_rows,
    values_in,
)

CREDENTIAL_SCHEME = "aac"
PROVISIONER_SCHEME = "aapp"


@dataclass(frozen=True)
class IssuedCredential:
    """A credential as issued: `plaintext` exists only here, never in the database."""

    credential: AgentCredential
    plaintext: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Who acted: a reviewer (user), or None when the console itself or an operator's shell did.
Actor = User | None


@transaction.atomic
def agent_create(*, name: str, description: str = "", actor: Actor = None) -> Agent:
    agent = Agent.objects.create(name=name, description=description)
    audit_record(
        action=AuditAction.AGENT_CREATED,
        actor=actor,
        target=agent,
        after={"name": name, "description": description},
    )
    return agent


@transaction.atomic
def agent_create_with_credential(
    *, name: str, description: str = "", actor: Actor = None
) -> IssuedCredential:
    agent = agent_create(name=name, description=description, actor=actor)
    return credential_issue(agent=agent, label="initial", actor=actor)


@transaction.atomic
def credential_issue(
    *, agent: Agent, label: str = "", actor: Actor = None, secret: str | None = None
) -> IssuedCredential:
    """Issue a credential. `secret` is for callers that must re-derive it (AAP provisioning)."""
    prefix = secrets.token_hex(6)
    secret = secret or secrets.token_urlsafe(32)
    credential = AgentCredential.objects.create(
        agent=agent, prefix=prefix, secret_digest=_digest(secret), label=label
    )
    # The prefix identifies the credential; the secret and its digest never enter the trail.
    audit_record(
        action=AuditAction.CREDENTIAL_ISSUED,
        actor=actor,
        object_type="agents.agentcredential",
        object_id=prefix,
        object_label=f"{agent.name}: aac_{prefix}_…",
        after={"agent": str(agent.code), "label": label},
    )
    return IssuedCredential(
        credential=credential, plaintext=f"{CREDENTIAL_SCHEME}_{prefix}_{secret}"
    )


@transaction.atomic
def credential_revoke(*, credential: AgentCredential, actor: Actor = None) -> None:
    now = timezone.now()
    revoked = AgentCredential.objects.filter(pk=credential.pk, revoked_at__isnull=True).update(
        revoked_at=now
    )
    if revoked:
        audit_record(
            action=AuditAction.CREDENTIAL_REVOKED,
            actor=actor,
            object_type="agents.agentcredential",
            object_id=credential.prefix,
            object_label=f"aac_{credential.prefix}_…",
            before={"revoked_at": None},
            after={"revoked_at": now},
        )


def credential_authenticate(*, token: str) -> Agent | None:
    """The agent a plaintext credential belongs to, or None if unknown, malformed or revoked."""
    return credentials_authenticate(tokens=[token])[token]


def credentials_authenticate(*, tokens: list[str]) -> dict[str, Agent | None]:
    """credential_authenticate for many tokens in one query (batched intake)."""
    return {
        token: found.agent if found else None for token, found in credentials_found(tokens).items()
    }


class FoundCredential(NamedTuple):
    """An active credential a token matched: its prefix, the digest of its secret as stored,
    and its agent."""

    prefix: str
    secret_digest: str
    agent: Agent


def credentials_found(tokens: list[str]) -> dict[str, FoundCredential | None]:
    """Each token's credential if it authenticates, else None: one query for all."""
    parsed = {token: split for token in tokens if (split := credential_split(token)) is not None}
    found: dict[str, FoundCredential | None] = dict.fromkeys(tokens)
    if not parsed:
        return found
    (rows,) = statements_rows([credentials_statement(sorted({p for p, _ in parsed.values()}))])
    by_prefix = {row[0]: row for row in rows}
    for token, (prefix, secret) in parsed.items():
        row = by_prefix.get(prefix)
        if row is not None and hmac.compare_digest(row[1], credential_digest(secret)):
            found[token] = FoundCredential(prefix, row[1], instance_from_row(Agent, row[2:]))
    return found


def credential_split(token: str) -> tuple[str, str] | None:
    """A plaintext credential's (prefix, secret), or None if it is not one."""
    scheme, _, rest = token.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme == CREDENTIAL_SCHEME and prefix and secret:
        return prefix, secret
    return None


def credential_digest(secret: str) -> str:
    """What the database keeps of a credential's secret."""
    return _digest(secret)


def credentials_statement(prefixes: Sequence[str]) -> Statement:
    """The active credentials with these prefixes: rows of (prefix, secret digest, the agent's
    columns). Every agent call starts here: a fixed statement, prepared once per connection
    (console.hot_statements), not a query the ORM builds each time."""
    prefix_in, params = values_in("c.prefix", prefixes)
    return (
        f"SELECT c.prefix, c.secret_digest, {columns_of(Agent, 'a')} "  # noqa: S608 (our tables)
        f"FROM {AgentCredential._meta.db_table} c JOIN {Agent._meta.db_table} a "
        f"ON a.id = c.agent_id WHERE {prefix_in} AND c.revoked_at IS NULL",
        params,
    )


# --- Runs and traces -----------------------------------------------------------------------


@dataclass(frozen=True)
class NewTraceEvent:
    """One event as the agent sent it, validated by the API layer before it gets here."""

    type: str
    data: dict[str, Any]
    occurred_at: datetime | None = None
    cost: Decimal | None = None


def run_open(
    *,
    agent: Agent,
    name: str,
    external_id: str = "",
    metadata: dict[str, Any] | None = None,
    budget: Decimal | None = None,
) -> tuple[Run, bool]:
    """Open a run, or return the agent's open-or-closed run with the same external id.

    Returns (run, created). Reopening with the same external id is how a retried call stays one
    run; the same id with a different name, metadata or budget raises RunExternalIdConflict.
    """
    metadata = metadata or {}
    if external_id:
        existing = Run.objects.filter(agent=agent, external_id=external_id).first()
        if existing is not None:
            return _same_run(existing, name=name, metadata=metadata, budget=budget), False
    try:
        with transaction.atomic():
            run = Run.objects.create(
                agent=agent, external_id=external_id, name=name, metadata=metadata, budget=budget
            )
    except IntegrityError:
        # Two opens with the same external id raced and the other one inserted first.
        existing = Run.objects.get(agent=agent, external_id=external_id)
        return _same_run(existing, name=name, metadata=metadata, budget=budget), False
    return run, True


def _same_run(existing: Run, *, name: str, metadata: dict[str, Any], budget: Decimal | None) -> Run:
    if (existing.name, existing.metadata, existing.budget) != (name, metadata, budget):
        raise RunExternalIdConflict()
    return existing


class _BatchReplayed(Exception):
    def __init__(self, events: list[TraceEvent]) -> None:
        self.events = events


def run_events_append(
    *, run: Run, events: Sequence[NewTraceEvent], batch_key: str = ""
) -> tuple[list[TraceEvent], bool]:
    """Append a batch to an open run, in order, and add its cost to the run's total.

    Returns (events, created). A batch sent again with the same `batch_key` returns the events
    stored the first time, so a retried upload never counts its cost twice; the same key with a
    different number of events raises IdempotencyConflict.

    One compare-and-set UPDATE claims the batch's sequence numbers and adds its cost: on
    PostgreSQL it holds the run's row lock until commit, so concurrent batches get disjoint,
    gapless sequence ranges and no cost is lost; a close that wins first makes it change nothing.
    """
    if not events:
        return [], False
    stored = _stored_batch(run, batch_key, size=len(events))
    if stored:
        return stored, False
    batch_cost = sum((event.cost or Decimal(0) for event in events), Decimal(0))
    try:
        with transaction.atomic():
            changed = Run.objects.filter(pk=run.pk, status=RunStatus.OPEN).update(
                last_sequence=F("last_sequence") + len(events),
                total_cost=F("total_cost") + batch_cost,
            )
            current = Run.objects.only("status", "last_sequence").get(pk=run.pk)
            # Checked again under the row lock: an identical retry may have committed meanwhile.
            stored = _stored_batch(run, batch_key, size=len(events))
            if stored:
                raise _BatchReplayed(stored)  # rolls back the counters claimed above
            if changed != 1:
                raise RunClosed(current_status=current.status)
            # Stamped after the lock is held, so server time never runs backwards along sequences.
            recorded_at = timezone.now()
            first = current.last_sequence - len(events) + 1
            created = TraceEvent.objects.bulk_create(
                TraceEvent(
                    run_id=run.pk,
                    sequence=first + offset,
                    type=event.type,
                    occurred_at=event.occurred_at,
                    recorded_at=recorded_at,
                    cost=event.cost,
                    data=event.data,
                    batch_key=batch_key,
                )
                for offset, event in enumerate(events)
            )
            traced = [result for event in events if (result := _traced_tool_result(event))]
            if traced:
                emit(ToolResultsTraced(agent_id=run.agent_id, results=traced))
    except _BatchReplayed as replay:
        return replay.events, False
    return created, True


def _traced_tool_result(event: NewTraceEvent) -> TracedToolResult | None:
    """A tool call that names its approval request and says how it ended; else None. The SDK
    marks a call that never started with metadata.ran = false."""
    data = event.data
    if event.type != TraceEventType.TOOL_CALL or not data.get("approval"):
        return None
    if "error" not in data and "result" not in data:
        return None
    metadata = data.get("metadata")
    ran = not (isinstance(metadata, dict) and metadata.get("ran") is False)
    status = "failed" if "error" in data else "succeeded"
    return TracedToolResult(
        approval_code=str(data["approval"]),
        status=status if ran else "not_executed",
        result=data.get("result"),
        error=str(data.get("error", "")),
        cost=event.cost,
    )


def _stored_batch(run: Run, batch_key: str, *, size: int) -> list[TraceEvent]:
    if not batch_key:
        return []
    stored = list(TraceEvent.objects.filter(run=run, batch_key=batch_key).order_by("sequence"))
    if stored and len(stored) != size:
        raise IdempotencyConflict()
    return stored


def run_close(*, run: Run, status: str, reason: str = "", actor: Actor | Agent = None) -> Run:
    """Close an open run as completed, failed or halted.

    Closing again with the same status returns the run unchanged, so a retried close is safe;
    any other change raises RunClosed. Halting also denies the run's pending requests: a halted
    run must not act, whatever was already waiting for a reviewer.
    """
    if status not in CLOSED_RUN_STATUSES:
        raise ValueError(f"A run cannot be closed as {str(status)!r}.")
    with transaction.atomic():
        changed = Run.objects.filter(pk=run.pk, status=RunStatus.OPEN).update(
            status=status, close_reason=reason, closed_at=timezone.now()
        )
        current = Run.objects.get(pk=run.pk)
        if changed != 1:
            if current.status == status:
                return current
            raise RunClosed(current_status=current.status)
        if status == RunStatus.HALTED:
            # A halt stops an agent from acting, so who pulled the brake belongs in the trail;
            # without a reviewer it was the agent itself closing its run as halted.
            audit_record(
                action=AuditAction.RUN_HALTED,
                actor=actor or current.agent,
                target=current,
                before={"status": RunStatus.OPEN},
                after={"status": status, "close_reason": reason},
            )
            # Approvals subscribes: it denies what was waiting in the run, in this transaction
            # (approvals depends on agents, never the other way round).
            emit(RunHalted(run_id=current.pk, reason=run_refusal_reason(current)))
    return current


def run_refusal_why(run: Run) -> Reason:
    """Why a closed run takes no new requests, with the run's name and the reason it was closed
    with (the agent's words when the agent closed it) kept apart as the agent's."""
    return Reason.of(
        "The run ",
        AgentValue(run.name),
        f" is {run.status}: it takes no new requests.",
        Reason.of(" Reason: ", AgentValue(run.close_reason)) if run.close_reason else "",
    )


def run_refusal_reason(run: Run) -> str:
    """run_refusal_why as plain text, the agent's words in quotes."""
    return str(run_refusal_why(run))


@dataclass(frozen=True)
class IssuedProvisionerToken:
    token: ProvisionerToken
    plaintext: str


@transaction.atomic
def provisioner_token_create(*, name: str, actor: Actor = None) -> IssuedProvisionerToken:
    """A token for `POST /aap/v1/instances`: it manages instances, never makes requests."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = ProvisionerToken.objects.create(name=name, prefix=prefix, secret_digest=_digest(secret))
    audit_record(
        action=AuditAction.PROVISIONER_TOKEN_CREATED,
        actor=actor,
        target=token,
        after={"name": name, "prefix": prefix},
    )
    return IssuedProvisionerToken(token=token, plaintext=f"{PROVISIONER_SCHEME}_{prefix}_{secret}")


@transaction.atomic
def provisioner_token_revoke(*, token: ProvisionerToken, actor: Actor = None) -> bool:
    """Revoke a provisioner token. Returns False if it was revoked already (nothing recorded)."""
    now = timezone.now()
    revoked = ProvisionerToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=now
    )
    if revoked:
        audit_record(
            action=AuditAction.PROVISIONER_TOKEN_REVOKED,
            actor=actor,
            target=token,
            before={"revoked_at": None},
            after={"revoked_at": now},
        )
    return bool(revoked)


def provisioner_token_authenticate(*, token: str) -> ProvisionerToken | None:
    scheme, _, rest = token.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != PROVISIONER_SCHEME or not prefix or not secret:
        return None
    provisioner = ProvisionerToken.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
    if provisioner is None or not hmac.compare_digest(provisioner.secret_digest, _digest(secret)):
        return None
    return provisioner
