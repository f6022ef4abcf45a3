"""Recording what happened after the decision: one outcome per request, written once.

The agent reports it (the native API, the SDK's decorator), its run's trace carries it (a tool
result event naming the request), or the console marks an approval whose validity passed with
no word as `not_reported`: an approval is never assumed to have worked.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.models import Agent
from approvals.audit import AuditAction, audit_record
from approvals.events import OutcomeReported
from approvals.exceptions import OutcomeRefused
from approvals.models import (
    ApprovalRequest,
    OutcomeSource,
    OutcomeStatus,
    RequestOutcome,
    Status,
)
from console.events import emit
from console.hot_statements import runs_again_if_prepared_stale

OUTCOME_ALREADY_REPORTED = "outcome_already_reported"
NOT_APPROVED = "not_approved"


@dataclass(frozen=True)
class OutcomeReport:
    """One report, as validated by its surface (API serializer, trace event)."""

    status: str
    result: Any = None
    error: str = ""
    duration_ms: int | None = None
    cost: Decimal | None = None
    currency: str = ""

    def same_as(self, outcome: RequestOutcome) -> bool:
        return (
            self.status == outcome.status
            and self.result == outcome.result
            and self.error == outcome.error
            and self.duration_ms == outcome.duration_ms
            and self.cost == outcome.cost
            and self.currency == outcome.currency
        )


# long: under the row lock, the replay, approval and not_reported checks read in one order
def approval_outcome_report(
    *,
    approval: ApprovalRequest,
    report: OutcomeReport,
    source: str = OutcomeSource.AGENT,
    agent: Agent | None = None,
) -> tuple[RequestOutcome, bool]:
    """Record the request's outcome; returns it and whether this call wrote it.

    The same report again answers the stored outcome (idempotent); a different one is refused
    (409 outcome_already_reported). Only an approved request executes: anything else may only
    say `not_executed` (409 not_approved). The console's own `not_reported` mark gives way to
    the first real report that arrives late: it only ever meant "nobody told us".
    """
    if report.status != OutcomeStatus.NOT_EXECUTED and approval.status != Status.APPROVED:
        raise OutcomeRefused(
            f"The request is {approval.status}, not approved: it cannot have been executed. "
            "Only not_executed may be reported.",
            code=NOT_APPROVED,
        )
    if approval.status == Status.PENDING:
        raise OutcomeRefused(
            "The request is still pending: report its outcome once it is decided.",
            code=NOT_APPROVED,
        )
    try:
        with transaction.atomic():
            # Serializes reports of one request (PostgreSQL); the one-to-one key catches the rest.
            ApprovalRequest.objects.select_for_update().filter(pk=approval.pk).first()
            existing = RequestOutcome.objects.filter(approval=approval).first()
            if existing is not None and existing.source != OutcomeSource.SYSTEM:
                approval.outcome = _same_or_refused(existing, report)
                return existing, False
            outcome = _write(approval, report, source, existing)
            audit_record(
                action=AuditAction.OUTCOME_REPORTED,
                actor=agent,
                target=approval,
                before=None if existing is None else {"status": existing.status},
                after={
                    "status": outcome.status,
                    "source": outcome.source,
                    "duration_ms": outcome.duration_ms,
                    "cost": None if outcome.cost is None else str(outcome.cost),
                    "currency": outcome.currency,
                },
            )
            emit(
                OutcomeReported(
                    approval_id=approval.pk, status=outcome.status, source=outcome.source
                )
            )
    except IntegrityError:
        # Another report of the same request committed between our read and our insert.
        existing = RequestOutcome.objects.get(approval=approval)
        if existing.source == OutcomeSource.SYSTEM:
            # The console's mark committed first: like any late report, this one replaces it.
            return approval_outcome_report(
                approval=approval, report=report, source=source, agent=agent
            )
        approval.outcome = _same_or_refused(existing, report)
        return existing, False
    return outcome, True


def _same_or_refused(existing: RequestOutcome, report: OutcomeReport) -> RequestOutcome:
    if report.same_as(existing):
        return existing
    raise OutcomeRefused(
        f"This request's outcome was already reported ({existing.status}); "
        "a request has one outcome.",
        code=OUTCOME_ALREADY_REPORTED,
    )


def _write(
    approval: ApprovalRequest,
    report: OutcomeReport,
    source: str,
    existing: RequestOutcome | None,
) -> RequestOutcome:
    outcome = existing or RequestOutcome(approval=approval)
    outcome.status = report.status
    outcome.result = report.result
    outcome.error = report.error
    outcome.duration_ms = report.duration_ms
    outcome.cost = report.cost
    outcome.currency = report.currency
    outcome.source = source
    outcome.reported_at = timezone.now()
    outcome.save(force_insert=existing is None)
    approval.outcome = outcome
    return outcome


def approval_outcomes_mark_not_reported(*, now: datetime | None = None, limit: int = 500) -> int:
    """Mark approvals whose validity passed with no outcome as `not_reported` (the console's
    own word, source system); returns how many. Run by the beat (approvals.tasks)."""
    now = now or timezone.now()
    overdue = list(
        ApprovalRequest.objects.filter(
            status=Status.APPROVED,
            decision__expires_at__lt=now,
            outcome__isnull=True,
        ).values_list("pk", flat=True)[:limit]
    )
    return sum(_not_reported_mark(approval_id=pk) for pk in overdue)


@runs_again_if_prepared_stale  # one transaction; an outcome reported meanwhile stands
def _not_reported_mark(*, approval_id: int) -> bool:
    """Mark one approval `not_reported` unless it has an outcome; whether it was marked."""
    with transaction.atomic():
        # The same lock a report takes: a report racing this mark either commits first (and
        # is the outcome) or comes after it (and replaces it), never loses to it.
        approval = ApprovalRequest.objects.select_for_update().filter(pk=approval_id).first()
        if approval is None or RequestOutcome.objects.filter(approval=approval).exists():
            return False
        try:
            with transaction.atomic():
                outcome = _write(
                    approval,
                    OutcomeReport(status=OutcomeStatus.NOT_REPORTED),
                    OutcomeSource.SYSTEM,
                    None,
                )
        except IntegrityError:
            return False  # the agent's report won the race (SQLite): it is the outcome
        audit_record(
            action=AuditAction.OUTCOME_REPORTED,
            target=approval,
            after={"status": outcome.status, "source": outcome.source},
        )
        emit(OutcomeReported(approval_id=approval.pk, status=outcome.status, source=outcome.source))
    return True


def approval_outcomes_from_trace(*, agent: Agent, results: list[Any]) -> int:
    """Record the outcomes a run's trace carries (agents.events.TracedToolResult), for the
    agent's own requests only; returns how many were written. A trace is the agent's account
    too, but a late or repeated one must not fail the upload: a request another agent owns,
    one not approved, or one whose outcome is already known is skipped, not refused."""
    written = 0
    for traced in results:
        approval = (
            ApprovalRequest.objects.select_related("decision")
            .filter(agent=agent, code=traced.approval_code)
            .first()
        )
        if approval is None:
            continue
        report = OutcomeReport(
            status=traced.status,
            result=traced.result if traced.status == OutcomeStatus.SUCCEEDED else None,
            error=traced.error,
            cost=traced.cost,
        )
        try:
            _, created = approval_outcome_report(
                approval=approval, report=report, source=OutcomeSource.TRACE, agent=agent
            )
        except OutcomeRefused:
            continue
        written += created
    return written
