"""The approval state machine and every write to approval requests.

pending -> approved | denied | expired | cancelled, and nothing else. Each transition is one
compare-and-set UPDATE (`... WHERE status = 'pending'`): under any race exactly one caller changes
the row, and everyone else sees zero rows changed and gets a TransitionConflict. The winner writes
the Decision and the ApprovalEvent in the same transaction, and schedules the realtime push for
after commit, so nobody is told about an outcome that was rolled back.
"""

import hashlib
import json
import logging
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

from agents.aap import webhooks
from agents.models import Agent, Run
from agents.services import run_refusal_reason
from approvals import realtime
from approvals.audit import AuditAction, audit_record
from approvals.escalations import expiry_note
from approvals.exceptions import IdempotencyConflict, TransitionConflict, UnknownRun
from approvals.models import (
    ActorType,
    ApprovalEvent,
    ApprovalRequest,
    Decision,
    DecisionPageView,
    Impact,
    Source,
    Status,
)
from approvals.notifications import notifications_on_resolved, notifications_on_submitted
from approvals.policies.evaluation import Verdict, policy_decide
from approvals.policies.models import Outcome, PolicyEvaluation
from console import exact_json

logger = logging.getLogger(__name__)

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
    # AAP only: the exact JSON text of arguments, context and `server`, echoed instead of the
    # parsed (rounded, key-sorted) copies.
    arguments_raw: str = ""
    context_raw: str = ""
    server_raw: str = ""

    def fingerprint(self) -> str:
        """A digest of the parsed fields: key order and whitespace do not change it."""
        fields = asdict(self)
        for name in ("arguments_raw", "context_raw", "server_raw"):
            # Compare the raw texts by parsed value, numbers exact: 1.0000000000000001 and 1.0
            # are different submissions even though they parse to the same float.
            if fields[name]:
                fields[name] = exact_json.canonical(exact_json.loads(fields[name]))
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
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
    *,
    agent: Agent,
    idempotency_key: str,
    submission: Submission,
    source: str = Source.NATIVE,
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
            # Decided before the insert, in the same transaction: the policy may shorten the
            # deadline and name the team, and its guardrail counts hold until commit. A closed
            # run takes no new requests whatever the policy says.
            if run is not None and not run.is_open:
                verdict = Verdict(
                    outcome=Outcome.DENY, reason=run_refusal_reason(run), decided_by="run"
                )
            else:
                verdict = policy_decide(agent=agent, submission=submission, now=now, run=run)
            if verdict.time_to_decide_seconds:
                timeout_seconds = min(timeout_seconds, verdict.time_to_decide_seconds)
            approval = ApprovalRequest.objects.create(
                agent=agent,
                source=source,
                arguments_raw=submission.arguments_raw,
                context_raw=submission.context_raw,
                server_raw=submission.server_raw,
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
                team_id=verdict.team_id,
                required_approvals=verdict.required_approvals,
                escalation_chain_id=verdict.escalation_chain_id,
                hold_reason=verdict.reason if verdict.outcome == Outcome.HOLD else "",
            )
            ApprovalEvent.objects.create(
                approval=approval,
                kind="submitted",
                to_status=Status.PENDING,
                actor_type=ActorType.AGENT,
                actor_agent=agent,
            )
            audit_record(
                action=AuditAction.REQUEST_SUBMITTED,
                actor=agent,
                target=approval,
                after={
                    "status": approval.status,
                    "tool": approval.tool,
                    "impact": approval.impact,
                    "confidence": approval.confidence,
                    "deadline_at": approval.deadline_at,
                    "fingerprint": fingerprint,
                },
            )
            transaction.on_commit(partial(realtime.publish_approval_changed, approval.pk))
            approval = _apply_verdict(approval=approval, verdict=verdict)
            if approval.status == Status.PENDING:
                # Only a held request needs a person: one decided by policy pages nobody.
                notifications_on_submitted(approval=approval)
    except IntegrityError:
        # Two submissions with the same key raced and the other one inserted first.
        existing = ApprovalRequest.objects.get(agent=agent, idempotency_key=idempotency_key)
        return _replay(existing, fingerprint), False
    if source == Source.AAP and approval.status == Status.PENDING:
        # Only a request the policy held can be the exact resubmission a reviewer suggested.
        approval = _approve_if_suggested(approval=approval)
    return approval, True


def _apply_verdict(*, approval: ApprovalRequest, verdict: Verdict) -> ApprovalRequest:
    evaluation = PolicyEvaluation.objects.create(
        approval=approval,
        rule_id=verdict.rule.id if verdict.rule else None,
        rule_name=verdict.rule.name if verdict.rule else "",
        outcome=verdict.outcome,
        decided_by=verdict.decided_by,
        reason=verdict.reason,
        shadow_matches=[match.as_dict() for match in verdict.shadow_matches],
    )
    # Holds are recorded too: "why did this one wait for a person?" is an auditor's question.
    audit_record(
        action=AuditAction.POLICY_DECIDED,
        target=approval,
        after={
            "outcome": evaluation.outcome,
            "decided_by": evaluation.decided_by,
            "rule_id": evaluation.rule_id,
            "rule_name": evaluation.rule_name,
            "reason": evaluation.reason,
        },
    )
    if verdict.outcome == Outcome.HOLD:
        return approval
    approval = approval_request_decide_by_policy(
        approval=approval,
        to_status=Status.APPROVED if verdict.outcome == Outcome.APPROVE else Status.DENIED,
        note=verdict.reason,
    )
    if approval.status == Status.DENIED and verdict.decided_by not in {"halt", "run"}:
        _after_denial(agent_id=approval.agent_id)
    return approval


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
    if approved_arguments is not None and approval.source == Source.AAP:
        # AAP has no way to say "approved, but run these arguments instead": an adapter would run
        # the submitted call. So an edit becomes a denial that carries the suggestion, and an exact
        # resubmission of it from the same agent is approved at once (_approve_if_suggested).
        suggestion = json.dumps(approved_arguments, ensure_ascii=False)
        return _transition(
            approval=approval,
            to_status=Status.DENIED,
            actor_type=ActorType.REVIEWER,
            actor_user=reviewer,
            note=(f"{note.strip()}\n\n" if note.strip() else "")
            + "The reviewer would approve these arguments instead; resubmit exactly these to "
            f"be approved at once: {suggestion}",
            now=now,
            suggested_arguments=approved_arguments,
            event_kind="denied_with_suggestion",
        )
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
    denied = _transition(
        approval=approval,
        to_status=Status.DENIED,
        actor_type=ActorType.REVIEWER,
        actor_user=reviewer,
        note=reason,
    )
    _after_denial(agent_id=denied.agent_id)
    return denied


def _after_denial(*, agent_id: int) -> None:
    """Trip the circuit breaker if this denial was one too many. The denial stands regardless."""
    # Imported here: halting cancels requests through this module, so the two import each other.
    from approvals.policies.halts import agent_circuit_breaker_check

    try:
        agent_circuit_breaker_check(agent_id=agent_id)
    except Exception:
        logger.exception("circuit breaker check failed for agent %s", agent_id)


def approval_request_decide_by_policy(
    *, approval: ApprovalRequest, to_status: str, note: str
) -> ApprovalRequest:
    """Approve or deny at creation on a policy's word. The note says which rule decided and why."""
    if to_status not in {Status.APPROVED, Status.DENIED}:
        raise ValueError("A policy approves or denies; holding is leaving the request pending.")
    now = timezone.now()
    return _transition(
        approval=approval,
        to_status=to_status,
        actor_type=ActorType.SYSTEM,
        note=note,
        now=now,
        expires_at=(
            now + timedelta(seconds=settings.APPROVAL_VALIDITY_SECONDS)
            if to_status == Status.APPROVED
            else None
        ),
    )


def approval_request_cancel_for_halt(
    *, approval: ApprovalRequest, halted_by: AbstractBaseUser | None, note: str
) -> ApprovalRequest:
    """Cancel a pending request because its agent was halted (by a reviewer or the breaker)."""
    return _transition(
        approval=approval,
        to_status=Status.CANCELLED,
        actor_type=ActorType.REVIEWER if halted_by is not None else ActorType.SYSTEM,
        actor_user=halted_by,
        note=note,
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


def approval_request_cancel(
    *,
    approval: ApprovalRequest,
    agent: Agent,
    note: str = "Withdrawn by the agent.",
    notify: bool = True,
) -> ApprovalRequest:
    """Withdraw a pending request. Cancelling a cancelled request returns it unchanged.

    `notify=False` records no webhook event: deleting an AAP instance retires its receiver too.
    """
    try:
        return _transition(
            approval=approval,
            to_status=Status.CANCELLED,
            actor_type=ActorType.AGENT,
            actor_agent=agent,
            note=note,
            notify=notify,
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
        note=expiry_note(approval_id=approval.pk),
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


_AUDIT_ACTION_BY_OUTCOME: dict[str, AuditAction] = {
    Status.APPROVED: AuditAction.REQUEST_APPROVED,
    Status.DENIED: AuditAction.REQUEST_DENIED,
    Status.EXPIRED: AuditAction.REQUEST_EXPIRED,
    Status.CANCELLED: AuditAction.REQUEST_CANCELLED,
}


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
    suggested_arguments: dict[str, Any] | None = None,
    event_kind: str | None = None,
    notify: bool = True,
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
                suggested_arguments=suggested_arguments,
            )
            ApprovalEvent.objects.create(
                approval_id=approval.pk,
                kind=event_kind or to_status,
                from_status=Status.PENDING,
                to_status=to_status,
                actor_type=actor_type,
                actor_user=actor_user,
                actor_agent=actor_agent,
                note=note,
            )
            audit_record(
                action=_AUDIT_ACTION_BY_OUTCOME[to_status],
                actor=actor_user or actor_agent,
                target=approval,
                before={"status": Status.PENDING},
                after={
                    "status": to_status,
                    "note": note,
                    "expires_at": expires_at,
                    "approved_arguments": approved_arguments,
                },
            )
            notifications_on_resolved(approval_id=approval.pk)
            if notify:
                # Same transaction as the decision: the outcome and its webhook event commit
                # together or not at all.
                webhooks.notification_record(approval_id=approval.pk, decided_at=now)
            transaction.on_commit(partial(realtime.publish_approval_changed, approval.pk))

    current = ApprovalRequest.objects.select_related("decision").get(pk=approval.pk)
    if changed == 1:
        return current
    if current.status == Status.PENDING and to_status != Status.EXPIRED:
        # Still pending, so the deadline must have passed: it expires now, not approves late.
        current = approval_request_expire_if_overdue(approval=current)
    raise TransitionConflict(current_status=current.status)


def decision_page_view_record(*, approval: ApprovalRequest, reviewer: AbstractBaseUser) -> None:
    """Remember when a reviewer first opened a pending request: the start of their time on it,
    which the rubber-stamping signal compares with when they decided."""
    if approval.status != Status.PENDING or not reviewer.is_authenticated:
        return
    DecisionPageView.objects.get_or_create(
        approval=approval, reviewer_id=reviewer.pk, defaults={"first_viewed_at": timezone.now()}
    )


def _approve_if_suggested(*, approval: ApprovalRequest) -> ApprovalRequest:
    """Approve a fresh AAP request at once if a reviewer suggested exactly this call.

    The suggestion must come from a denial of the same agent's request for the same tool, be
    recent, and not have been used yet: one human decision permits one execution.
    """
    since = timezone.now() - timedelta(seconds=settings.APPROVAL_SUGGESTION_VALIDITY_SECONDS)
    candidates = Decision.objects.filter(
        approval__agent_id=approval.agent_id,
        approval__tool=approval.tool,
        approval__source=Source.AAP,
        approval__suggestion_taken_by__isnull=True,
        status=Status.DENIED,
        suggested_arguments__isnull=False,
        decided_at__gte=since,
    ).select_related("approval", "reviewer")
    submitted = json.dumps(approval.arguments, sort_keys=True)
    # Compared as canonical JSON text, not with ==, which would equate true with 1 and 1 with 1.0.
    suggestion = next(
        (d for d in candidates if json.dumps(d.suggested_arguments, sort_keys=True) == submitted),
        None,
    )
    if suggestion is None:
        return approval
    now = timezone.now()
    try:
        with transaction.atomic():
            # The one-to-one link is the claim: a suggestion approves one resubmission only.
            ApprovalRequest.objects.filter(pk=approval.pk).update(
                approved_as_suggested_on=suggestion.approval
            )
            return _transition(
                approval=approval,
                to_status=Status.APPROVED,
                actor_type=ActorType.REVIEWER,
                actor_user=suggestion.reviewer,
                note="Approved as suggested by the reviewer on request "
                f"{suggestion.approval.code}.",
                now=now,
                expires_at=now + timedelta(seconds=settings.APPROVAL_VALIDITY_SECONDS),
                event_kind="approved_as_suggested",
            )
    except IntegrityError:
        return ApprovalRequest.objects.get(pk=approval.pk)  # another resubmission took it
