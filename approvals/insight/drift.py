"""Signals that something changed: week-over-week drift (with its significance tests), cost per
run, and reviewers who decide faster than they could have read (rubber-stamping)."""

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from agents.models import Run, RunStatus
from approvals.agent_text import agent_text_one_line
from approvals.insight.counters import DECIDED, HIGH_IMPACT
from approvals.insight.trends import _decided_by_label
from approvals.models import (
    ApprovalRequest,
    Decision,
    DecisionPageView,
    OutcomeStatus,
    Status,
)

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
    # Of the week's approvals: how many have a known outcome, and how many of those failed.
    outcomes: int = 0
    failed: int = 0

    @property
    def approval_rate(self) -> float | None:
        return self.approved / self.decided if self.decided else None

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.outcomes if self.outcomes else None

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
    # Failure rate after approval (failed / approvals with a known outcome), z-tested like the
    # approval rate; enough when both weeks have DRIFT_MIN_SAMPLES outcomes.
    failure_z: float = 0.0
    failure_p: float = 1.0
    enough_outcomes: bool = False

    @property
    def rate_flagged(self) -> bool:
        return self.enough_data and self.rate_p < SIGNIFICANCE

    @property
    def failure_flagged(self) -> bool:
        """Only a rise: more approvals failing is the news; fewer is what everyone wants."""
        return self.enough_outcomes and self.failure_z > 0 and self.failure_p < SIGNIFICANCE

    @property
    def confidence_flagged(self) -> bool:
        return self.enough_data and self.confidence_p < SIGNIFICANCE

    @property
    def cost_flagged(self) -> bool:
        return self.cost_per_run is not None and self.cost_per_run.flagged

    @property
    def flagged(self) -> bool:
        return (
            self.rate_flagged
            or self.confidence_flagged
            or self.cost_flagged
            or self.failure_flagged
        )


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
    p < 0.05 when both weeks have at least DRIFT_MIN_SAMPLES decisions. Failure rate after
    approval (of the week's approvals with a known outcome): two-proportion z-test, flagged
    when it rose at p < 0.05 with DRIFT_MIN_SAMPLES outcomes each week. Cost per run (per agent,
    from its closed runs): Welch z-test, flagged likewise with DRIFT_MIN_SAMPLES runs each week.
    Denial reasons are shown side by side, not tested: free text has no distribution worth a test.
    """
    now = now or timezone.now()
    current_start = now - timedelta(days=7)
    previous_start = now - timedelta(days=14)
    samples = _week_samples(previous_start, current_start, now)
    minimum = settings.DRIFT_MIN_SAMPLES
    costs = _cost_per_run_by_agent(previous_start, current_start, now)
    drifts = []
    for (agent, tool), (previous, current) in sorted(samples.items()):
        rate_z, rate_p = two_proportion_z_test(
            previous.approved, previous.decided, current.approved, current.decided
        )
        confidence_z, confidence_p = welch_z_test(previous.confidences, current.confidences)
        failure_z, failure_p = two_proportion_z_test(
            previous.failed, previous.outcomes, current.failed, current.outcomes
        )
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
                failure_z=failure_z,
                failure_p=failure_p,
                enough_outcomes=previous.outcomes >= minimum and current.outcomes >= minimum,
            )
        )
    drifts.sort(key=lambda drift: (not drift.flagged, drift.agent, drift.tool))
    return drifts


def _week_samples(
    previous_start: datetime, current_start: datetime, now: datetime
) -> dict[tuple[str, str], tuple[WeekSample, WeekSample]]:
    """(previous week, current week) of decisions per agent and tool, counted in one pass."""
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
            "outcome__status",
        )
        .iterator(chunk_size=2000)
    )
    for agent, tool, decided_at, status, confidence, note, policy_reason, rule, by, ran in rows:
        if decided_at is None:
            continue
        previous, current = samples[(agent, tool)]
        sample = current if decided_at >= current_start else previous
        sample.decided += 1
        if status == Status.APPROVED:
            sample.approved += 1
            if ran is not None:
                sample.outcomes += 1
                sample.failed += ran == OutcomeStatus.FAILED
        else:
            sample.denial_reasons[
                _reason_key(note or "", policy_reason=policy_reason, rule_name=rule, by=by or "")
            ] += 1
        if confidence is not None:
            sample.confidences.append(confidence)
    return samples


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
    # None when none of the reviewer's decisions had a page view to measure from.
    median_seconds: float | None
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
        median = statistics.median(seconds) if seconds else None
        results.append(
            ReviewerDwell(
                reviewer=username,
                decisions=len(seconds),
                median_seconds=median,
                unviewed=unviewed[username],
                flagged=median is not None
                and len(seconds) >= settings.RUBBER_STAMP_MIN_DECISIONS
                and median < settings.RUBBER_STAMP_SECONDS,
            )
        )
    results.sort(
        key=lambda item: (not item.flagged, item.median_seconds is None, item.median_seconds or 0)
    )
    return results
