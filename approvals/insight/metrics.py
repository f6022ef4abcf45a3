"""Prometheus metrics, computed from the database at scrape time.

A custom collector instead of in-process counters: with several server and worker processes each
would count only its own share, and a restart would reset them. The database has the truth.
"""

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from approvals import insight


class ConsoleCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        # Each family is its own query; yielded one by one so a scrape holds one at a time.
        yield self._requests()
        yield self._outcomes()
        yield self._not_reported()
        yield self._pending()
        yield self._time_to_decision()
        yield self._escalations()
        yield self._notification_failures()
        yield self._notifications_failed_now()
        yield GaugeMetricFamily(
            "approval_webhook_backlog",
            "AAP webhook events waiting to be delivered (neither delivered nor given up on).",
            value=insight.metrics_webhook_backlog(),
        )
        yield CounterMetricFamily(
            "audit_records", "Records in the audit chain.", value=insight.metrics_audit_records()
        )

    def _requests(self) -> Metric:
        requests = CounterMetricFamily(
            "approval_requests",
            "Approval requests by agent, tool, outcome and how they were decided "
            "(human, policy, agent = withdrawn, deadline = expired, none = pending).",
            labels=["agent", "tool", "outcome", "decided_by"],
        )
        for row in insight.metrics_request_counts():
            requests.add_metric([row.agent, row.tool, row.outcome, row.decided_by], row.count)
        return requests

    def _outcomes(self) -> Metric:
        outcomes = CounterMetricFamily(
            "approval_outcomes",
            "What decided calls did when they ran, as reported (by the agent or its trace): "
            "succeeded, failed or not_executed, by agent, tool and how the request was decided "
            "(human or policy for approvals).",
            labels=["agent", "tool", "status", "decided_by"],
        )
        for row in insight.metrics_outcome_counts():
            outcomes.add_metric([row.agent, row.tool, row.status, row.decided_by], row.count)
        return outcomes

    def _not_reported(self) -> Metric:
        not_reported = GaugeMetricFamily(
            "approval_outcomes_not_reported",
            "Approvals whose validity passed with no outcome reported, now (a late report "
            "takes one away).",
            labels=["agent", "tool", "decided_by"],
        )
        for row in insight.metrics_not_reported():
            not_reported.add_metric([row.agent, row.tool, row.decided_by], row.count)
        return not_reported

    def _pending(self) -> Metric:
        pending = GaugeMetricFamily(
            "approval_requests_pending", "Requests waiting for a decision now.", labels=["agent"]
        )
        for agent, count in sorted(insight.metrics_pending_by_agent().items()):
            pending.add_metric([agent], count)
        return pending

    def _time_to_decision(self) -> Metric:
        time_to_decision = HistogramMetricFamily(
            "approval_time_to_decision_seconds",
            "Seconds from submission to approval or denial.",
            labels=["decided_by"],
        )
        for label, histogram in insight.metrics_time_to_decision().items():
            time_to_decision.add_metric([label], histogram.buckets, histogram.sum_seconds)
        return time_to_decision

    def _escalations(self) -> Metric:
        escalations = CounterMetricFamily(
            "approval_escalations",
            "Escalation steps fired, on schedule or by hand.",
            labels=["trigger"],
        )
        for trigger, count in sorted(insight.metrics_escalations_total().items()):
            escalations.add_metric([trigger], count)
        return escalations

    def _notification_failures(self) -> Metric:
        failures = CounterMetricFamily(
            "approval_notification_failures",
            "Notifications given up on (a permanent error, or every retry spent).",
            labels=["channel"],
        )
        for channel, count in sorted(insight.metrics_notification_failures_total().items()):
            failures.add_metric([channel], count)
        return failures

    def _notifications_failed_now(self) -> Metric:
        failed_now = GaugeMetricFamily(
            "approval_notifications_failed",
            "Notifications failed for good and not retried by an operator yet.",
            labels=["channel"],
        )
        for channel, count in sorted(insight.metrics_notifications_failed_now().items()):
            failed_now.add_metric([channel], count)
        return failed_now


def metrics_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsoleCollector())
    return registry
