"""Creating approval requests: one at a time or batched, idempotent, decided by the policy at
once or held for a reviewer.

A request born decided (the policy approved or denied it) is written decided in the creating
transaction, so nobody ever sees it pending; its records come from the same builder a
transition uses (approvals.services.decisions)."""

# long: batched creation's steps share the private _Pending rows (decisions.py writes)

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.models import Agent, Run
from agents.services import run_refusal_why
from approvals.audit import AuditAction, AuditEntry, audit_records_append
from approvals.events import DenialCounted, RequestsCreated
from approvals.exceptions import (
    IdempotencyConflict,
    UnknownRun,
)
from approvals.models import (
    ActorType,
    ApprovalEvent,
    ApprovalRequest,
    Decision,
    Impact,
    Kind,
    Outcome,
    PolicyEvaluation,
    Source,
    Status,
    Team,
)
from approvals.policies.evaluation import (
    Policy,
    PolicyQuestion,
    Verdict,
    policy_decide_many,
    policy_load,
)
from approvals.services.decisions import decision_records_build
from approvals.services.suggestions import _approve_if_suggested
from approvals.services.transitions import approval_request_expire_if_overdue
from approvals.tracing import CreatedSpans, spans_created
from console import exact_json, tracing
from console.durations import duration_seconds
from console.events import emit
from console.hot_statements import (
    RidesAlong,
    columns_of,
    instance_from_row,
    retried_if_prepared_stale,
    statements_rows,
    values_in,
)
from console.new_instances import instance_new
from console.request_context import RequestContext, current_request_context
from console.row_inserts import ids_assign, ids_reservation

logger = logging.getLogger(__name__)


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
    # Native API: [{"label", "url"}] to the source system (agents.api.links checks them).
    links: list[dict[str, str]] = field(default_factory=list)
    # AAP only: the exact JSON text of arguments, context and `server`, echoed instead of the
    # parsed (rounded, key-sorted) copies.
    arguments_raw: str = ""
    context_raw: str = ""
    server_raw: str = ""
    # A question (Kind.QUESTION) asks for an answer valid against answer_schema.
    kind: str = Kind.APPROVAL
    answer_schema: dict[str, Any] | None = None

    def fingerprint(self) -> str:
        """A digest of the parsed fields: key order and whitespace do not change it."""
        # Shallow: every value is JSON already, and json.dumps reads nested values as they are
        # (asdict's deep copy of the arguments was most of a fingerprint's work).
        fields = {each.name: getattr(self, each.name) for each in dataclass_fields(self)}
        if not fields["links"]:
            # Requests without links keep the digest they had before links existed.
            del fields["links"]
        if fields["kind"] == Kind.APPROVAL and fields["answer_schema"] is None:
            # Approvals keep the digest they had before questions existed.
            del fields["kind"], fields["answer_schema"]
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
    return max(1, duration_seconds(duration[:-1], duration[-1], maximum=maximum))


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
    requests: list[NewApprovalRequest],
    *,
    publish_after_commit: bool = True,
    checks: Sequence[RidesAlong] = (),
) -> list[CreateResult]:
    """Create many requests at once: one transaction, a few queries for the lot.

    The same rules as one at a time (approval_request_create is this with a list of one):
    idempotency, the run check, the policy verdict, events, audit, notifications. Batched
    intake (agents.api.intake) gathers the requests that arrive while the previous batch is
    being written, so under load the locks every creation needs (the agent's row, the audit
    chain head) are taken once per batch instead of once per request.

    `publish_after_commit=False`: the caller pushes the new rows to reviewers itself
    (realtime.publish_approvals_created), after it has answered the agents.

    `checks`: the caller's statements to send with the transaction's first round trip (the
    agents' lock), whose `take` may raise to roll the creation back before anything is written
    (the intake's lookup of credentials it verified earlier,
    agents.remembered_credentials.CredentialsStillActive). Sent even if nothing is created.

    Run again, whole, if a schema change (a rolling deploy's migration) left a prepared
    statement unfit in its transaction (console.hot_statements.retried_if_prepared_stale):
    nothing of that transaction was kept, and the idempotency keys make a second run store
    nothing twice.
    """
    return retried_if_prepared_stale(
        partial(
            _requests_create, requests, publish_after_commit=publish_after_commit, checks=checks
        )
    )


# long: idempotent replay, waves and results share the batch's index slots; steps named inside
def _requests_create(
    requests: list[NewApprovalRequest], *, publish_after_commit: bool, checks: Sequence[RidesAlong]
) -> list[CreateResult]:
    fingerprints = [new.submission.fingerprint() for new in requests]
    results: list[CreateResult | None] = [None] * len(requests)
    # A lone request is not looked up first: a replay is rare, and the unique key on agent and
    # idempotency key stops it at the insert (below), where it is answered as a replay. One
    # round trip fewer for what a lone caller waits on. A batch looks first: one replay would
    # otherwise send all its requests through again one by one.
    existing = _existing_by_key(requests) if len(requests) > 1 else {}
    first_with_key: set[tuple[int, str]] = set()
    fresh: list[int] = []
    for index, new in enumerate(requests):
        key = (new.agent.pk, new.idempotency_key)
        if key in existing:
            results[index] = _replay_result(existing[key], fingerprints[index], new.submission)
        elif key not in first_with_key:
            first_with_key.add(key)
            fresh.append(index)
    if checks and not fresh:
        _checks_sent(checks)  # only replays: nothing to send them with
    if fresh:
        try:
            created = _create_fresh(
                [requests[i] for i in fresh],
                [fingerprints[i] for i in fresh],
                publish_after_commit=publish_after_commit,
                checks=checks,
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
                            [requests[index]],
                            publish_after_commit=publish_after_commit,
                            checks=checks,
                        )[0]
                    except Exception as failure:
                        results[index] = CreateResult(failure=failure)
            else:
                winner = _existing(requests[fresh[0]])
                if winner is None:
                    raise  # not a race on the key: this request cannot be stored
                submission = requests[fresh[0]].submission
                results[fresh[0]] = _replay_result(winner, fingerprints[fresh[0]], submission)
    for index, slot in enumerate(results):
        if slot is None:
            # The same key twice in one batch: now that the first is written, a replay of it.
            results[index] = approval_requests_create(
                [requests[index]], publish_after_commit=publish_after_commit, checks=checks
            )[0]
    return [result for result in results if result is not None]


def _checks_sent(checks: Sequence[RidesAlong]) -> None:
    results = statements_rows([check.statement() for check in checks])
    for check, rows in zip(checks, results, strict=True):
        check.take(rows)


def _existing(new: NewApprovalRequest) -> ApprovalRequest | None:
    return ApprovalRequest.objects.filter(
        agent=new.agent, idempotency_key=new.idempotency_key
    ).first()


def _existing_by_key(requests: list[NewApprovalRequest]) -> dict[tuple[int, str], ApprovalRequest]:
    """The requests already stored under these agents' keys (replays), by (agent, key).

    A batch's first statement, every batch: a fixed one (console.hot_statements), prepared once
    per connection instead of compiled by the ORM each time, and its transaction's `BEGIN` goes
    with it. Read into a dict: no order.
    """
    agent_ids = sorted({new.agent.pk for new in requests})
    keys = sorted({new.idempotency_key for new in requests})
    agents_in, agent_params = values_in("agent_id", agent_ids)
    keys_in, key_params = values_in("idempotency_key", keys)
    (rows,) = statements_rows(
        [
            (
                _EXISTING_BY_KEY.format(agents_in=agents_in, keys_in=keys_in),
                [*agent_params, *key_params],
            )
        ]
    )
    wanted = {(new.agent.pk, new.idempotency_key) for new in requests}
    found = (instance_from_row(ApprovalRequest, row) for row in rows)
    return {
        (row.agent_id, row.idempotency_key): row
        for row in found
        if (row.agent_id, row.idempotency_key) in wanted
    }


_EXISTING_BY_KEY = (
    f'SELECT {columns_of(ApprovalRequest)} FROM "{ApprovalRequest._meta.db_table}" '  # noqa: S608 (our table)
    "WHERE {agents_in} AND {keys_in}"
)


def _replay_result(
    existing: ApprovalRequest, fingerprint: str, submission: Submission
) -> CreateResult:
    try:
        return CreateResult(approval=_replay(existing, fingerprint, submission), created=False)
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
    # When the policy decided it (time.time_ns()), kept only while tracing is on.
    policy_ns: tuple[int, int] = (0, 0)


def _create_fresh(
    requests: list[NewApprovalRequest],
    fingerprints: list[str],
    *,
    publish_after_commit: bool,
    checks: Sequence[RidesAlong],
) -> list[CreateResult]:
    now = timezone.now()
    started_ns = time.time_ns() if tracing.enabled() else 0
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
        policy, exclusive = _policy_and_lock_mode(pending)
        waves = _waves(pending, interdependent=exclusive)
        if checks and not waves:
            _checks_sent(checks)  # every request refused before its verdict (an unknown run)
        for number, wave in enumerate(waves):
            _create_wave(
                wave,
                now=now,
                exclusive=exclusive,
                policy=policy,
                checks=checks if number == 0 else (),
            )
        created = [p.approval for p in pending if p.approval is not None]
        if created:
            _created_emit(created, publish_after_commit=publish_after_commit)
        if started_ns:
            transaction.on_commit(partial(_spans_created, pending, started_ns), robust=True)
    for item in pending:
        assert item.approval is not None
        approval = item.approval
        if item.new.source == Source.AAP and approval.status == Status.PENDING:
            # Only a request the policy held can be the exact resubmission a reviewer suggested.
            approval = _approve_if_suggested(approval=approval)
        results[item.index] = CreateResult(approval=approval, created=True)
    return results


def _created_emit(created: list[ApprovalRequest], *, publish_after_commit: bool) -> None:
    emit(
        RequestsCreated(
            approval_ids=[approval.pk for approval in created],
            routed_ids=[
                a.pk for a in created if a.status == Status.PENDING and a.team_id is not None
            ],
            # A brand-new request has no Slack messages to update; AAP receivers hear of one
            # the policy decided.
            aap_decided_at={
                a.pk: a.decided_at
                for a in created
                if a.decided_at is not None and a.source == Source.AAP
            },
            reviewers_told_by_caller=not publish_after_commit,
        )
    )


def _policy_and_lock_mode(pending: list["_Pending"]) -> tuple[Policy | None, bool]:
    """The policy, if loaded here, and whether the agents' locks must be exclusive.

    Interdependent decisions (throttles, running totals, circuit breakers) need one agent's
    creations decided one after another, under its exclusive lock; otherwise a batch only keeps
    halts out. A request alone takes the exclusive lock anyway, and leaves the policy to
    policy_decide_many, which reads its version with the lock (one round trip fewer).
    """
    if len(pending) < 2:
        return None, True
    try:
        policy = policy_load()
    except Exception:
        # policy_decide_many tries once more, and holds every request if it still cannot.
        logger.exception("loading the policy failed")
        return None, True
    return policy, policy.interdependent


def _spans_created(pending: list[_Pending], started_ns: int) -> None:
    spans_created(
        [
            CreatedSpans(
                approval=item.approval,
                started_ns=started_ns,
                policy_started_ns=item.policy_ns[0],
                policy_ended_ns=item.policy_ns[1],
            )
            for item in pending
            if item.approval is not None
        ],
        ended_ns=time.time_ns(),
    )


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


# long: every row a wave writes, in insert order (audit last, under the head lock)
def _create_wave(
    wave: list[_Pending],
    *,
    now: datetime,
    exclusive: bool,
    policy: Policy | None,
    checks: Sequence[RidesAlong],
) -> None:
    """Decide, then write every row for a wave: the request (born decided when the policy
    decided), its events, policy evaluation, decision and audit records."""
    policy_started_ns = time.time_ns() if tracing.enabled() else 0
    # The requests' ids and the caller's checks come back with the agents' lock: one round
    # trip fewer each.
    reserved = ids_reservation(ApprovalRequest, len(wave))
    _verdicts_assign(
        wave,
        now=now,
        exclusive=exclusive,
        policy=policy,
        along_with=[*([reserved] if reserved else []), *checks],
    )
    if policy_started_ns:
        policy_ended_ns = time.time_ns()
        for item in wave:
            item.policy_ns = (policy_started_ns, policy_ended_ns)
    decided_at = timezone.now()
    approvals = [_new_approval(item, now=now, decided_at=decided_at) for item in wave]
    for approval in approvals:
        # Born with no outcome: the answer to the agent says so without asking the database.
        ApprovalRequest.outcome.related.set_cached_value(approval, None)
    ids_assign(approvals, reserved=reserved)  # the rows written with them refer to them
    # Only a held request's team is read here (its notifications, the agent's answer naming the
    # team it waits for). One the policy decided belongs to its rule's team all the same, by id:
    # reading the team for it would cost the hottest path (policy-approved calls) a round trip.
    teams = Team.objects.in_bulk(
        {a.team_id for a in approvals if a.team_id is not None and a.status == Status.PENDING}
    )

    events: list[ApprovalEvent] = []
    evaluations: list[PolicyEvaluation] = []
    decisions: list[Decision] = []
    audit: list[AuditEntry] = []
    for item, approval in zip(wave, approvals, strict=True):
        verdict, new = item.verdict, item.new
        assert verdict is not None
        item.approval = approval
        if approval.team_id in teams:
            approval.team = teams[approval.team_id]
        # Built with `approval=`: the one-to-one's descriptor caches it on the request too
        # (approval.policy_evaluation), as it does the decision below.
        evaluation = _evaluation(approval, verdict)
        evaluations.append(evaluation)
        events.append(
            instance_new(
                ApprovalEvent,
                approval=approval,
                kind="submitted",
                to_status=Status.PENDING,
                actor_type=ActorType.AGENT,
                actor_agent=new.agent,
            )
        )
        audit += _submission_audit(approval, evaluation, new)
        if approval.status == Status.PENDING:
            continue
        # Decided by policy: the request is born decided, in this transaction, so nobody ever
        # sees it pending; its history still reads submitted -> decided.
        records = decision_records_build(
            approval=approval,
            status=approval.status,
            actor_type=ActorType.SYSTEM,
            decided_at=decided_at,
            note=verdict.reason,
            origin=new.origin,
        )
        decisions.append(records.decision)
        events.append(records.event)
        audit.append(records.audit)
    # Last: from here to the commit, every audited write in the system waits for this one.
    # The rows go in with the head's lock (one round trip; few rows: one statement).
    audit_records_append(audit, along_with=[approvals, events, evaluations, decisions])
    denied_by_policy = {
        approval.agent_id
        for item, approval in zip(wave, approvals, strict=True)
        if approval.status == Status.DENIED
        and item.verdict is not None
        and item.verdict.decided_by not in {"halt", "run"}
    }
    # In the transaction: the next wave must be decided with a tripped breaker's halt in place.
    for agent_id in sorted(denied_by_policy):
        emit(DenialCounted(agent_id=agent_id))


def _verdicts_assign(
    wave: list[_Pending],
    *,
    now: datetime,
    exclusive: bool,
    policy: Policy | None,
    along_with: Sequence[RidesAlong],
) -> None:
    questions = [
        PolicyQuestion(agent=item.new.agent, submission=item.new.submission, run=item.run)
        for item in wave
        if item.run is None or item.run.is_open
    ]
    if not questions and along_with:
        _checks_sent(along_with)  # every run closed: no lock to send them with
    verdicts = iter(
        policy_decide_many(
            questions, now=now, exclusive=exclusive, policy=policy, along_with=along_with
        )
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
            item.verdict = _question_held(item.new.submission, next(verdicts))


def _question_held(submission: Submission, verdict: Verdict) -> Verdict:
    """Only a person can answer: a rule that would approve a question holds it instead
    (the rule's team, if it names one, answers it); a denial stands."""
    if submission.kind != Kind.QUESTION or verdict.outcome != Outcome.APPROVE:
        return verdict
    return replace(
        verdict,
        outcome=Outcome.HOLD,
        why=verdict.why + "; a question waits for a person's answer",
    )


def _evaluation(approval: ApprovalRequest, verdict: Verdict) -> PolicyEvaluation:
    return instance_new(
        PolicyEvaluation,
        approval=approval,
        rule_id=verdict.rule.id if verdict.rule else None,
        rule_name=verdict.rule.name if verdict.rule else "",
        outcome=verdict.outcome,
        decided_by=verdict.decided_by,
        reason=verdict.reason,
        reason_parts=verdict.why.as_json(),
        shadow_matches=[match.as_dict() for match in verdict.shadow_matches],
    )


def _submission_audit(
    approval: ApprovalRequest, evaluation: PolicyEvaluation, new: NewApprovalRequest
) -> list[AuditEntry]:
    return [
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
        # Holds are recorded too: "why did this one wait for a person?" is an auditor's question.
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
    return instance_new(
        ApprovalRequest,
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
        kind=submission.kind,
        answer_schema=submission.answer_schema,
        answer_schema_raw=""
        if submission.answer_schema is None
        else json.dumps(submission.answer_schema),
        timeout=submission.timeout,
        timeout_seconds=timeout_seconds,
        traceparent=(new.origin or current_request_context()).traceparent,
        deadline_at=now + timedelta(seconds=timeout_seconds),
        team_id=verdict.team_id,
        required_approvals=verdict.required_approvals,
        escalation_chain_id=verdict.escalation_chain_id,
        hold_reason=verdict.reason if verdict.outcome == Outcome.HOLD else "",
        hold_reason_parts=verdict.why.as_json() if verdict.outcome == Outcome.HOLD else None,
        status=status,
        decided_at=None if status == Status.PENDING else decided_at,
    )


def _replay(existing: ApprovalRequest, fingerprint: str, submission: Submission) -> ApprovalRequest:
    """The request stored under this key, if the submission repeats it field for field.

    Every field counts, all of `context` too (a session id, a timestamp): AAP binds a key to the
    whole request ("the same key with different field values" is a conflict). A resubmission,
    under a new key, is compared more leniently (approvals.services.suggestions).
    """
    if existing.fingerprint != fingerprint:
        field = _field_differing(existing, submission)
        raise IdempotencyConflict(
            "The idempotency key was already used for a different request"
            + (f": its {field} differs." if field else ".")
        )
    return approval_request_expire_if_overdue(approval=existing)


def _field_differing(existing: ApprovalRequest, submission: Submission) -> str | None:
    """The first of the fields every surface calls alike that differs from the stored request's,
    for the conflict's message; None when the difference is elsewhere (summary, impact, ...)."""
    fields = (
        ("tool", existing.tool, submission.tool),
        (
            "arguments",
            _json_compared(existing.arguments_raw, existing.arguments),
            _json_compared(submission.arguments_raw, submission.arguments),
        ),
        ("timeout", existing.timeout, submission.timeout),
        (
            "context",
            _json_compared(existing.context_raw, existing.context),
            _json_compared(submission.context_raw, submission.context),
        ),
        ("server", _json_compared(existing.server_raw), _json_compared(submission.server_raw)),
    )
    return next((name for name, stored, sent in fields if stored != sent), None)


def _json_compared(raw: str, parsed: Any = None) -> str:
    """A JSON field as the fingerprint compares it: the exact text's value when there is one
    (AAP), else the parsed copy; key order and spacing aside."""
    return exact_json.canonical(exact_json.loads(raw) if raw else parsed)
