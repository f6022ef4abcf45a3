"""Read paths for operations insight: metrics, the dashboard, calibration, drift, rubber-stamping.

Everything is computed from the database when asked, so the numbers are the same whichever
process serves them. The dashboard looks at a bounded window, so rows are read in Python there;
the metrics endpoint covers all time and aggregates in SQL.
"""

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from agents.models import Run, RunStatus, WebhookNotification
from approvals.agent_text import agent_text_one_line
from approvals.models import (
    ApprovalRequest,
    AuditChainHead,
    Channel,
    Decision,
    DecisionPageView,
    EscalationFiring,
    EscalationTrigger,
    Impact,
    Notification,
    NotificationAttempt,
    NotificationStatus,
    Status,
)

DECIDED = (Status.APPROVED, Status.DENIED)
HIGH_IMPACT = (Impact.HIGH, Impact.CRITICAL)

# --- Metrics (all time, aggregated in SQL) ---------------------------------------------------

TIME_TO_DECISION_BUCKETS: tuple[float, ...] = (
    5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600,
)  # fmt: skip


def decided_by(*, status: str, reviewer_decided: bool) -> str:
    """How an outcome came about: a person, a policy, the agent withdrawing, or the deadline."""
    if status == Status.PENDING:
        return "none"
    if status == Status.CANCELLED:
        return "agent"
    if status == Status.EXPIRED:
        return "deadline"
    return "human" if reviewer_decided else "policy"


@dataclass(frozen=True)
class RequestCount:
    agent: str
    tool: str
    outcome: str
    decided_by: str
    count: int


def metrics_request_counts() -> list[RequestCount]:
    rows = ApprovalRequest.objects.values("agent__name", "tool", "status").annotate(
        total=Count("pk"), by_reviewer=Count("pk", filter=Q(decision__reviewer__isnull=False))
    )
    counts: list[RequestCount] = []
    for row in rows:
        by_reviewer, others = row["by_reviewer"], row["total"] - row["by_reviewer"]
        for reviewer_decided, count in ((True, by_reviewer), (False, others)):
            if count:
                how = decided_by(status=row["status"], reviewer_decided=reviewer_decided)
                counts.append(
                    RequestCount(row["agent__name"], row["tool"], row["status"], how, count)
                )
    return counts


def metrics_pending_by_agent() -> dict[str, int]:
    rows = (
        ApprovalRequest.objects.filter(status=Status.PENDING)
        .values("agent__name")
        .annotate(total=Count("pk"))
    )
    return {row["agent__name"]: row["total"] for row in rows}


@dataclass(frozen=True)
class Histogram:
    # Cumulative counts per upper bound, Prometheus-style, "+Inf" last.
    buckets: list[tuple[str, int]]
    sum_seconds: float


def metrics_time_to_decision() -> dict[str, Histogram]:
    """Seconds from submission to an approve/deny, split by who decided (human or policy)."""
    duration = ExpressionWrapper(F("decided_at") - F("created_at"), output_field=DurationField())
    base = ApprovalRequest.objects.filter(status__in=DECIDED, decided_at__isnull=False).annotate(
        duration=duration
    )
    aggregates: dict[str, Any] = {
        f"le_{index}": Count("pk", filter=Q(duration__lte=timedelta(seconds=bound)))
        for index, bound in enumerate(TIME_TO_DECISION_BUCKETS)
    }
    aggregates["total"] = Count("pk")
    aggregates["duration_sum"] = Sum("duration")
    result = {}
    for label, by_reviewer in (("human", True), ("policy", False)):
        row = base.filter(decision__reviewer__isnull=not by_reviewer).aggregate(**aggregates)
        buckets = [
            (_bound_label(bound), row[f"le_{index}"])
            for index, bound in enumerate(TIME_TO_DECISION_BUCKETS)
        ]
        buckets.append(("+Inf", row["total"]))
        total_duration = row["duration_sum"] or timedelta(0)
        result[label] = Histogram(buckets, total_duration.total_seconds())
    return result


def _bound_label(bound: float) -> str:
    return f"{float(bound)}"


def metrics_audit_records() -> int:
    head = AuditChainHead.objects.filter(pk=1).first()
    return head.last_sequence if head else 0


def metrics_escalations_total() -> dict[str, int]:
    """Escalation steps fired, by trigger (schedule or by hand). Firings are never deleted."""
    counts = dict.fromkeys(EscalationTrigger.values, 0)
    rows = EscalationFiring.objects.values("trigger").annotate(total=Count("pk"))
    counts.update({row["trigger"]: row["total"] for row in rows})
    return counts


def metrics_notification_failures_total() -> dict[str, int]:
    """Notifications given up on, by channel, counted as final failed attempts.

    Attempts rather than rows in status failed: an operator's retry puts a row back to pending,
    and a Prometheus counter must never go down (it would read as a restart).
    """
    counts = dict.fromkeys(Channel.values, 0)
    rows = (
        NotificationAttempt.objects.filter(outcome=NotificationAttempt.Outcome.FAILED)
        .values("notification__channel")
        .annotate(total=Count("pk"))
    )
    counts.update({row["notification__channel"]: row["total"] for row in rows})
    return counts


def metrics_notifications_failed_now() -> dict[str, int]:
    """Notifications failed for good and not retried yet, by channel: an operator's to-do list."""
    counts = dict.fromkeys(Channel.values, 0)
    rows = (
        Notification.objects.filter(status=NotificationStatus.FAILED)
        .values("channel")
        .annotate(total=Count("pk"))
    )
    counts.update({row["channel"]: row["total"] for row in rows})
    return counts


def metrics_webhook_backlog() -> int:
    """AAP `request.resolved` events still to be delivered: neither delivered nor given up on."""
    return WebhookNotification.objects.filter(
        delivered_at__isnull=True, ended_at__isnull=True
    ).count()


# --- Dashboard (a bounded window, read in Python) --------------------------------------------


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

SIGNIFICANCE = 0.05


def _two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def two_proportion_z_test(
    successes_a: int, total_a: int, successes_b: int, total_b: int
) -> tuple[float, float]:
    """(z, two-sided p) for H0: both proportions are equal, with the pooled standard error."""
    if not total_a or not total_b:
        return 0.0, 1.0
    pooled = (successes_a + successes_b) / (total_a + total_b)
    standard_error = math.sqrt(pooled * (1 - pooled) * (1 / total_a + 1 / total_b))
    if standard_error == 0:
        return 0.0, 1.0
    z = (successes_b / total_b - successes_a / total_a) / standard_error
    return z, _two_sided_p(z)


def welch_z_test(values_a: list[float], values_b: list[float]) -> tuple[float, float]:
    """(z, two-sided p) for a difference in means, Welch's standard error, normal approximation
    (fine at the sample sizes drift is flagged for)."""
    if len(values_a) < 2 or len(values_b) < 2:
        return 0.0, 1.0
    standard_error = math.sqrt(
        statistics.variance(values_a) / len(values_a)
        + statistics.variance(values_b) / len(values_b)
    )
    if standard_error == 0:
        return 0.0, 1.0
    z = (statistics.fmean(values_b) - statistics.fmean(values_a)) / standard_error
    return z, _two_sided_p(z)


@dataclass
class WeekSample:
    approved: int = 0
    decided: int = 0
    confidences: list[float] = field(default_factory=list)
    denial_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def approval_rate(self) -> float | None:
        return self.approved / self.decided if self.decided else None

    @property
    def mean_confidence(self) -> float | None:
        return statistics.fmean(self.confidences) if self.confidences else None

    @property
    def top_denial_reasons(self) -> list[tuple[str, int]]:
        return self.denial_reasons.most_common(3)


@dataclass(frozen=True)
class CostPerRun:
    """An agent's closed runs in each week and their mean total cost, with a Welch z-test."""

    previous_runs: int
    current_runs: int
    previous_mean: float | None
    current_mean: float | None
    z: float
    p: float
    enough_data: bool

    @property
    def flagged(self) -> bool:
        return self.enough_data and self.p < SIGNIFICANCE


@dataclass(frozen=True)
class Drift:
    agent: str
    tool: str
    previous: WeekSample
    current: WeekSample
    rate_z: float
    rate_p: float
    confidence_z: float
    confidence_p: float
    enough_data: bool
    # Per agent, not per tool: a run spans every tool the agent calls in it.
    cost_per_run: CostPerRun | None = None

    @property
    def rate_flagged(self) -> bool:
        return self.enough_data and self.rate_p < SIGNIFICANCE

    @property
    def confidence_flagged(self) -> bool:
        return self.enough_data and self.confidence_p < SIGNIFICANCE

    @property
    def cost_flagged(self) -> bool:
        return self.cost_per_run is not None and self.cost_per_run.flagged

    @property
    def flagged(self) -> bool:
        return self.rate_flagged or self.confidence_flagged or self.cost_flagged


def _reason_key(note: str, *, policy_reason: str | None, rule_name: str | None, by: str) -> str:
    """How a denial is counted. A policy's denial carries the policy's reason, which quotes the
    request's own values (the tool, an argument): counted per rule, in the console's words. Other
    notes are the reviewers' (or the console's), invisible characters shown."""
    if policy_reason is not None and note == policy_reason:
        return _decided_by_label(rule_name=rule_name or None, decided_by=by or None)
    return agent_text_one_line(note.lower())[:80] or "(no reason)"


def weekly_drift(*, now: datetime | None = None) -> list[Drift]:
    """The last 7 days against the 7 before, per agent and tool.

    Approval rate: two-proportion z-test; mean stated confidence: Welch z-test; flagged at
    p < 0.05 when both weeks have at least DRIFT_MIN_SAMPLES decisions. Cost per run (per agent,
    from its closed runs): Welch z-test, flagged likewise with DRIFT_MIN_SAMPLES runs each week.
    Denial reasons are shown side by side, not tested: free text has no distribution worth a test.
    """
    now = now or timezone.now()
    current_start = now - timedelta(days=7)
    previous_start = now - timedelta(days=14)
    samples: dict[tuple[str, str], tuple[WeekSample, WeekSample]] = defaultdict(
        lambda: (WeekSample(), WeekSample())
    )
    rows = (
        ApprovalRequest.objects.filter(
            status__in=DECIDED, decided_at__gte=previous_start, decided_at__lt=now
        )
        .values_list(
            "agent__name",
            "tool",
            "decided_at",
            "status",
            "confidence",
            "decision__note",
            "policy_evaluation__reason",
            "policy_evaluation__rule_name",
            "policy_evaluation__decided_by",
        )
        .iterator(chunk_size=2000)
    )
    for agent, tool, decided_at, status, confidence, note, policy_reason, rule, by in rows:
        if decided_at is None:
            continue
        previous, current = samples[(agent, tool)]
        sample = current if decided_at >= current_start else previous
        sample.decided += 1
        if status == Status.APPROVED:
            sample.approved += 1
        else:
            sample.denial_reasons[
                _reason_key(note or "", policy_reason=policy_reason, rule_name=rule, by=by or "")
            ] += 1
        if confidence is not None:
            sample.confidences.append(confidence)

    minimum = settings.DRIFT_MIN_SAMPLES
    costs = _cost_per_run_by_agent(previous_start, current_start, now)
    drifts = []
    for (agent, tool), (previous, current) in sorted(samples.items()):
        rate_z, rate_p = two_proportion_z_test(
            previous.approved, previous.decided, current.approved, current.decided
        )
        confidence_z, confidence_p = welch_z_test(previous.confidences, current.confidences)
        drifts.append(
            Drift(
                agent=agent,
                tool=tool,
                previous=previous,
                current=current,
                rate_z=rate_z,
                rate_p=rate_p,
                confidence_z=confidence_z,
                confidence_p=confidence_p,
                enough_data=previous.decided >= minimum and current.decided >= minimum,
                cost_per_run=costs.get(agent),
            )
        )
    drifts.sort(key=lambda drift: (not drift.flagged, drift.agent, drift.tool))
    return drifts


def _cost_per_run_by_agent(
    previous_start: datetime, current_start: datetime, now: datetime
) -> dict[str, CostPerRun]:
    """Mean cost per run (previous week, current week) per agent, from agents.Run.total_cost.

    Only closed runs count, in the week they closed: an open run's cost is still growing, and
    counting it would make the current week look cheaper than it is. Agents without runs in
    either week get no entry (their drift rows show no cost).
    """
    weeks: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    rows = (
        Run.objects.exclude(status=RunStatus.OPEN)
        .filter(closed_at__gte=previous_start, closed_at__lt=now)
        .values_list("agent__name", "closed_at", "total_cost")
        .iterator(chunk_size=2000)
    )
    for agent, closed_at, total_cost in rows:
        if closed_at is None:
            continue  # filtered out above; here for the type checker
        previous, current = weeks[agent]
        (current if closed_at >= current_start else previous).append(float(total_cost))
    minimum = settings.DRIFT_MIN_SAMPLES
    costs = {}
    for agent, (previous, current) in weeks.items():
        z, p = welch_z_test(previous, current)
        costs[agent] = CostPerRun(
            previous_runs=len(previous),
            current_runs=len(current),
            previous_mean=statistics.fmean(previous) if previous else None,
            current_mean=statistics.fmean(current) if current else None,
            z=z,
            p=p,
            enough_data=len(previous) >= minimum and len(current) >= minimum,
        )
    return costs


# --- Rubber-stamping -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewerDwell:
    reviewer: str
    decisions: int
    median_seconds: float
    # High-impact decisions with no recorded page view (decided elsewhere, e.g. a chat button).
    unviewed: int
    flagged: bool


def rubber_stamp_signal(*, since: datetime, until: datetime) -> list[ReviewerDwell]:
    """Per reviewer: median time between first opening a high-impact request and deciding it.

    Flagged when the median is under RUBBER_STAMP_SECONDS over at least
    RUBBER_STAMP_MIN_DECISIONS decisions: nobody reads a critical request in two seconds.
    """
    first_view = DecisionPageView.objects.filter(
        approval=OuterRef("approval"), reviewer=OuterRef("reviewer")
    ).values("first_viewed_at")[:1]
    rows = (
        Decision.objects.filter(
            reviewer__isnull=False,
            status__in=DECIDED,
            decided_at__gte=since,
            decided_at__lt=until,
            approval__impact__in=HIGH_IMPACT,
        )
        .annotate(first_viewed_at=Subquery(first_view))
        .values_list("reviewer__username", "decided_at", "first_viewed_at")
        .iterator(chunk_size=2000)
    )
    dwell: dict[str, list[float]] = defaultdict(list)
    unviewed: Counter[str] = Counter()
    for username, decided_at, first_viewed_at in rows:
        if first_viewed_at is None:
            unviewed[username] += 1
        else:
            dwell[username].append(max(0.0, (decided_at - first_viewed_at).total_seconds()))
    results = []
    for username in sorted(set(dwell) | set(unviewed)):
        seconds = dwell.get(username, [])
        median = statistics.median(seconds) if seconds else 0.0
        results.append(
            ReviewerDwell(
                reviewer=username,
                decisions=len(seconds),
                median_seconds=median,
                unviewed=unviewed[username],
                flagged=len(seconds) >= settings.RUBBER_STAMP_MIN_DECISIONS
                and median < settings.RUBBER_STAMP_SECONDS,
            )
        )
    results.sort(key=lambda item: (not item.flagged, item.median_seconds))
    return results
