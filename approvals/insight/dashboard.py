"""The insight dashboard's content: insight selectors turned into charts and tables."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.safestring import SafeString

from approvals import insight
from approvals.agent_text import agent_text_in_quotes, agent_text_one_line
from approvals.insight import charts


def _duration(seconds: float) -> str:
    if seconds == 60:
        return "1m"  # an axis tick: 0s, 1m, 2m reads better than 0s, 60s, 2m
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 2 * 3600:
        minutes = seconds / 60
        return f"{minutes:.0f}m" if minutes == round(minutes) else f"{minutes:.1f}m"
    return f"{seconds / 3600:.1f}h".replace(".0h", "h")


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    weeks: int


def dashboard_window(*, weeks: int, now: datetime | None = None) -> Window:
    until = now or timezone.now()
    return Window(since=until - timedelta(weeks=weeks), until=until, weeks=weeks)


def dashboard_build(*, window: Window) -> dict[str, Any]:
    """Every panel of the dashboard over the window: the template's context."""
    since, until = window.since, window.until
    holds = insight.held_by_rule(since=since, until=until)
    loads = insight.reviewer_load(since=since, until=until)
    dwell = insight.rubber_stamp_signal(since=since, until=until)
    # Only reviewers with a measured median: nothing to draw for the others.
    measured_dwell = [
        (item, seconds) for item in dwell if (seconds := item.median_seconds) is not None
    ]
    return {
        "window": window,
        "time_chart": _time_to_decision_chart(since=since, until=until),
        "rate_chart": _approval_rate_chart(since=since, until=until),
        "holds": holds,
        "hold_chart": charts.bar_chart(
            title="Requests held for review, per rule",
            bars=[(hold.reason, hold.total) for hold in holds],
        ),
        "loads": loads,
        "load_chart": charts.bar_chart(
            title="Decisions per reviewer",
            bars=[(load.reviewer, load.decisions) for load in loads],
        ),
        "calibration_panels": _calibration_panels(since=since, until=until),
        **_outcome_panels(since=since, until=until),
        "drifts": insight.weekly_drift(now=until),
        "drift_min_samples": settings.DRIFT_MIN_SAMPLES,
        "dwell": dwell,
        "dwell_chart": charts.bar_chart(
            title="Median time on high-impact decision pages, per reviewer",
            bars=[(item.reviewer, seconds) for item, seconds in measured_dwell],
            value_format=_duration,
            flagged=[item.flagged for item, _ in measured_dwell],
        ),
    }


def _outcome_panels(*, since: datetime, until: datetime) -> dict[str, Any]:
    """What approved calls did when they ran: rates per agent, tool and who approved, failures
    per week, and each policy rule's automatic approvals."""
    failures = insight.failures_by_week(since=since, until=until)
    return {
        "outcome_rates": insight.outcome_rates(since=since, until=until),
        "failures_by_week": failures,
        "failures_chart": charts.line_chart(
            title="Approved, then failed: per week of the approval",
            x_labels=[week[5:] for week in failures.weeks],
            series=[
                ("approved by a person", failures.failed(insight.PERSON)),
                ("approved by the policy", failures.failed(insight.POLICY)),
            ],
            y_steps=charts.COUNT_STEPS,
        ),
        "rule_outcomes": insight.outcomes_by_rule(since=since, until=until),
    }


def _time_to_decision_chart(*, since: datetime, until: datetime) -> SafeString:
    daily = insight.time_to_decision_by_day(since=since, until=until)
    return charts.line_chart(
        title="Time to decision (human decisions), median and 90th percentile per day",
        x_labels=[row.day[5:] for row in daily],
        series=[
            ("median", [row.median_seconds for row in daily]),
            ("p90", [row.p90_seconds for row in daily]),
        ],
        y_format=_duration,
        y_steps=charts.DURATION_STEPS,
    )


def _approval_rate_chart(*, since: datetime, until: datetime) -> SafeString:
    weeks, rate_series = insight.approval_rate_by_week(since=since, until=until)
    return charts.line_chart(
        title="Approval rate per agent and tool, per week",
        x_labels=[week[5:] for week in weeks],
        series=[
            # Both names are the agent's: the agent's own quoted, the tool's invisible characters
            # shown (approvals.agent_text).
            (
                f"{agent_text_in_quotes(entry.agent)} · {agent_text_one_line(entry.tool)}",
                [entry.rate(week) for week in weeks],
            )
            for entry in rate_series
        ],
        y_max=1.0,
        y_format=lambda value: f"{value:.0%}",
    )


def _calibration_panels(*, since: datetime, until: datetime) -> list[dict[str, Any]]:
    return [
        {
            "calibration": calibration,
            "chart": charts.calibration_chart(
                title=f"Calibration of agent {agent_text_in_quotes(calibration.agent)}",
                bins=[
                    (bin_.lower, bin_.upper, bin_.approval_rate, bin_.count)
                    for bin_ in calibration.bins
                ],
            ),
        }
        for calibration in insight.calibration_by_agent(since=since, until=until)
    ]
