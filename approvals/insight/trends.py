"""The dashboard's trends over a bounded window: time to decision, approval rates, holds by rule,
reviewer load, calibration of agents' confidence (rows are read in Python here)."""

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Q
from django.utils import timezone

from approvals.insight.counters import DECIDED
from approvals.models import (
    ApprovalRequest,
    Decision,
    Status,
)


def _week_start(moment: datetime) -> datetime:
    day = moment.astimezone(timezone.get_current_timezone()).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class DailyTimeToDecision:
    day: str
    decisions: int
    median_seconds: float
    p90_seconds: float


def time_to_decision_by_day(*, since: datetime, until: datetime) -> list[DailyTimeToDecision]:
    """Human decisions only: a policy decides in milliseconds and would hide the reviewers."""
    by_day: dict[str, list[float]] = defaultdict(list)
    rows = (
        ApprovalRequest.objects.filter(
            status__in=DECIDED,
            decided_at__gte=since,
            decided_at__lt=until,
            decision__reviewer__isnull=False,
        )
        .values_list("created_at", "decided_at")
        .iterator(chunk_size=2000)
    )
    for created_at, decided_at in rows:
        if decided_at is None:
            continue  # not possible for a decided request; keeps the types honest
        by_day[decided_at.date().isoformat()].append((decided_at - created_at).total_seconds())
    return [
        DailyTimeToDecision(day, len(values), statistics.median(values), _percentile(values, 0.9))
        for day, values in sorted(by_day.items())
    ]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class RateSeries:
    agent: str
    tool: str
    # week start (ISO date) -> (approved, decided)
    weeks: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(decided for _, decided in self.weeks.values())

    def rate(self, week: str) -> float | None:
        approved, decided = self.weeks.get(week, (0, 0))
        return approved / decided if decided else None


def approval_rate_by_week(
    *, since: datetime, until: datetime, limit: int = 6
) -> tuple[list[str], list[RateSeries]]:
    """Approved / (approved + denied) per agent and tool per week; the busiest `limit` pairs."""
    counts: dict[tuple[str, str], Counter[tuple[str, str]]] = defaultdict(Counter)
    rows = (
        ApprovalRequest.objects.filter(
            status__in=DECIDED, decided_at__gte=since, decided_at__lt=until
        )
        .values_list("agent__name", "tool", "decided_at", "status")
        .iterator(chunk_size=2000)
    )
    for agent, tool, decided_at, status in rows:
        if decided_at is None:
            continue
        counts[(agent, tool)][(_week_start(decided_at).date().isoformat(), status)] += 1
    weeks = sorted(
        {week for counter in counts.values() for week, _ in counter}
        | {_week_start(until - timedelta(seconds=1)).date().isoformat()}
    )
    series = []
    for (agent, tool), counter in counts.items():
        entry = RateSeries(agent, tool)
        for week in weeks:
            approved = counter[(week, Status.APPROVED)]
            denied = counter[(week, Status.DENIED)]
            if approved + denied:
                entry.weeks[week] = (approved, approved + denied)
        series.append(entry)
    series.sort(key=lambda entry: (-entry.total, entry.agent, entry.tool))
    return weeks, series[:limit]


@dataclass(frozen=True)
class HoldCount:
    # What held them, in the console's words: a rule's name, the default, a guardrail.
    reason: str
    total: int
    pending: int


# What decided, in the console's words, when no rule did. Budgets and throttles keep the rule
# that would have approved in the evaluation row, but it was the guardrail that held.
_DECIDED_BY_LABEL = {
    "default": "No rule matched (held by default)",
    "budget": "A budget was reached",
    "throttle": "A throttle was reached",
    "error": "The policy could not be evaluated",
    "halt": "The agent was halted",
    "run": "The run was closed",
}


def held_by_rule(*, since: datetime, until: datetime) -> list[HoldCount]:
    """Held requests created in the window, per rule (or default, guardrail, error) that held
    them: grouped by the rule's id, never by the reason's text, which quotes each request's own
    values (an amount, a tool name) and would make every request a group of its own."""
    rows = (
        ApprovalRequest.objects.filter(created_at__gte=since, created_at__lt=until)
        .filter(~Q(hold_reason="") | Q(status=Status.PENDING))
        .values(
            "policy_evaluation__rule_id",
            "policy_evaluation__rule_name",
            "policy_evaluation__decided_by",
        )
        .annotate(total=Count("pk"), pending=Count("pk", filter=Q(status=Status.PENDING)))
    )
    # Keyed by the rule's id where a rule held them (a renamed rule stays one group), else by
    # what held them; shown under the name the rule had when it held them (the first, sorted).
    groups: dict[tuple[str, object], tuple[str, int, int]] = {}
    for row in sorted(rows, key=lambda row: row["policy_evaluation__rule_name"] or ""):
        decided_by = row["policy_evaluation__decided_by"]
        rule_name = row["policy_evaluation__rule_name"]
        label = _decided_by_label(rule_name=rule_name, decided_by=decided_by)
        rule_id = row["policy_evaluation__rule_id"]
        key: tuple[str, object] = (
            ("rule", rule_id) if decided_by == "rule" and rule_id is not None else (label, None)
        )
        shown, total, pending = groups.get(key, (label, 0, 0))
        groups[key] = (shown, total + row["total"], pending + row["pending"])
    holds = [HoldCount(label, total, pending) for label, total, pending in groups.values()]
    holds.sort(key=lambda hold: (-hold.total, hold.reason))
    return holds


def _decided_by_label(*, rule_name: str | None, decided_by: str | None) -> str:
    if decided_by is None:
        return "(no rule recorded)"
    if decided_by in _DECIDED_BY_LABEL and (decided_by != "error" or not rule_name):
        return _DECIDED_BY_LABEL[decided_by]
    if rule_name:
        prefix = "Rule (could not be evaluated)" if decided_by == "error" else "Rule"
        return f"{prefix} “{rule_name}”"
    return decided_by


@dataclass(frozen=True)
class ReviewerLoad:
    reviewer: str
    decisions: int
    approved: int
    denied: int
    median_seconds: float


def reviewer_load(*, since: datetime, until: datetime) -> list[ReviewerLoad]:
    per_reviewer: dict[str, list[tuple[str, float]]] = defaultdict(list)
    rows = (
        Decision.objects.filter(reviewer__isnull=False, decided_at__gte=since, decided_at__lt=until)
        .values_list("reviewer__username", "status", "decided_at", "approval__created_at")
        .iterator(chunk_size=2000)
    )
    for username, status, decided_at, created_at in rows:
        per_reviewer[username].append((status, (decided_at - created_at).total_seconds()))
    loads = [
        ReviewerLoad(
            reviewer=username,
            decisions=len(items),
            approved=sum(1 for status, _ in items if status == Status.APPROVED),
            denied=sum(1 for status, _ in items if status == Status.DENIED),
            median_seconds=statistics.median(seconds for _, seconds in items),
        )
        for username, items in per_reviewer.items()
    ]
    return sorted(loads, key=lambda load: (-load.decisions, load.reviewer))


# --- Calibration -----------------------------------------------------------------------------

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    approved: int
    mean_confidence: float | None

    @property
    def approval_rate(self) -> float | None:
        return self.approved / self.count if self.count else None

    @property
    def label(self) -> str:
        return f"{self.lower:.1f}-{self.upper:.1f}"


@dataclass(frozen=True)
class AgentCalibration:
    agent: str
    bins: list[CalibrationBin]

    @property
    def decisions(self) -> int:
        return sum(bin_.count for bin_ in self.bins)

    @property
    def expected_calibration_error(self) -> float | None:
        """Mean |approval rate - stated confidence| over bins, weighted by bin size."""
        total = self.decisions
        if not total:
            return None
        return sum(
            bin_.count / total * abs(bin_.approval_rate - bin_.mean_confidence)  # type: ignore[operator]
            for bin_ in self.bins
            if bin_.count
        )


def calibration_bin_index(confidence: float) -> int:
    # The epsilon keeps 0.3 in 0.3-0.4 although 0.3 * 10 is 2.9999999999999996 in floating point;
    # 1.0 belongs to the last bin.
    return min(math.floor(confidence * CALIBRATION_BINS + 1e-9), CALIBRATION_BINS - 1)


def calibration_bins(pairs: Iterable[tuple[float, bool]]) -> list[CalibrationBin]:
    counts = [0] * CALIBRATION_BINS
    approved = [0] * CALIBRATION_BINS
    confidence_sums = [0.0] * CALIBRATION_BINS
    for confidence, was_approved in pairs:
        index = calibration_bin_index(confidence)
        counts[index] += 1
        approved[index] += int(was_approved)
        confidence_sums[index] += confidence
    return [
        CalibrationBin(
            lower=index / CALIBRATION_BINS,
            upper=(index + 1) / CALIBRATION_BINS,
            count=counts[index],
            approved=approved[index],
            mean_confidence=confidence_sums[index] / counts[index] if counts[index] else None,
        )
        for index in range(CALIBRATION_BINS)
    ]


def calibration_by_agent(*, since: datetime, until: datetime) -> list[AgentCalibration]:
    """Stated confidence against how often a reviewer approved, per agent.

    Only human decisions count: a policy approving on confidence would make any agent look
    perfectly calibrated.
    """
    per_agent: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    rows = (
        ApprovalRequest.objects.filter(
            status__in=DECIDED,
            decided_at__gte=since,
            decided_at__lt=until,
            confidence__isnull=False,
            decision__reviewer__isnull=False,
        )
        .values_list("agent__name", "confidence", "status")
        .iterator(chunk_size=2000)
    )
    for agent, confidence, status in rows:
        if confidence is None:
            continue
        per_agent[agent].append((confidence, status == Status.APPROVED))
    return [
        AgentCalibration(agent, calibration_bins(pairs))
        for agent, pairs in sorted(per_agent.items())
    ]


# --- Drift -----------------------------------------------------------------------------------
