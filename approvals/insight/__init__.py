"""Operations insight: metrics, the dashboard, calibration, drift, rubber-stamping.

Queries: counters (the metrics endpoint's), trends (the dashboard's), drift (change signals).
Above them: metrics (the Prometheus collector), charts (inline SVG), dashboard (what the page
shows), views (the page and the endpoint). The queries' public names are importable from here.

Everything is computed from the database when asked, so the numbers are the same whichever
process serves them. The dashboard looks at a bounded window, so rows are read in Python there;
the metrics endpoint covers all time and aggregates in SQL.
"""

from approvals.insight.counters import (
    DECIDED,
    HIGH_IMPACT,
    TIME_TO_DECISION_BUCKETS,
    Histogram,
    RequestCount,
    decided_by,
    metrics_audit_records,
    metrics_escalations_total,
    metrics_notification_failures_total,
    metrics_notifications_failed_now,
    metrics_pending_by_agent,
    metrics_request_counts,
    metrics_time_to_decision,
    metrics_webhook_backlog,
)
from approvals.insight.drift import (
    SIGNIFICANCE,
    CostPerRun,
    Drift,
    ReviewerDwell,
    WeekSample,
    rubber_stamp_signal,
    two_proportion_z_test,
    weekly_drift,
    welch_z_test,
)
from approvals.insight.trends import (
    CALIBRATION_BINS,
    AgentCalibration,
    CalibrationBin,
    DailyTimeToDecision,
    HoldCount,
    RateSeries,
    ReviewerLoad,
    approval_rate_by_week,
    calibration_bin_index,
    calibration_bins,
    calibration_by_agent,
    held_by_rule,
    reviewer_load,
    time_to_decision_by_day,
)

__all__ = [
    "CALIBRATION_BINS",
    "DECIDED",
    "HIGH_IMPACT",
    "SIGNIFICANCE",
    "TIME_TO_DECISION_BUCKETS",
    "AgentCalibration",
    "CalibrationBin",
    "CostPerRun",
    "DailyTimeToDecision",
    "Drift",
    "Histogram",
    "HoldCount",
    "RateSeries",
    "RequestCount",
    "ReviewerDwell",
    "ReviewerLoad",
    "WeekSample",
    "approval_rate_by_week",
    "calibration_bin_index",
    "calibration_bins",
    "calibration_by_agent",
    "decided_by",
    "held_by_rule",
    "metrics_audit_records",
    "metrics_escalations_total",
    "metrics_notification_failures_total",
    "metrics_notifications_failed_now",
    "metrics_pending_by_agent",
    "metrics_request_counts",
    "metrics_time_to_decision",
    "metrics_webhook_backlog",
    "reviewer_load",
    "rubber_stamp_signal",
    "time_to_decision_by_day",
    "two_proportion_z_test",
    "weekly_drift",
    "welch_z_test",
]
