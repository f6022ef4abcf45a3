"""Outcomes in insight, against hand-counted fixtures: success and failure rates per agent and
tool split by who approved, "approved, then failed" per week, each policy rule's automatic
approvals (the dashboard and the rule's admin page), drift on a rising failure rate, and the
Prometheus families. Pages cost as many queries with many outcomes as with few."""

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents.models import Agent
from approvals import insight
from approvals.models import (
    ApprovalRequest,
    OutcomeSource,
    OutcomeStatus,
    RequestOutcome,
    Status,
)
from approvals.policies.models import Outcome, PolicyEvaluation, PolicyRule
from approvals.services import OutcomeReport, approval_outcome_report
from tests.factories import AgentFactory, PolicyRuleFactory, UserFactory, decided_approval

pytestmark = pytest.mark.django_db

INSIGHT = "/insight/"


@pytest.fixture
def rita(db):
    return UserFactory(username="rita")


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def _approval(
    agent: Agent,
    outcome: str | None,
    *,
    decided_at: datetime,
    reviewer: Any = None,
    rule: PolicyRule | None = None,
    tool: str = "issue_refund",
    error: str = "card_declined",
) -> ApprovalRequest:
    """An approval decided at `decided_at` by `reviewer` (None: the policy, by `rule` if given),
    with `outcome` reported (None: nothing yet; not_reported: the console's mark)."""
    approval = decided_approval(
        agent=agent,
        status=Status.APPROVED,
        tool=tool,
        created_at=decided_at - timedelta(minutes=1),
        decided_at=decided_at,
        reviewer=reviewer,
    )
    if rule is not None:
        PolicyEvaluation.objects.create(
            approval=approval,
            rule=rule,
            rule_name=rule.name,
            outcome=Outcome.APPROVE,
            decided_by="rule",
            reason=f"Matched rule {rule.name}",
        )
    if outcome == OutcomeStatus.NOT_REPORTED:
        RequestOutcome.objects.create(
            approval=approval,
            status=outcome,
            source=OutcomeSource.SYSTEM,
            reported_at=decided_at + timedelta(minutes=5),
        )
    elif outcome is not None:
        approval_outcome_report(
            approval=approval,
            report=OutcomeReport(status=outcome, error=error if outcome == "failed" else ""),
        )
    return approval


def _a_day(days_ago: float = 1) -> datetime:
    return timezone.now() - timedelta(days=days_ago)


def test_it_splits_success_and_failure_rates_by_who_approved(rita) -> None:
    bot = AgentFactory(name="refund-bot")
    for outcome in ("succeeded", "succeeded", "succeeded", "failed"):
        _approval(bot, outcome, decided_at=_a_day(), reviewer=rita)
    for policy_outcome in ("succeeded", "failed", "failed", "not_reported", None):
        _approval(bot, policy_outcome, decided_at=_a_day())
    # Not counted: another window, a denial.
    _approval(bot, "failed", decided_at=_a_day(20), reviewer=rita)
    decided_approval(
        agent=bot, status=Status.DENIED, created_at=_a_day(2), decided_at=_a_day(1), reviewer=rita
    )

    rates = insight.outcome_rates(since=_a_day(7), until=timezone.now())

    assert [(r.agent, r.tool, r.approved_by) for r in rates] == [
        ("refund-bot", "issue_refund", "policy"),  # two failures: first
        ("refund-bot", "issue_refund", "person"),
    ]
    policy, person = rates[0].tally, rates[1].tally
    assert (policy.approved, policy.succeeded, policy.failed) == (5, 1, 2)
    assert (policy.not_reported, policy.awaiting, policy.known) == (1, 1, 4)
    # Not reported counts against success, never for it.
    assert (policy.success_rate, policy.failure_rate) == (0.25, 0.5)
    assert (person.approved, person.success_rate, person.failure_rate) == (4, 0.75, 0.25)


def test_it_counts_approved_then_failed_per_week(rita) -> None:
    bot = AgentFactory(name="refund-bot")
    # Last week's Wednesday noon, not now: in a Monday's first hours "two hours ago" is last week.
    this_monday = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    this_monday -= timedelta(days=this_monday.weekday())
    now = this_monday - timedelta(days=7) + timedelta(days=2, hours=12)
    _approval(bot, "failed", decided_at=now - timedelta(days=10), reviewer=rita)
    _approval(bot, "succeeded", decided_at=now - timedelta(days=10), reviewer=rita)
    _approval(bot, "failed", decided_at=now - timedelta(hours=1))
    _approval(bot, "failed", decided_at=now - timedelta(hours=2))

    weekly = insight.failures_by_week(since=now - timedelta(days=21), until=now)

    by_week = dict(zip(weekly.weeks, weekly.failed(insight.PERSON), strict=True))
    assert sum(by_week.values()) == 1
    assert weekly.failed(insight.POLICY)[-1] == 2  # this week
    [(_, person, _)] = [row for row in weekly.rows() if row[1].approved]
    assert (person.failed, person.known, person.failure_rate) == (1, 2, 0.5)


def test_it_keeps_each_rules_automatic_approvals_apart(rita) -> None:
    bot = AgentFactory(name="refund-bot")
    lenient = PolicyRuleFactory(name="small refunds", outcome=Outcome.APPROVE)
    careful = PolicyRuleFactory(name="emails", outcome=Outcome.APPROVE)
    for outcome in ("failed", "failed", "succeeded"):
        _approval(bot, outcome, decided_at=_a_day(), rule=lenient)
    _approval(bot, "succeeded", decided_at=_a_day(), rule=careful)
    # Held by the rule and approved by a person: the person's approval, not the rule's.
    held = _approval(bot, "failed", decided_at=_a_day(), reviewer=rita)
    PolicyEvaluation.objects.create(
        approval=held, rule=lenient, outcome=Outcome.HOLD, decided_by="rule", reason="held"
    )
    # Renamed since: still the same rule.
    PolicyRule.objects.filter(pk=lenient.pk).update(name="refunds under 50")

    records = insight.outcomes_by_rule(since=_a_day(7), until=timezone.now())

    assert [(r.rule_id, r.rule, r.tally.approved, r.tally.failed) for r in records] == [
        (lenient.pk, "small refunds", 3, 2),
        (careful.pk, "emails", 1, 0),
    ]


def test_the_dashboard_shows_rates_failures_and_rules(staff_client, rita) -> None:
    bot = AgentFactory(name="refund-bot")
    rule = PolicyRuleFactory(name="small refunds", outcome=Outcome.APPROVE)
    _approval(bot, "failed", decided_at=_a_day(), rule=rule)
    _approval(bot, "succeeded", decided_at=_a_day(), reviewer=rita)

    html = staff_client.get(INSIGHT).content.decode()

    outcomes = html[html.index('id="outcomes"') : html.index('id="failures-over-time"')]
    assert "“refund-bot” · <code>issue_refund</code></td><td>the policy</td><td>1</td>" in outcomes
    assert "<td>a person</td><td>1</td><td>1</td>" in outcomes
    assert '<td class="flag">1</td>' in outcomes
    rules = html[html.index('id="rule-outcomes"') :]
    admin_url = reverse("admin:approvals_policyrule_change", args=[rule.pk])
    assert f'<a href="{admin_url}">small refunds</a>' in rules
    assert "<td>100%</td>" in rules
    assert "Approved, then failed: per week of the approval" in html


def test_the_failures_chart_counts_in_whole_numbers(staff_client, rita) -> None:
    _approval(AgentFactory(name="refund-bot"), "failed", decided_at=_a_day(), reviewer=rita)

    html = staff_client.get(INSIGHT).content.decode()

    chart = html[html.index('id="failures-over-time"') :].split("</svg>")[0]
    # One failure: 0 and 1 on the axis, not 0, 0, 1 (a tick at 0.5, shown as a count).
    assert re.findall(r'text-anchor="end">([^<]+)</text>', chart) == ["0", "1"]


def test_the_rules_admin_pages_show_its_record_and_latest_failures(staff_client, rita) -> None:
    bot = AgentFactory(name="refund-bot")
    rule = PolicyRuleFactory(name="small refunds", outcome=Outcome.APPROVE)
    failure = _approval(
        bot, "failed", decided_at=_a_day(), rule=rule, error="<script>x</script>\u202e"
    )
    _approval(bot, "succeeded", decided_at=_a_day(), rule=rule)
    _approval(bot, "failed", decided_at=_a_day(60), rule=rule, error="long ago")
    _approval(bot, "failed", decided_at=_a_day(), reviewer=rita)  # not the rule's

    page = staff_client.get(reverse("admin:approvals_policyrule_change", args=[rule.pk]))
    html = page.content.decode()
    record = html[html.index('id="rule-outcome-record"') :]
    # Last 7 days: 2 approved, 1 failed (50%); all time: 3 approved, 2 failed (67%).
    assert '<th scope="row">Last 7 days</th><td>2</td><td>1</td>' in record
    assert '<th scope="row">All time</th><td>3</td><td>1</td>' in record
    assert "<td>50%</td>" in record and "<td>67%</td>" in record
    assert reverse("approvals:detail", args=[failure.code]) in record
    assert "&lt;script&gt;x&lt;/script&gt;⟨U+202E⟩" in record and "<script>x" not in record
    assert record.index("⟨U+202E⟩") < record.index("long ago")  # newest first

    listing = staff_client.get(reverse("admin:approvals_policyrule_changelist")).content.decode()
    assert "1 of 2</strong> (50%)" in listing


def test_drift_flags_a_rising_failure_rate(staff_client, rita, settings) -> None:
    settings.DRIFT_MIN_SAMPLES = 10
    now = timezone.now()
    rising, falling = AgentFactory(name="refund-bot"), AgentFactory(name="mailer")
    for days_ago, failures in ((10, 1), (3, 8)):
        for index in range(12):
            at = now - timedelta(days=days_ago, hours=index)
            _approval(rising, "failed" if index < failures else "succeeded", decided_at=at)
            # The mailer's failures fall just as much: good news, no flag.
            falling_failures = 9 - failures
            outcome = "failed" if index < falling_failures else "succeeded"
            _approval(falling, outcome, decided_at=at, tool="send_email", reviewer=rita)

    drifts = {drift.agent: drift for drift in insight.weekly_drift(now=now)}

    up, down = drifts["refund-bot"], drifts["mailer"]
    assert (up.previous.outcomes, up.previous.failed, up.current.failed) == (12, 1, 8)
    assert up.failure_z > 0 and up.failure_p < 0.05
    assert up.failure_flagged and up.flagged and not up.rate_flagged
    assert down.failure_z < 0 and down.failure_p < 0.05
    assert not down.failure_flagged and not down.flagged
    html = staff_client.get(INSIGHT).content.decode()
    drift = html[html.index('id="drift"') : html.index("</section>", html.index('id="drift"'))]
    assert drift.count('data-failure-flagged="true"') == 1
    assert "0.08 → 0.67" in drift and "(12 → 12 outcomes)" in drift


def test_drift_needs_enough_outcomes_in_both_weeks(rita, settings) -> None:
    settings.DRIFT_MIN_SAMPLES = 10
    now = timezone.now()
    bot = AgentFactory(name="refund-bot")
    for days_ago, failures, count in ((10, 0, 12), (3, 5, 5)):
        for index in range(count):
            outcome = "failed" if index < failures else "succeeded"
            _approval(bot, outcome, decided_at=now - timedelta(days=days_ago, hours=index))
    [drift] = insight.weekly_drift(now=now)
    assert drift.failure_p < 0.05 and not drift.failure_flagged


def test_the_metrics_count_outcomes_by_status_and_who_decided(client, settings, rita) -> None:
    settings.METRICS_TOKEN = "metrics-token"
    bot = AgentFactory(name="refund-bot")
    _approval(bot, "failed", decided_at=_a_day(), reviewer=rita)
    _approval(bot, "succeeded", decided_at=_a_day(), reviewer=rita)
    _approval(bot, "failed", decided_at=_a_day())
    late = _approval(bot, "not_reported", decided_at=_a_day())
    _approval(bot, None, decided_at=_a_day())  # nothing yet: no sample

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token")
        assert response.status_code == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples
        }

    def outcomes(status: str, decided_by: str) -> float:
        labels = {"agent": "refund-bot", "tool": "issue_refund"}
        labels |= {"status": status, "decided_by": decided_by}
        return samples.get(("approval_outcomes_total", tuple(sorted(labels.items()))), 0.0)

    def not_reported() -> float:
        labels = {"agent": "refund-bot", "tool": "issue_refund", "decided_by": "policy"}
        key = ("approval_outcomes_not_reported", tuple(sorted(labels.items())))
        return samples.get(key, 0.0)

    samples = scrape()
    assert (outcomes("failed", "human"), outcomes("succeeded", "human")) == (1, 1)
    assert outcomes("failed", "policy") == 1
    assert sum(v for (name, _), v in samples.items() if name == "approval_outcomes_total") == 3
    assert not_reported() == 1

    # A late report replaces the console's mark: the gauge drops, the counter grows.
    approval_outcome_report(approval=late, report=OutcomeReport(status="failed", error="late"))
    samples = scrape()
    assert (outcomes("failed", "policy"), not_reported()) == (2, 0)


# --- Query counts --------------------------------------------------------------------------


def _queries(call: Callable[[], Any]) -> int:
    statements: list[str] = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = call()
    assert response.status_code == 200
    return len(statements)


def test_the_pages_cost_as_many_queries_with_many_outcomes_as_with_few(staff_client, rita) -> None:
    rules = [PolicyRuleFactory(name=f"rule-{i}", outcome=Outcome.APPROVE) for i in range(2)]
    cycle = ("succeeded", "failed", "not_reported", "not_executed", None)

    def add(count: int, seed: int) -> None:
        agents = [AgentFactory(name=f"agent-{seed}-{i}") for i in range(2)]
        for index in range(count):
            outcome, agent = cycle[index % len(cycle)], agents[index % 2]
            at = _a_day(index % 12 + 0.5)
            _approval(agent, outcome, decided_at=at, rule=rules[index % 2], tool=f"t{index % 3}")
            _approval(agent, outcome, decided_at=at, reviewer=rita)

    pages = {
        "insight": INSIGHT,
        "rule list": reverse("admin:approvals_policyrule_changelist"),
        "rule page": reverse("admin:approvals_policyrule_change", args=[rules[0].pk]),
    }

    def measure() -> dict[str, int]:
        return {name: _queries(partial(staff_client.get, url)) for name, url in pages.items()}

    add(3, seed=1)
    few = measure()
    add(30, seed=2)
    for extra in range(3):
        PolicyRuleFactory(name=f"more-{extra}", outcome=Outcome.APPROVE)
    many = measure()
    assert many == few
