"""The approval state machine and every write to approval requests.

pending -> approved | denied | expired | cancelled, and nothing else. Each transition is one
compare-and-set UPDATE (`... WHERE status = 'pending'`): under any race exactly one caller changes
the row, and everyone else sees zero rows changed and gets a TransitionConflict. The winner writes
the Decision and the ApprovalEvent in the same transaction, and schedules the realtime push for
after commit, so nobody is told about an outcome that was rolled back.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import jsonschema
import referencing
import referencing.exceptions
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.models import Agent, Run
from agents.services import run_refusal_reason
from approvals import realtime
from approvals.exceptions import IdempotencyConflict, TransitionConflict, UnknownRun
from approvals.models import (
    ActorType,
    ApprovalEvent,
    ApprovalRequest,
    Decision,
    Impact,
    Status,
)

# The one table of allowed transitions. Terminal states have no way out.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.PENDING: frozenset({Status.APPROVED, Status.DENIED, Status.EXPIRED, Status.CANCELLED}),
}


@dataclass(frozen=True)
class Submission:
    """What an agent asks to do. Validated by the API layer before it gets here."""

    tool: str
    arguments: dict[str, Any]
    timeout: str
    summary: str = ""
    reasoning: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    confidence: float | None = None
    impact: str = Impact.MEDIUM
    # Native API: the run's public id, reviewer-facing labels, the JSON Schema of `arguments`.
    run: str | None = None
    labels: list[str] = field(default_factory=list)
    arguments_schema: dict[str, Any] | None = None

    def fingerprint(self) -> str:
        """A digest of the parsed fields: key order and whitespace do not change it."""
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


DURATION_PATTERN = r"^[1-9][0-9]*(s|m|h)$"
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def duration_seconds(duration: str) -> int:
    """Seconds in a protocol duration such as "30s", "30m" or "24h"."""
    return int(duration[:-1]) * _DURATION_UNITS[duration[-1]]


def _effective_timeout(requested_seconds: int) -> int:
    # The console may shorten the requested window to its own limit, never lengthen it.
    return max(1, min(requested_seconds, settings.APPROVAL_MAX_TIMEOUT_SECONDS))


def approval_request_create(
    *, agent: Agent, idempotency_key: str, submission: Submission
) -> tuple[ApprovalRequest, bool]:
    """Create a pending request, or return the existing one for a replayed idempotency key.

    Returns (approval, created). A replay with different fields raises IdempotencyConflict and
    leaves the original untouched.
    """
    fingerprint = submission.fingerprint()
    existing = ApprovalRequest.objects.filter(agent=agent, idempotency_key=idempotency_key).first()
    if existing is not None:
        return _replay(existing, fingerprint), False

    now = timezone.now()
    timeout_seconds = _effective_timeout(duration_seconds(submission.timeout))
    try:
        with transaction.atomic():
            run = _run_for_submission(agent=agent, submission=submission)
            approval = ApprovalRequest.objects.create(
                agent=agent,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                tool=submission.tool,
                arguments=submission.arguments,
                summary=submission.summary,
                reasoning=submission.reasoning,
                context=submission.context,
                confidence=submission.confidence,
                impact=submission.impact,
                run=run,
                labels=submission.labels,
                arguments_schema=submission.arguments_schema,
                timeout=submission.timeout,
                timeout_seconds=timeout_seconds,
                deadline_at=now + timedelta(seconds=timeout_seconds),
            )
            ApprovalEvent.objects.create(
                approval=approval,
                kind="submitted",
                to_status=Status.PENDING,
                actor_type=ActorType.AGENT,
                actor_agent=agent,
            )
            transaction.on_commit(partial(realtime.publish_approval_changed, approval.pk))
            if run is not None and not run.is_open:
                approval = approval_request_system_deny(
                    approval=approval, reason=run_refusal_reason(run)
                )
    except IntegrityError:
        # Two submissions with the same key raced and the other one inserted first.
        existing = ApprovalRequest.objects.get(agent=agent, idempotency_key=idempotency_key)
        return _replay(existing, fingerprint), False
    return approval, True


def _run_for_submission(*, agent: Agent, submission: Submission) -> Run | None:
    if submission.run is None:
        return None
    # Locked so a close committing meanwhile is seen: a request never joins a run that just
    # closed as if it were open.
    run = Run.objects.select_for_update().filter(agent=agent, code=submission.run).first()
    if run is None:
        raise UnknownRun()
    return run


def _replay(existing: ApprovalRequest, fingerprint: str) -> ApprovalRequest:
    if existing.fingerprint != fingerprint:
        raise IdempotencyConflict()
    return approval_request_expire_if_overdue(approval=existing)


def approval_request_approve(
    *,
    approval: ApprovalRequest,
    reviewer: AbstractBaseUser,
    note: str = "",
    arguments: dict[str, Any] | None = None,
) -> ApprovalRequest:
    """Approve, optionally with changed arguments ("approve with changes").

    `arguments` equal to the submitted ones count as a plain approval.
    """
    now = timezone.now()
    approved_arguments = None if arguments in (None, approval.arguments) else arguments
    return _transition(
        approval=approval,
        to_status=Status.APPROVED,
        actor_type=ActorType.REVIEWER,
        actor_user=reviewer,
        note=note,
        now=now,
        expires_at=now + timedelta(seconds=settings.APPROVAL_VALIDITY_SECONDS),
        approved_arguments=approved_arguments,
    )


def approval_request_deny(
    *, approval: ApprovalRequest, reviewer: AbstractBaseUser, reason: str
) -> ApprovalRequest:
    reason = reason.strip()
    if not reason:
        raise ValueError("A denial needs a reason: the agent is told why it may not act.")
    return _transition(
        approval=approval,
        to_status=Status.DENIED,
        actor_type=ActorType.REVIEWER,
        actor_user=reviewer,
        note=reason,
    )


def approval_request_system_deny(*, approval: ApprovalRequest, reason: str) -> ApprovalRequest:
    """Deny on the console's own authority (a halted or closed run), with the reason."""
    return _transition(
        approval=approval,
        to_status=Status.DENIED,
        actor_type=ActorType.SYSTEM,
        note=reason,
    )


def approval_arguments_validate(
    *, approval: ApprovalRequest, arguments: dict[str, Any]
) -> list[str]:
    """Why `arguments` break the request's arguments_schema, one message each; empty if valid.

    For reviewer edits ("approve with changes"): changed arguments must still fit the tool.
    """
    return arguments_schema_errors(schema=approval.arguments_schema, arguments=arguments)


def arguments_schema_errors(*, schema: dict[str, Any] | None, arguments: Any) -> list[str]:
    if schema is None:
        return []
    validator_class = jsonschema.validators.validator_for(schema)
    # An explicit empty registry: a schema's $ref never makes the console fetch a URL.
    validator = validator_class(schema, registry=referencing.Registry())
    try:
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
    except referencing.exceptions.Unresolvable as unresolvable:
        # Fail closed: arguments that cannot be checked do not pass.
        return [f"$: the schema refers to {unresolvable.ref!r}, which cannot be resolved"]
    return [f"{error.json_path}: {error.message}" for error in errors]


def approval_request_cancel(*, approval: ApprovalRequest, agent: Agent) -> ApprovalRequest:
    """Withdraw a pending request. Cancelling a cancelled request returns it unchanged."""
    try:
        return _transition(
            approval=approval,
            to_status=Status.CANCELLED,
            actor_type=ActorType.AGENT,
            actor_agent=agent,
            note="Withdrawn by the agent.",
        )
    except TransitionConflict as conflict:
        if conflict.current_status == Status.CANCELLED:
            return ApprovalRequest.objects.get(pk=approval.pk)
        raise


def approval_request_expire(*, approval: ApprovalRequest) -> ApprovalRequest:
    return _transition(
        approval=approval,
        to_status=Status.EXPIRED,
        actor_type=ActorType.SYSTEM,
        note="No decision before the deadline.",
    )


def approval_request_expire_if_overdue(*, approval: ApprovalRequest) -> ApprovalRequest:
    """Expire a pending request whose deadline has passed; return its current state either way.

    Called on every read, so an agent never sees `pending` (or a late approval) after the
    deadline even when beat is behind.
    """
    if approval.status != Status.PENDING or approval.deadline_at > timezone.now():
        return approval
    try:
        return approval_request_expire(approval=approval)
    except TransitionConflict:
        return ApprovalRequest.objects.get(pk=approval.pk)


def approval_requests_expire_overdue(*, now: datetime | None = None, limit: int = 500) -> int:
    """Expire pending requests past their deadline, oldest first. Returns how many expired."""
    now = now or timezone.now()
    overdue = list(
        ApprovalRequest.objects.filter(status=Status.PENDING, deadline_at__lte=now)
        .order_by("deadline_at")
        .only("pk", "status", "deadline_at")[:limit]
    )
    expired = 0
    for approval in overdue:
        try:
            approval_request_expire(approval=approval)
            expired += 1
        except TransitionConflict:
            continue  # decided or cancelled meanwhile: that outcome stands
    return expired


def _transition(
    *,
    approval: ApprovalRequest,
    to_status: str,
    actor_type: str,
    actor_user: AbstractBaseUser | None = None,
    actor_agent: Agent | None = None,
    note: str = "",
    now: datetime | None = None,
    expires_at: datetime | None = None,
    approved_arguments: dict[str, Any] | None = None,
) -> ApprovalRequest:
    now = now or timezone.now()
    if to_status not in ALLOWED_TRANSITIONS[Status.PENDING]:
        raise ValueError(f"No transition leads to {to_status!r}.")

    candidates = ApprovalRequest.objects.filter(pk=approval.pk, status=Status.PENDING)
    # Expiry happens only at or after the deadline; anything else only before it. This is what
    # makes "never approved late" hold even if beat has not run yet.
    if to_status == Status.EXPIRED:
        candidates = candidates.filter(deadline_at__lte=now)
    else:
        candidates = candidates.filter(deadline_at__gt=now)

    with transaction.atomic():
        changed = candidates.update(status=to_status, decided_at=now)
        if changed == 1:
            Decision.objects.create(
                approval_id=approval.pk,
                status=to_status,
                reviewer=actor_user,
                note=note,
                decided_at=now,
                expires_at=expires_at,
                approved_arguments=approved_arguments,
            )
            ApprovalEvent.objects.create(
                approval_id=approval.pk,
                kind=to_status,
                from_status=Status.PENDING,
                to_status=to_status,
                actor_type=actor_type,
                actor_user=actor_user,
                actor_agent=actor_agent,
                note=note,
            )
            transaction.on_commit(partial(realtime.publish_approval_changed, approval.pk))

    current = ApprovalRequest.objects.select_related("decision").get(pk=approval.pk)
    if changed == 1:
        return current
    if current.status == Status.PENDING and to_status != Status.EXPIRED:
        # Still pending, so the deadline must have passed: it expires now, not approves late.
        current = approval_request_expire_if_overdue(approval=current)
    raise TransitionConflict(current_status=current.status)
