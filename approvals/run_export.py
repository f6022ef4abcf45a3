"""A run's record for replay: everything one run of an agent asked, was told and did, in order.

One JSON Lines document per run ("console-run-export/1"), so a team can replay a session in a
simulator: its requests, the policy's verdicts, the decisions, the outcomes and the run's trace
events, merged in the order the console recorded them, each line {"kind", "at", "data"}. Then
the audit records about the run and its requests, the chain's anchor, and a closing SHA-256 of
every line, as a retention archive has (approvals.retention): `run_export_verify` checks it
offline with this console's audit keys, and also that each request, verdict, decision and
outcome in it says what its HMAC-signed audit record says, so an edited line is caught even
when the checksum was recomputed. (Trace events are not in the audit trail: the checksum alone
covers them.)

Surfaces: GET /api/v1/runs/{id}/export (the agent, its own runs), GET
/api/v1/reviewer/runs/{id}/export (a reviewer who sees the run: approvals.access
.reviewer_may_see_run), the runs' admin action, and `manage.py run_export`. Every export is
audited (run.exported).

An export holds the run's requests its reader may see, as the run's timeline on a decision page
does: a reviewer's holds those routed to their teams, with their verdicts, decisions, outcomes and
audit records, and only counts the others (`requests_withheld`). Its trace events are those the
reader may see (approvals.access.trace_events_visible): an event naming a request left out (a
gated tool call: its tool, arguments, result) is left out too and counted
(`trace_events_withheld`); one naming no request is there. It verifies all the same: a request
left out is left out with every line and record about it.
"""

import hashlib
import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet

from agents.models import Run, TraceEvent
from approvals.access import trace_events_visible
from approvals.audit import (
    AuditAction,
    SignedLinesProblem,
    audit_anchor_current,
    audit_record,
    signed_lines_verify,
)
from approvals.audit.export import EXPORT_CHUNK_SIZE, audit_records_about
from approvals.audit.export import _row as audit_row
from approvals.models import ApprovalRequest, AuditRecord, Decision, RequestOutcome

EXPORT_FORMAT = "console-run-export/1"
CONTENT_TYPE = "application/x-ndjson"
TRACE_CHUNK_SIZE = 500

# Lines at the same instant keep this order: the run, each request with its verdict, decisions,
# trace events, outcomes, the run's close.
_RUN, _REQUEST, _DECISION, _TRACE, _OUTCOME, _CLOSED = range(6)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="microseconds") if moment else None


def _json(value: Any) -> Any:
    """As the line will read back: datetimes and decimals as JSON writes them."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _line(kind: str, data: dict[str, Any], at: datetime | None = None) -> bytes:
    entry: dict[str, Any] = {"kind": kind, "data": data}
    if at is not None:
        entry["at"] = _iso(at)
    return (json.dumps(entry, cls=DjangoJSONEncoder, sort_keys=True) + "\n").encode()


@dataclass(order=True)
class _Timed:
    at: datetime
    order: tuple[int, ...]
    line: bytes = field(compare=False)


def _run_data(run: Run) -> dict[str, Any]:
    return {
        "id": str(run.code),
        "agent": {"id": str(run.agent.code), "name": run.agent.name},
        "external_id": run.external_id or None,
        "name": run.name,
        "metadata": run.metadata,
        "budget": run.budget,
        "status": run.status,
        "close_reason": run.close_reason,
        "total_cost": run.total_cost,
        "created_at": _iso(run.created_at),
        "closed_at": _iso(run.closed_at),
    }


def _request_lines(approval: ApprovalRequest) -> Iterator[_Timed]:
    code, at = str(approval.code), approval.created_at
    yield _Timed(at, (_REQUEST, approval.pk, 0), _line("request", _request_data(approval), at))
    evaluation = getattr(approval, "policy_evaluation", None)
    if evaluation is not None:
        data = {
            "request": code,
            "outcome": evaluation.outcome,
            "decided_by": evaluation.decided_by,
            "rule": evaluation.rule_name,
            "reason": evaluation.reason,
            "reason_parts": evaluation.reason_parts,
            "shadow_matches": evaluation.shadow_matches,
        }
        yield _Timed(at, (_REQUEST, approval.pk, 1), _line("policy", data, at))


def _request_data(approval: ApprovalRequest) -> dict[str, Any]:
    return {
        "id": str(approval.code),
        "kind": approval.kind,
        "source": approval.source,
        "tool": approval.tool,
        "arguments": approval.arguments,
        "summary": approval.summary,
        "reasoning": approval.reasoning,
        "context": approval.context,
        "confidence": approval.confidence,
        "impact": approval.impact,
        "labels": approval.labels,
        "links": approval.links,
        "arguments_schema": approval.arguments_schema,
        "answer_schema": approval.answer_schema_in_order,
        "timeout": approval.timeout,
        "deadline_at": _iso(approval.deadline_at),
        "team": approval.team.name if approval.team else None,
        "required_approvals": approval.required_approvals,
        "fingerprint": approval.fingerprint,
        "traceparent": approval.traceparent or None,
        "status": approval.status,
    }


def _decision_line(decision: Decision) -> _Timed:
    approval = decision.approval
    # A request the policy decided is written decided: never let its decision come first.
    at = max(decision.decided_at, approval.created_at)
    data = {
        "request": str(approval.code),
        "status": decision.status,
        "decided_by": "reviewer" if decision.reviewer_id else "system",
        "reviewer": decision.reviewer.get_username() if decision.reviewer else None,
        "note": decision.note,
        "approved_arguments": decision.approved_arguments,
        "arguments_changed": decision.approved_arguments is not None
        and decision.approved_arguments != approval.arguments,
        "expires_at": _iso(decision.expires_at),
        "answer": decision.answer,
    }
    return _Timed(at, (_DECISION, approval.pk), _line("decision", data, at))


def _outcome_line(outcome: RequestOutcome) -> _Timed:
    data = {
        "request": str(outcome.approval.code),
        "status": outcome.status,
        "source": outcome.source,
        "result": outcome.result,
        "error": outcome.error,
        "duration_ms": outcome.duration_ms,
        "cost": outcome.cost,
        "currency": outcome.currency,
    }
    at = max(outcome.reported_at, outcome.approval.created_at)
    return _Timed(at, (_OUTCOME, outcome.approval_id), _line("outcome", data, at))


def _trace_lines(events: QuerySet[TraceEvent]) -> Iterator[_Timed]:
    events = events.order_by("recorded_at", "sequence")
    for event in events.iterator(chunk_size=TRACE_CHUNK_SIZE):
        data = {
            "sequence": event.sequence,
            "type": event.type,
            "occurred_at": _iso(event.occurred_at),
            "cost": event.cost,
            "event": event.data,
        }
        at = event.recorded_at
        yield _Timed(at, (_TRACE, event.sequence), _line("trace", data, at))


def _requests_withheld(*, run: Run, approvals: QuerySet[ApprovalRequest]) -> int:
    """How many of the run's requests are not among `approvals`."""
    everything = ApprovalRequest.objects.filter(run=run)
    return everything.count() - approvals.filter(run=run).count()


def _withheld(*, run: Run, approvals: QuerySet[ApprovalRequest]) -> dict[str, int]:
    """What the reader of `approvals` does not get of the run: its requests outside them, and
    the trace events naming those (or any other request outside them)."""
    events_seen = trace_events_visible(run=run, approvals=approvals).count()
    return {
        "requests_withheld": _requests_withheld(run=run, approvals=approvals),
        "trace_events_withheld": TraceEvent.objects.filter(run=run).count() - events_seen,
    }


def run_export_lines(*, run: Run, approvals: QuerySet[ApprovalRequest]) -> Iterator[bytes]:
    """The run's record, line by line (see the module's docstring), closed by its checksum.

    `approvals`: the requests the reader may see (approvals.access.approvals_visible_to; every
    request for the agent itself, the admin's staff and the command line). The run's others, and
    everything about them, are left out and counted in the first line's `requests_withheld`;
    trace events naming a request outside `approvals` likewise, in `trace_events_withheld`.
    """
    digest = hashlib.sha256()

    def signed(line: bytes) -> bytes:
        digest.update(line)
        return line

    header = {
        "format": EXPORT_FORMAT,
        "run": _run_data(run),
        **_withheld(run=run, approvals=approvals),
    }
    yield signed(_line("export", header))
    # The anchor first: an audit record written while this export runs lies beyond it, so it
    # is left out rather than failing verification.
    current = audit_anchor_current()
    anchor = str(current[0]) if current else ""
    visible = approvals.filter(run=run)
    requests = list(
        visible.select_related("policy_evaluation", "team").order_by("created_at", "pk")
    )
    decisions = Decision.objects.filter(approval__in=visible).select_related("approval", "reviewer")
    outcomes = RequestOutcome.objects.filter(approval__in=visible).select_related("approval")
    edges = [
        _Timed(run.created_at, (_RUN,), _line("opened", {"id": str(run.code)}, run.created_at))
    ]
    if run.closed_at:
        closed = {"status": run.status, "reason": run.close_reason}
        edges.append(_Timed(run.closed_at, (_CLOSED,), _line("closed", closed, run.closed_at)))
    for timed in heapq.merge(
        sorted(edges),
        sorted(line for approval in requests for line in _request_lines(approval)),
        sorted(_decision_line(decision) for decision in decisions),
        sorted(_outcome_line(outcome) for outcome in outcomes),
        _trace_lines(trace_events_visible(run=run, approvals=approvals)),
    ):
        yield signed(timed.line)
    codes = [str(run.code), *(str(approval.code) for approval in requests)]
    if current is not None:
        records = audit_records_about(codes).filter(sequence__lte=current[0].sequence)
        for record in records.iterator(chunk_size=EXPORT_CHUNK_SIZE):
            yield signed(_line("audit", audit_row(record)))
    yield signed(_line("anchor", {"anchor": anchor}))
    yield _line("end", {"sha256": digest.hexdigest()})


def run_export_start(
    *, run: Run, actor: Any, via: str, approvals: QuerySet[ApprovalRequest]
) -> Iterator[bytes]:
    """Record who exported the run (the record is in the export), then its lines, holding the
    run's requests among `approvals` (run_export_lines). Checks no permission: the caller has
    (approvals.access.reviewer_may_see_run, or the run is the agent's own)."""
    context: dict[str, Any] = {"via": via}
    # An auditor reading this record knows the export was a partial one.
    context.update({k: n for k, n in _withheld(run=run, approvals=approvals).items() if n})
    audit_record(action=AuditAction.RUN_EXPORTED, actor=actor, target=run, context=context)
    return run_export_lines(run=run, approvals=approvals)


def run_export_filename(run: Run) -> str:
    return f"run-{run.code}.jsonl"


# --- Verifying an export, offline ---------------------------------------------------------


@dataclass
class _Seen:
    """The replay lines of an export that the audit trail vouches for, by request."""

    lines: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    format: str = ""

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "export":
            self.format = data.get("format", "")
        elif kind == "request":
            self._keep(data["id"], kind, data)
        elif kind in {"policy", "decision", "outcome"}:
            self._keep(data["request"], kind, data)

    def _keep(self, code: str, kind: str, data: dict[str, Any]) -> None:
        lines = self.lines.setdefault(code, {})
        if kind in lines:
            raise SignedLinesProblem(f"request {code}: two {kind} lines")
        lines[kind] = data


# What each replay line must agree on with its audit record: (line field, `after` field).
_VOUCHED = {
    "request": [("tool", "tool"), ("impact", "impact"), ("confidence", "confidence"),
                ("fingerprint", "fingerprint")],
    "policy": [("outcome", "outcome"), ("decided_by", "decided_by"), ("rule", "rule_name"),
               ("reason", "reason")],
    "decision": [("status", "status"), ("note", "note"),
                 ("approved_arguments", "approved_arguments")],
    "outcome": [("status", "status"), ("source", "source"), ("duration_ms", "duration_ms"),
                ("cost", "cost"), ("currency", "currency")],
}  # fmt: skip


_LINE_OF_ACTION = {
    AuditAction.REQUEST_SUBMITTED.value: "request",
    AuditAction.POLICY_DECIDED.value: "policy",
    AuditAction.OUTCOME_REPORTED.value: "outcome",
    **{
        f"request.{status}": "decision" for status in ("approved", "denied", "expired", "cancelled")
    },
}


def _vouching_records(audit: Iterable[AuditRecord]) -> dict[str, dict[str, AuditRecord]]:
    """{request id: {line kind: the audit record that line must agree with}}. For an outcome,
    the latest report (a late one replaces the console's not_reported mark)."""
    found: dict[str, dict[str, AuditRecord]] = {}
    for record in audit:  # in sequence order: a later record of a kind replaces an earlier one
        kind = _LINE_OF_ACTION.get(record.action)
        if kind is not None:
            found.setdefault(record.object_id, {})[kind] = record
    return found


def run_export_verify(lines: Iterable[bytes]) -> str:
    """Check a run's record offline; a summary when it holds, else SignedLinesProblem naming why:
    whole and unedited (its closing SHA-256), each audit record in it signed by this console and
    within its anchor, and every request, verdict, decision and outcome line saying what its
    audit record says, none missing and none added."""
    seen = _Seen()
    verified = signed_lines_verify(lines, on_entry=seen)
    if seen.format != EXPORT_FORMAT:
        raise SignedLinesProblem(f"not a run export ({seen.format or 'no format line'})")
    vouching = _vouching_records(verified.audit)
    for code in sorted(set(seen.lines) | set(vouching)):
        lines_of, records_of = seen.lines.get(code, {}), vouching.get(code, {})
        for kind in sorted(set(lines_of) | set(records_of)):
            line, record = lines_of.get(kind), records_of.get(kind)
            if record is None:
                raise SignedLinesProblem(f"request {code}: its {kind} line has no audit record")
            if line is None:
                raise SignedLinesProblem(
                    f"request {code}: audit record #{record.sequence} has no {kind} line"
                )
            after = record.after or {}
            for line_field, audited in _VOUCHED[kind]:
                if audited in after and _json(line.get(line_field)) != _json(after[audited]):
                    raise SignedLinesProblem(
                        f"request {code}: the {kind} line's {line_field} differs from audit "
                        f"record #{record.sequence}"
                    )
    counted = ", ".join(
        f"{seen.counts.get(kind, 0)} {kind}" for kind in ("request", "decision", "outcome", "trace")
    )
    return (
        f"{counted} lines, {len(verified.audit)} audit records verified, anchor {verified.anchor}"
    )
