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
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.aap import webhooks
from agents.models import Agent, Run
from agents.services import run_refusal_why
from approvals import realtime
from approvals.access import reviewer_may_see
from approvals.audit import AuditAction, AuditEntry, audit_record, audit_records_append
from approvals.escalations import expiry_note
from approvals.exceptions import (
    ApprovalNotVisible,
    IdempotencyConflict,
    ReviewRejected,
    TransitionConflict,
    UnknownRun,
)
from approvals.models import (
    ActorType,
    ApprovalEvent,
    ApprovalRequest,
    ApprovalVote,
    Decision,
    DecisionPageView,
    Impact,
    Source,
    Status,
    Team,
)
from approvals.notifications import notifications_on_resolved, notifications_on_submitted_many
from approvals.policies.changes import ChangeRouting, change_routing_judge
from approvals.policies.evaluation import (
    Policy,
    PolicyQuestion,
    Verdict,
    policy_decide_many,
    policy_load,
)
from approvals.policies.models import Outcome, PolicyEvaluation
from approvals.selectors import approval_lock
from console import api_limits, exact_json
from console.copy_insert import ids_assign, rows_insert
from console.request_context import RequestContext

logger = logging.getLogger(__name__)

# ReviewRejected codes for changed arguments: the policy denies them; they need more review
# (another team, more approvals) than the approvals given; the quorum changed meanwhile.
POLICY_DENIES = "policy_denies"
CHANGE_NEEDS_REVIEW = "change_needs_review"
QUORUM_CHANGED = "quorum_changed"

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
    # Native API: [{"label", "url"}] to the source system (approvals.agent_links checks them).
    links: list[dict[str, str]] = field(default_factory=list)
    # AAP only: the exact JSON text of arguments, context and `server`, echoed instead of the
    # parsed (rounded, key-sorted) copies.
    arguments_raw: str = ""
    context_raw: str = ""
    server_raw: str = ""

    def fingerprint(self) -> str:
        """A digest of the parsed fields: key order and whitespace do not change it."""
        fields = asdict(self)
        if not fields["links"]:
            # Requests without links keep the digest they had before links existed.
            del fields["links"]
        for name in ("arguments_raw", "context_raw", "server_raw"):
            # Compare the raw texts by parsed value, numbers exact: 1.0000000000000001 and 1.0
            # are different submissions even though they parse to the same float.
            if fields[name]:
                fields[name] = exact_json.canonical(exact_json.loads(fields[name]))
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


# Any number of digits: a valid duration is never refused for being long, only shortened.
DURATION_PATTERN = r"^[1-9][0-9]*(s|m|h)$"


def _effective_timeout(duration: str) -> int:
    """Seconds granted for a duration such as "30m": the console may shorten the requested
    window to its own limit, never lengthen it."""
    maximum = settings.APPROVAL_MAX_TIMEOUT_SECONDS
    return max(1, api_limits.duration_seconds(duration[:-1], duration[-1], maximum=maximum))


@dataclass(frozen=True)
class NewApprovalRequest:
    """One submission to create, as the API received it."""

    agent: Agent
    idempotency_key: str
    submission: Submission
    source: str = Source.NATIVE
    # The HTTP exchange it came from, for the audit trail. None: the context bound now, which
    # is the request's own except in batched intake (one writer thread, many requests).
    origin: RequestContext | None = None


@dataclass(frozen=True)
class CreateResult:
    """What became of one NewApprovalRequest: the request (created or replayed) or an error."""

    approval: ApprovalRequest | None = None
    created: bool = False
    # What the agent is told (409, 400).
    error: IdempotencyConflict | UnknownRun | None = None
    # Could not be stored at all (the database refused it): a server error for this one only.
    failure: Exception | None = None

    def unwrap(self) -> tuple[ApprovalRequest, bool]:
        if self.failure is not None:
            raise self.failure
        if self.error is not None:
            raise self.error
        assert self.approval is not None
        return self.approval, self.created


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
    new = NewApprovalRequest(
        agent=agent, idempotency_key=idempotency_key, submission=submission, source=source
    )
    return approval_requests_create([new])[0].unwrap()


def approval_requests_create(
    requests: list[NewApprovalRequest], *, publish_after_commit: bool = True
) -> list[CreateResult]:
    """Create many requests at once: one transaction, a few queries for the lot.

    The same rules as one at a time (approval_request_create is this with a list of one):
    idempotency, the run check, the policy verdict, events, audit, notifications. Batched
    intake (approvals.intake) gathers the requests that arrive while the previous batch is
    being written, so under load the locks every creation needs (the agent's row, the audit
    chain head) are taken once per batch instead of once per request.

    `publish_after_commit=False`: the caller pushes the new rows to reviewers itself
    (realtime.publish_approvals_created), after it has answered the agents.
    """
    fingerprints = [new.submission.fingerprint() for new in requests]
    results: list[CreateResult | None] = [None] * len(requests)
    existing = _existing_by_key(requests)
    first_with_key: set[tuple[int, str]] = set()
    fresh: list[int] = []
    for index, new in enumerate(requests):
        key = (new.agent.pk, new.idempotency_key)
        if key in existing:
            results[index] = _replay_result(existing[key], fingerprints[index])
        elif key not in first_with_key:
            first_with_key.add(key)
            fresh.append(index)
    if fresh:
        try:
            created = _create_fresh(
                [requests[i] for i in fresh],
                [fingerprints[i] for i in fresh],
                publish_after_commit=publish_after_commit,
            )
            for index, result in zip(fresh, created, strict=True):
                results[index] = result
        except IntegrityError:
            # Most likely another process inserted one of these keys first (the unique
            # constraint on agent and key caught it). Alone, that is a replay; in a batch, each
            # goes again alone, so one request that cannot be stored fails only itself.
            if len(fresh) > 1:
                for index in fresh:
                    try:
                        results[index] = approval_requests_create(
                            [requests[index]], publish_after_commit=publish_after_commit
                        )[0]
                    except Exception as failure:
                        results[index] = CreateResult(failure=failure)
            else:
                new = requests[fresh[0]]
                winner = ApprovalRequest.objects.filter(
                    agent=new.agent, idempotency_key=new.idempotency_key
                ).first()
                if winner is None:
                    raise  # not a race on the key: this request cannot be stored
                results[fresh[0]] = _replay_result(winner, fingerprints[fresh[0]])
    for index, slot in enumerate(results):
        if slot is None:
            # The same key twice in one batch: now that the first is written, a replay of it.
            results[index] = approval_requests_create(
                [requests[index]], publish_after_commit=publish_after_commit
            )[0]
    return [result for result in results if result is not None]


def _existing_by_key(requests: list[NewApprovalRequest]) -> dict[tuple[int, str], ApprovalRequest]:
    agent_ids = {new.agent.pk for new in requests}
    keys = {new.idempotency_key for new in requests}
    rows = ApprovalRequest.objects.filter(
        agent_id__in=agent_ids, idempotency_key__in=keys
    ).order_by()  # read into a dict: an order would only cost
    wanted = {(new.agent.pk, new.idempotency_key) for new in requests}
    return {
        (row.agent_id, row.idempotency_key): row
        for row in rows
        if (row.agent_id, row.idempotency_key) in wanted
    }


def _replay_result(existing: ApprovalRequest, fingerprint: str) -> CreateResult:
    try:
        return CreateResult(approval=_replay(existing, fingerprint), created=False)
    except IdempotencyConflict as conflict:
        return CreateResult(error=conflict)


@dataclass
class _Pending:
    """One request on its way in: its position in the batch, and what is known so far."""

    index: int
    new: NewApprovalRequest
    fingerprint: str
    run: Run | None = None
    verdict: Verdict | None = None
    approval: ApprovalRequest | None = None


def _create_fresh(
    requests: list[NewApprovalRequest], fingerprints: list[str], *, publish_after_commit: bool
) -> list[CreateResult]:
    now = timezone.now()
    results: list[CreateResult] = [CreateResult() for _ in requests]
    with transaction.atomic():
        runs = _runs_for_submissions(requests)
        pending: list[_Pending] = []
        for index, (new, fingerprint) in enumerate(zip(requests, fingerprints, strict=True)):
            run = None
            if new.submission.run is not None:
                run = runs.get((new.agent.pk, new.submission.run))
                if run is None:
                    results[index] = CreateResult(error=UnknownRun())
                    continue
            pending.append(_Pending(index=index, new=new, fingerprint=fingerprint, run=run))
        policy: Policy | None
        try:
            policy = policy_load()
        except Exception:
            # policy_decide_many tries once more, and holds every request if it still cannot.
            logger.exception("loading the policy failed")
            policy = None
        # Interdependent decisions (throttles, running totals, circuit breakers) need one
        # agent's creations decided one after another, under its exclusive lock; otherwise a
        # batch only keeps halts out. A request alone takes the exclusive lock anyway.
        exclusive = len(pending) < 2 or policy is None or policy.interdependent
        for wave in _waves(pending, interdependent=exclusive):
            _create_wave(wave, now=now, exclusive=exclusive, policy=policy)
        if publish_after_commit:
            created_ids = [p.approval.pk for p in pending if p.approval is not None]
            transaction.on_commit(partial(realtime.publish_approvals_created, created_ids))
    for item in pending:
        assert item.approval is not None
        approval = item.approval
        if item.new.source == Source.AAP and approval.status == Status.PENDING:
            # Only a request the policy held can be the exact resubmission a reviewer suggested.
            approval = _approve_if_suggested(approval=approval)
        results[item.index] = CreateResult(approval=approval, created=True)
    return results


def _runs_for_submissions(requests: list[NewApprovalRequest]) -> dict[tuple[int, str], Run]:
    codes = {new.submission.run for new in requests if new.submission.run is not None}
    if not codes:
        return {}
    # Locked so a close committing meanwhile is seen: a request never joins a run that just
    # closed as if it were open. In id order, like every multi-row lock here.
    runs = Run.objects.select_for_update().filter(code__in=codes).order_by("pk")
    return {(run.agent_id, str(run.code)): run for run in runs}


def _waves(pending: list["_Pending"], *, interdependent: bool) -> list[list["_Pending"]]:
    """Split a batch so that each wave is decided with what the previous waves wrote.

    Usually one wave. When one verdict can change the next (throttles, running totals, a
    circuit breaker), an agent appears at most once per wave: its requests are decided one
    after another, as if they had come one by one, while different agents still share waves.
    """
    if len(pending) < 2 or not interdependent:
        return [pending] if pending else []
    waves: list[list[_Pending]] = []
    seen: dict[int, int] = {}
    for item in pending:
        wave = seen.get(item.new.agent.pk, 0)
        seen[item.new.agent.pk] = wave + 1
        if wave == len(waves):
            waves.append([])
        waves[wave].append(item)
    return waves


def _create_wave(
    wave: list[_Pending], *, now: datetime, exclusive: bool, policy: Policy | None
) -> None:
    """Decide, then write every row for a wave: the request (born decided when the policy
    decided), its events, policy evaluation, decision, audit records and notifications."""
    questions = [
        PolicyQuestion(agent=item.new.agent, submission=item.new.submission, run=item.run)
        for item in wave
        if item.run is None or item.run.is_open
    ]
    verdicts = iter(
        policy_decide_many(questions, now=now, exclusive=exclusive, policy=policy)
        if questions
        else []
    )
    for item in wave:
        if item.run is not None and not item.run.is_open:
            # A closed run takes no new requests whatever the policy says.
            item.verdict = Verdict(
                outcome=Outcome.DENY, why=run_refusal_why(item.run), decided_by="run"
            )
        else:
            item.verdict = next(verdicts)

    decided_at = timezone.now()
    approvals = [_new_approval(item, now=now, decided_at=decided_at) for item in wave]
    ids_assign(approvals)  # the rows written next refer to them
    rows_insert(approvals)
    teams = Team.objects.in_bulk({a.team_id for a in approvals if a.team_id is not None})

    events: list[ApprovalEvent] = []
    evaluations: list[PolicyEvaluation] = []
    decisions: list[Decision] = []
    audit: list[AuditEntry] = []
    for item, approval in zip(wave, approvals, strict=True):
        verdict, new = item.verdict, item.new
        assert verdict is not None
        item.approval = approval
        if approval.team_id is not None:
            approval.team = teams[approval.team_id]
        events.append(
            ApprovalEvent(
                approval=approval,
                kind="submitted",
                to_status=Status.PENDING,
                actor_type=ActorType.AGENT,
                actor_agent=new.agent,
            )
        )
        evaluation = PolicyEvaluation(
            approval=approval,
            rule_id=verdict.rule.id if verdict.rule else None,
            rule_name=verdict.rule.name if verdict.rule else "",
            outcome=verdict.outcome,
            decided_by=verdict.decided_by,
            reason=verdict.reason,
            reason_parts=verdict.why.as_json(),
            shadow_matches=[match.as_dict() for match in verdict.shadow_matches],
        )
        evaluations.append(evaluation)
        approval.policy_evaluation = evaluation
        audit += [
            AuditEntry(
                action=AuditAction.REQUEST_SUBMITTED,
                actor=new.agent,
                target=approval,
                after={
                    "status": Status.PENDING,
                    "tool": approval.tool,
                    "impact": approval.impact,
                    "confidence": approval.confidence,
                    "deadline_at": approval.deadline_at,
                    "fingerprint": approval.fingerprint,
                },
                origin=new.origin,
            ),
            # Holds are recorded too: "why did this one wait for a person?" is an auditor's
            # question.
            AuditEntry(
                action=AuditAction.POLICY_DECIDED,
                target=approval,
                after={
                    "outcome": evaluation.outcome,
                    "decided_by": evaluation.decided_by,
                    "rule_id": evaluation.rule_id,
                    "rule_name": evaluation.rule_name,
                    "reason": evaluation.reason,
                },
                origin=new.origin,
            ),
        ]
        if approval.status == Status.PENDING:
            continue
        # Decided by policy: the request is born decided, in this transaction, so nobody ever
        # sees it pending; its history still reads submitted -> decided.
        decision = Decision(
            approval=approval,
            status=approval.status,
            note=verdict.reason,
            decided_at=decided_at,
            expires_at=(
                decided_at + timedelta(seconds=settings.APPROVAL_VALIDITY_SECONDS)
                if approval.status == Status.APPROVED
                else None
            ),
        )
        decisions.append(decision)
        approval.decision = decision
        events.append(
            ApprovalEvent(
                approval=approval,
                kind=approval.status,
                from_status=Status.PENDING,
                to_status=approval.status,
                actor_type=ActorType.SYSTEM,
                note=verdict.reason,
            )
        )
        audit.append(
            AuditEntry(
                action=_AUDIT_ACTION_BY_OUTCOME[approval.status],
                target=approval,
                before={"status": Status.PENDING},
                after={
                    "status": approval.status,
                    "note": verdict.reason,
                    "expires_at": decision.expires_at,
                    "approved_arguments": None,
                },
                origin=new.origin,
            )
        )
    rows_insert(events)
    rows_insert(evaluations)
    rows_insert(decisions)
    # Only a held request needs a person: one decided by policy pages nobody.
    notifications_on_submitted_many(
        approvals=[approval for approval in approvals if approval.status == Status.PENDING]
    )
    # Last: from here to the commit, every audited write in the system waits for this one.
    audit_records_append(audit)
    denied_by_policy: set[int] = set()
    for item, approval in zip(wave, approvals, strict=True):
        verdict = item.verdict
        assert verdict is not None
        if approval.status == Status.PENDING:
            continue
        if approval.source == Source.AAP:
            # A brand-new request has no Slack messages to update; AAP receivers hear of it.
            webhooks.notification_record(approval_id=approval.pk, decided_at=decided_at)
        if approval.status == Status.DENIED and verdict.decided_by not in {"halt", "run"}:
            denied_by_policy.add(approval.agent_id)
    for agent_id in sorted(denied_by_policy):
        _after_denial(agent_id=agent_id)


def _new_approval(item: _Pending, *, now: datetime, decided_at: datetime) -> ApprovalRequest:
    verdict, new, submission = item.verdict, item.new, item.new.submission
    assert verdict is not None
    timeout_seconds = _effective_timeout(submission.timeout)
    if verdict.time_to_decide_seconds:
        # The policy may shorten the deadline, never lengthen it.
        timeout_seconds = min(timeout_seconds, verdict.time_to_decide_seconds)
    born_decided: dict[str, Status] = {
        Outcome.APPROVE: Status.APPROVED,
        Outcome.DENY: Status.DENIED,
    }
    status = born_decided.get(verdict.outcome, Status.PENDING)
    return ApprovalRequest(
        agent=new.agent,
        source=new.source,
        arguments_raw=submission.arguments_raw,
        context_raw=submission.context_raw,
        server_raw=submission.server_raw,
        idempotency_key=new.idempotency_key,
        fingerprint=item.fingerprint,
        tool=submission.tool,
        arguments=submission.arguments,
        summary=submission.summary,
        reasoning=submission.reasoning,
        context=submission.context,
        confidence=submission.confidence,
        impact=submission.impact,
        run=item.run,
        labels=submission.labels,
        links=submission.links,
        arguments_schema=submission.arguments_schema,
        timeout=submission.timeout,
        timeout_seconds=timeout_seconds,
        deadline_at=now + timedelta(seconds=timeout_seconds),
        team_id=verdict.team_id,
        required_approvals=verdict.required_approvals,
        escalation_chain_id=verdict.escalation_chain_id,
        hold_reason=verdict.reason if verdict.outcome == Outcome.HOLD else "",
        hold_reason_parts=verdict.why.as_json() if verdict.outcome == Outcome.HOLD else None,
        status=status,
        decided_at=None if status == Status.PENDING else decided_at,
    )


def _replay(existing: ApprovalRequest, fingerprint: str) -> ApprovalRequest:
    if existing.fingerprint != fingerprint:
        raise IdempotencyConflict()
    return approval_request_expire_if_overdue(approval=existing)


def approval_request_approve(
    *,
    approval: ApprovalRequest,
    reviewer: User,
    note: str = "",
    arguments: dict[str, Any] | None = None,
    routing: ChangeRouting | None = None,
) -> ApprovalRequest:
    """Approve, optionally with changed arguments ("approve with changes").

    `arguments` equal to the submitted ones count as a plain approval. Changed arguments pass
    only if the policy, judging them as a new request, neither denies them nor routes them
    beyond `reviewer` (approvals.policies.changes): otherwise ReviewRejected, nothing recorded.
    `routing`: the judgment approvals.reviews made in the caller's transaction and checked the
    request's counted votes against (a quorum's voters, not one reviewer); None judges here.
    """
    now = timezone.now()
    approved_arguments = None if arguments in (None, approval.arguments) else arguments
    if approved_arguments is None:
        return _transition(
            approval=approval,
            to_status=Status.APPROVED,
            actor_type=ActorType.REVIEWER,
            actor_user=reviewer,
            note=note,
            now=now,
            expires_at=now + timedelta(seconds=settings.APPROVAL_VALIDITY_SECONDS),
        )
    # One transaction: the agent's row, locked by the judgment, stays locked until the change
    # is approved, so no running total or throttle moves in between.
    with transaction.atomic():
        if routing is None:
            routing = change_routing_judge(approval=approval, arguments=approved_arguments)
            _change_ensure_routed_alike(approval=approval, routing=routing)
        if approval.source == Source.AAP:
            # AAP has no way to say "approved, but run these arguments instead": an adapter would
            # run the submitted call. So an edit becomes a denial that carries the suggestion,
            # and an exact resubmission of it from the same agent is approved at once when the
            # policy routes it as it routed this change (_approve_if_suggested).
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


def _change_ensure_routed_alike(*, approval: ApprovalRequest, routing: ChangeRouting) -> None:
    """For callers without the reviews layer's vote count: refuse changed arguments the policy
    denies, or routes to another team or to more approvals than the request has. (The reviews
    layer instead counts who approved them, and records a proposal where they fall short.)"""
    if routing.refused:
        raise ReviewRejected(routing.refusal_message(), code=POLICY_DENIES, param="arguments")
    if routing.routes and (
        routing.team_id != approval.team_id
        or routing.required_approvals > approval.required_approvals
    ):
        raise ReviewRejected(
            f"Not recorded: the policy holds these arguments for {routing.describe()}, not as "
            f"this request is routed. {routing.verdict.reason}",
            code=CHANGE_NEEDS_REVIEW,
            param="arguments",
        )


def approval_request_deny(
    *, approval: ApprovalRequest, reviewer: User, reason: str
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
    *, approval: ApprovalRequest, halted_by: User | None, note: str
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


def _may_transition(
    locked: ApprovalRequest,
    *,
    expected: ApprovalRequest,
    to_status: str,
    actor_type: str,
    now: datetime,
    approving: bool = False,
) -> bool:
    """Whether the locked row may move to `to_status` now: the compare of compare-and-set.

    `approving`: a reviewer approves (or, for AAP, suggests changed arguments).
    """
    if locked.status != Status.PENDING:
        return False
    if actor_type == ActorType.REVIEWER and locked.team_id != expected.team_id:
        # The reviewer's access was checked against the team the request had then: if it has
        # been escalated since, this decision must not land on the strength of that check.
        return False
    if approving and locked.required_approvals != expected.required_approvals:
        # The votes were counted against the quorum the request had then: a proposed change
        # that raised it meanwhile (approvals.reviews) must not be outrun by a stale approval.
        return False
    # Expiry happens only at or after the deadline; anything else only before it. This is what
    # makes "never approved late" hold even if beat has not run yet.
    if to_status == Status.EXPIRED:
        return locked.deadline_at <= now
    return locked.deadline_at > now


def _transition(
    *,
    approval: ApprovalRequest,
    to_status: str,
    actor_type: str,
    actor_user: User | None = None,
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

    approving = actor_type == ActorType.REVIEWER and (
        to_status == Status.APPROVED or suggested_arguments is not None
    )
    with transaction.atomic():
        locked = approval_lock(approval.pk)
        changed = 0
        if locked is not None and _may_transition(
            locked,
            expected=approval,
            to_status=to_status,
            actor_type=actor_type,
            now=now,
            approving=approving,
        ):
            changed = ApprovalRequest.objects.filter(pk=approval.pk).update(
                status=to_status, decided_at=now
            )
        if changed == 1:
            # First after commit: waiting agents hear of it before anything else is done.
            transaction.on_commit(
                partial(
                    realtime.publish_resolved,
                    approval_id=approval.pk,
                    code=approval.code,
                    status=to_status,
                )
            )
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
            if notify and approval.source == Source.AAP:
                # Same transaction as the decision: the outcome and its webhook event commit
                # together or not at all. (A request's source never changes: no read needed to
                # know that a native request has no AAP receiver.)
                webhooks.notification_record(approval_id=approval.pk, decided_at=now)
            transaction.on_commit(partial(realtime.publish_approval_changed, approval.pk))

    current = ApprovalRequest.objects.select_related("decision").get(pk=approval.pk)
    if changed == 1:
        return current
    rerouted = (
        actor_type == ActorType.REVIEWER
        and current.status == Status.PENDING
        and current.team_id != approval.team_id
    )
    if rerouted and not reviewer_may_see(user=actor_user, team_id=current.team_id):
        raise ApprovalNotVisible()
    if (
        approving
        and current.status == Status.PENDING
        and current.deadline_at > timezone.now()
        and current.required_approvals != approval.required_approvals
    ):
        raise ReviewRejected(
            f"Not recorded: this request needs {current.required_approvals} approvals now (a "
            "proposed change raised its quorum meanwhile). Approve again to cast your vote.",
            code=QUORUM_CHANGED,
        )
    if rerouted:
        # Escalated meanwhile (only a reviewer's update checks the team). A reviewer who may see
        # the new team too (staff, or a member of both) decides it as it is now; anyone else
        # is told it is not there, as for any request they cannot see.
        return _transition(
            approval=current,
            to_status=to_status,
            actor_type=actor_type,
            actor_user=actor_user,
            actor_agent=actor_agent,
            note=note,
            now=now,
            expires_at=expires_at,
            approved_arguments=approved_arguments,
            suggested_arguments=suggested_arguments,
            event_kind=event_kind,
            notify=notify,
        )
    if current.status == Status.PENDING and to_status != Status.EXPIRED:
        # Still pending, so the deadline must have passed: it expires now, not approves late.
        current = approval_request_expire_if_overdue(approval=current)
    raise TransitionConflict(current_status=current.status)


def decision_page_view_record(*, approval: ApprovalRequest, reviewer: User) -> None:
    """Remember when a reviewer first opened a pending request: the start of their time on it,
    which the rubber-stamping signal compares with when they decided."""
    if approval.status != Status.PENDING or not reviewer.is_authenticated:
        return
    DecisionPageView.objects.get_or_create(
        approval=approval, reviewer_id=reviewer.pk, defaults={"first_viewed_at": timezone.now()}
    )


def _approve_if_suggested(*, approval: ApprovalRequest) -> ApprovalRequest:
    """Approve a fresh AAP request at once if reviewers suggested exactly this call, and the
    policy routes it where their approval counts.

    The suggestion must come from a denial of the same agent's request for the same tool, be
    recent, and not have been used yet: one human decision permits one execution. The new
    request was just judged by the policy like any other (it is held, or we would not be here):
    it is approved at once only if those who approved the suggestion may decide it as it is
    routed now and are as many as it needs. Otherwise it stays held for that team and quorum,
    the suggestion is used up by it, and the approvals that count there are carried over as
    votes, each once.
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
    endorsers = _suggestion_endorsers(suggestion, canonical=submitted)
    counted = [user for user in endorsers if reviewer_may_see(user=user, team_id=approval.team_id)]
    now = timezone.now()
    try:
        with transaction.atomic():
            # The one-to-one link is the claim: a suggestion serves one resubmission only.
            ApprovalRequest.objects.filter(pk=approval.pk).update(
                approved_as_suggested_on=suggestion.approval
            )
            if len(counted) >= approval.required_approvals:
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
            _suggestion_votes_carry(approval=approval, suggestion=suggestion, counted=counted)
    except IntegrityError:
        pass  # another resubmission took the suggestion
    except TransitionConflict:
        pass  # decided (or cancelled) meanwhile: that outcome stands
    return ApprovalRequest.objects.get(pk=approval.pk)


def _suggestion_endorsers(suggestion: Decision, *, canonical: str) -> list[User]:
    """Who approved the suggested arguments: the reviewer who decided, and the quorum's voters
    for exactly those arguments."""
    endorsers = [suggestion.reviewer] if suggestion.reviewer is not None else []
    votes = ApprovalVote.objects.filter(approval_id=suggestion.approval_id).select_related(
        "reviewer"
    )
    for vote in votes:
        same = json.dumps(vote.arguments, sort_keys=True) == canonical
        if same and vote.reviewer not in endorsers:
            endorsers.append(vote.reviewer)
    return endorsers


def _suggestion_votes_carry(
    *, approval: ApprovalRequest, suggestion: Decision, counted: list[User]
) -> None:
    """A resubmission the suggestion's approvals do not suffice for: it stays held, with the
    approvals that count for its team recorded as its votes and the reason in its history."""
    for user in counted:
        ApprovalVote.objects.create(
            approval=approval,
            reviewer=user,
            note=f"Approved these arguments on request {suggestion.approval.code}.",
        )
    who = ", ".join(user.get_username() for user in counted) or "none of them"
    team = approval.team.name if approval.team else "staff"
    note = (
        f"Resubmission of the arguments suggested on request {suggestion.approval.code}. The "
        f"policy holds it for {team} with {approval.required_approvals} approval"
        f"{'s' if approval.required_approvals != 1 else ''}, more than the suggestion's "
        f"approvals give here; counted: {who}."
    )
    ApprovalEvent.objects.create(
        approval_id=approval.pk,
        kind="suggestion_resubmitted",
        from_status=Status.PENDING,
        to_status=Status.PENDING,
        actor_type=ActorType.SYSTEM,
        note=note,
    )
    audit_record(
        action=AuditAction.VOTE_CAST,
        target=approval,
        after={
            "carried_from": str(suggestion.approval.code),
            "reviewers": [user.get_username() for user in counted],
            "required": approval.required_approvals,
        },
    )
    transaction.on_commit(partial(realtime.publish_approval_changed, approval.pk))
