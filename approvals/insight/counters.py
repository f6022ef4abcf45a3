"""Counters for the metrics endpoint: all time, aggregated in SQL."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum

from agents.models import WebhookNotification
from approvals.models import (
    ApprovalRequest,
    AuditChainHead,
    Channel,
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
