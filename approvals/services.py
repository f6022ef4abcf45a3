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

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.aap import webhooks
from agents.models import Agent
from approvals import realtime
from approvals.exceptions import IdempotencyConflict, TransitionConflict
from approvals.models import (
    ActorType,
    ApprovalEvent,
    ApprovalRequest,
    Decision,
    Impact,
    Source,
    Status,
)
from console import exact_json

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
    except IntegrityError:
        # Two submissions with the same key raced and the other one inserted first.
        existing = ApprovalRequest.objects.get(agent=agent, idempotency_key=idempotency_key)
        return _replay(existing, fingerprint), False
    if source == Source.AAP:
        approval = _approve_if_suggested(approval=approval)
    return approval, True


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
    return _transition(
        approval=approval,
        to_status=Status.DENIED,
        actor_type=ActorType.REVIEWER,
        actor_user=reviewer,
        note=reason,
    )


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
