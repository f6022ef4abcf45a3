"""Calibration, drift and rubber-stamping numbers against hand-computed fixtures."""

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.models import Run, RunStatus
from approvals import insight
from approvals.models import DecisionPageView, Impact, Status
from approvals.policies.engine import DEFAULT_HOLD_REASON
from approvals.policies.models import PolicyEvaluation
from tests.factories import AgentFactory, PolicyRuleFactory, UserFactory, decided_approval

pytestmark = pytest.mark.django_db


def test_it_puts_confidence_in_the_right_bin() -> None:
    assert insight.calibration_bin_index(0.0) == 0
    assert insight.calibration_bin_index(0.099) == 0
    assert insight.calibration_bin_index(0.1) == 1
    assert insight.calibration_bin_index(0.3) == 3  # 0.3 * 10 == 2.9999999999999996
    assert insight.calibration_bin_index(0.7) == 7
    assert insight.calibration_bin_index(0.9) == 9
    assert insight.calibration_bin_index(1.0) == 9


def test_it_computes_calibration_per_agent_from_human_decisions_only() -> None:
    now = timezone.now()
    rita = UserFactory(username="rita")
    bot = AgentFactory(name="refund-bot")
    hour_ago = now - timedelta(hours=1)
    for confidence, status in (
        (0.95, Status.APPROVED),
        (0.92, Status.APPROVED),
        (0.91, Status.DENIED),
        (1.0, Status.APPROVED),
        (0.3, Status.DENIED),
        (0.35, Status.APPROVED),
        (0.05, Status.DENIED),
    ):
        decided_approval(
            agent=bot,
            status=status,
            confidence=confidence,
            reviewer=rita,
            created_at=hour_ago,
            decided_at=now - timedelta(minutes=5),
        )
    # Not counted: a policy decision, a pending request, no stated confidence, an expiry.
    decided_approval(
        agent=bot, status=Status.APPROVED, confidence=0.99, created_at=hour_ago, decided_at=now
    )
    decided_approval(agent=bot, status=Status.PENDING, confidence=0.5, created_at=now)
    decided_approval(
        agent=bot,
        status=Status.DENIED,
        confidence=None,
        reviewer=rita,
        created_at=hour_ago,
        decided_at=now - timedelta(minutes=5),
    )

    (calibration,) = insight.calibration_by_agent(since=now - timedelta(days=1), until=now)

    assert calibration.agent == "refund-bot"
    assert calibration.decisions == 7
    by_bin = {index: bin_ for index, bin_ in enumerate(calibration.bins) if bin_.count}
    assert set(by_bin) == {0, 3, 9}
    assert (by_bin[9].count, by_bin[9].approved) == (4, 3)
    assert by_bin[9].approval_rate == 0.75
    assert by_bin[9].mean_confidence == pytest.approx(0.945)
    assert (by_bin[3].count, by_bin[3].approved, by_bin[3].mean_confidence) == (
        2,
        1,
        pytest.approx(0.325),
    )
    assert (by_bin[0].count, by_bin[0].approval_rate) == (1, 0.0)
    # (4 * |0.75 - 0.945| + 2 * |0.5 - 0.325| + 1 * |0 - 0.05|) / 7 = 1.18 / 7
    assert calibration.expected_calibration_error == pytest.approx(1.18 / 7)


def test_the_two_proportion_z_test_matches_the_hand_computation() -> None:
    # 40/50 then 20/50: pooled 0.6, se = sqrt(0.6 * 0.4 * (1/50 + 1/50)) = 0.0979796
    z, p = insight.two_proportion_z_test(40, 50, 20, 50)
    assert z == pytest.approx(-0.4 / math.sqrt(0.0096))
    assert z == pytest.approx(-4.0825, abs=1e-4)
    assert p == pytest.approx(4.455e-5, rel=1e-3)
    # The textbook landmark: |z| = 1.96 is p = 0.05.
    assert insight.drift._two_sided_p(1.959964) == pytest.approx(0.05, abs=1e-6)
    assert insight.two_proportion_z_test(5, 10, 5, 10) == (0.0, 1.0)
    assert insight.two_proportion_z_test(0, 0, 5, 10) == (0.0, 1.0)


def _decisions(agent, tool, start, approved: int, denied: int, confidence: float = 0.8) -> None:
    reviewer = UserFactory(username="rita")
    for index in range(approved + denied):
        decided_at = start + timedelta(hours=index)
        decided_approval(
            agent=agent,
            tool=tool,
            status=Status.APPROVED if index < approved else Status.DENIED,
            note="" if index < approved else "Amount too high.",
            confidence=confidence,
            reviewer=reviewer,
            created_at=decided_at - timedelta(minutes=2),
            decided_at=decided_at,
        )


def test_it_flags_a_significant_weekly_change_in_approval_rate() -> None:
    now = timezone.now()
    previous_week, this_week = now - timedelta(days=13), now - timedelta(days=6)
    bot = AgentFactory(name="refund-bot")
    # refund-bot / issue_refund: 11 of 12 approved, then 3 of 12.
    _decisions(bot, "issue_refund", previous_week, approved=11, denied=1)
    _decisions(bot, "issue_refund", this_week, approved=3, denied=9)
    # refund-bot / send_email: the same rate both weeks.
    _decisions(bot, "send_email", previous_week, approved=10, denied=2)
    _decisions(bot, "send_email", this_week, approved=10, denied=2)
    # mailer / send_email: a big change but too few decisions to call it.
    mailer = AgentFactory(name="mailer")
    _decisions(mailer, "send_email", previous_week, approved=3, denied=0)
    _decisions(mailer, "send_email", this_week, approved=0, denied=3)

    drifts = {(drift.agent, drift.tool): drift for drift in insight.weekly_drift(now=now)}

    changed = drifts[("refund-bot", "issue_refund")]
    assert (changed.previous.approved, changed.previous.decided) == (11, 12)
    assert (changed.current.approved, changed.current.decided) == (3, 12)
    # pooled 14/24; se = sqrt(p(1-p)(2/12)); z = (3/12 - 11/12) / se
    pooled = 14 / 24
    expected_z = (3 / 12 - 11 / 12) / math.sqrt(pooled * (1 - pooled) * (2 / 12))
    assert changed.rate_z == pytest.approx(expected_z)
    assert changed.rate_flagged
    assert changed.current.denial_reasons == {"amount too high.": 9}
    assert not changed.confidence_flagged  # same stated confidence both weeks

    assert not drifts[("refund-bot", "send_email")].flagged
    assert not drifts[("mailer", "send_email")].enough_data
    assert not drifts[("mailer", "send_email")].flagged
    assert insight.weekly_drift(now=now)[0].tool == "issue_refund"  # flagged rows first


def _closed_runs(agent, closed_at, costs: list[str], status: str = RunStatus.COMPLETED) -> None:
    for index, cost in enumerate(costs):
        Run.objects.create(
            agent=agent,
            name=f"run-{closed_at:%j}-{index}",
            status=status,
            total_cost=Decimal(cost),
            closed_at=closed_at + timedelta(minutes=index),
        )


def test_it_compares_cost_per_run_week_over_week() -> None:
    now = timezone.now()
    previous_week, this_week = now - timedelta(days=13), now - timedelta(days=6)
    bot, mailer, quiet = (AgentFactory(name=name) for name in ("refund-bot", "mailer", "quiet"))
    for agent in (bot, mailer, quiet):
        # One decision each week: a drift row, but too few to judge the approval rate.
        _decisions(agent, "issue_refund", previous_week, approved=1, denied=0)
        _decisions(agent, "issue_refund", this_week, approved=1, denied=0)
    # refund-bot: ten runs at 1 and 2, then ten at 4 and 5 (one of them halted: it counts).
    _closed_runs(bot, previous_week, ["1.00", "2.00"] * 5)
    _closed_runs(bot, this_week, ["4.00", "5.00"] * 4)
    _closed_runs(bot, this_week, ["4.00", "5.00"], status=RunStatus.HALTED)
    # Not counted: a run still open (its cost is still growing), one closed three weeks ago.
    Run.objects.create(agent=bot, name="open", total_cost=Decimal("900"))
    _closed_runs(bot, now - timedelta(days=21), ["700.00"])
    # mailer: cost tripled, but over too few runs to call it.
    _closed_runs(mailer, previous_week, ["1.00", "1.50"])
    _closed_runs(mailer, this_week, ["3.00", "4.50"])

    drifts = {drift.agent: drift for drift in insight.weekly_drift(now=now)}

    cost = drifts["refund-bot"].cost_per_run
    assert cost is not None
    assert (cost.previous_runs, cost.current_runs) == (10, 10)
    assert (cost.previous_mean, cost.current_mean) == (1.5, 4.5)
    # Each week: five at mean - 0.5 and five at mean + 0.5, sample variance 2.5 / 9.
    expected_z = 3.0 / math.sqrt(2 * (2.5 / 9) / 10)
    assert cost.z == pytest.approx(expected_z)
    assert cost.flagged
    assert drifts["refund-bot"].cost_flagged and drifts["refund-bot"].flagged
    assert not drifts["refund-bot"].rate_flagged

    mailer_cost = drifts["mailer"].cost_per_run
    assert mailer_cost is not None
    assert (mailer_cost.previous_mean, mailer_cost.current_mean) == (1.25, 3.75)
    assert not mailer_cost.enough_data and not drifts["mailer"].flagged
    assert drifts["quiet"].cost_per_run is None
    assert insight.weekly_drift(now=now)[0].agent == "refund-bot"  # flagged rows first


def test_it_flags_reviewers_who_decide_high_impact_requests_in_seconds() -> None:
    now = timezone.now()
    fast, careful = UserFactory(username="fast"), UserFactory(username="careful")
    bot = AgentFactory()

    def decide(reviewer, seconds_on_page: float, impact: str = Impact.HIGH, viewed=True) -> None:
        decided_at = now - timedelta(hours=1)
        approval = decided_approval(
            agent=bot,
            status=Status.APPROVED,
            impact=impact,
            reviewer=reviewer,
            created_at=decided_at - timedelta(minutes=10),
            decided_at=decided_at,
        )
        if viewed:
            DecisionPageView.objects.create(
                approval=approval,
                reviewer=reviewer,
                first_viewed_at=decided_at - timedelta(seconds=seconds_on_page),
            )

    for seconds in (1, 2, 2, 3, 30):
        decide(fast, seconds, impact=Impact.CRITICAL)
    decide(fast, 600, impact=Impact.LOW)  # low impact: not part of the signal
    decide(fast, 0, viewed=False)
    for seconds in (40, 60, 90, 120, 45):
        decide(careful, seconds)

    results = {
        item.reviewer: item
        for item in insight.rubber_stamp_signal(since=now - timedelta(days=1), until=now)
    }
    assert results["fast"].decisions == 5
    assert results["fast"].median_seconds == 2
    assert results["fast"].unviewed == 1
    assert results["fast"].flagged
    assert results["careful"].median_seconds == 60
    assert not results["careful"].flagged


def test_it_does_not_flag_on_too_few_decisions(settings) -> None:
    settings.RUBBER_STAMP_MIN_DECISIONS = 5
    now = timezone.now()
    fast = UserFactory(username="fast")
    approval = decided_approval(
        agent=AgentFactory(),
        status=Status.APPROVED,
        reviewer=fast,
        created_at=now - timedelta(minutes=5),
        decided_at=now - timedelta(minutes=1),
    )
    DecisionPageView.objects.create(
        approval=approval, reviewer=fast, first_viewed_at=now - timedelta(minutes=1, seconds=1)
    )
    (result,) = insight.rubber_stamp_signal(since=now - timedelta(days=1), until=now)
    assert result.median_seconds == 1
    assert not result.flagged


def test_a_reviewer_who_never_opened_the_page_has_no_median(settings, client) -> None:
    # Decided from a chat button: no page view to measure from. 0.0 s would read as the
    # fastest rubber-stamping of all.
    settings.RUBBER_STAMP_MIN_DECISIONS = 1
    now = timezone.now()
    chat = UserFactory(username="chat")
    for _ in range(2):
        decided_approval(
            agent=AgentFactory(),
            status=Status.APPROVED,
            reviewer=chat,
            created_at=now - timedelta(minutes=5),
            decided_at=now - timedelta(minutes=1),
        )
    (result,) = insight.rubber_stamp_signal(since=now - timedelta(days=1), until=now)
    assert (result.decisions, result.unviewed, result.median_seconds) == (0, 2, None)
    assert not result.flagged
    client.force_login(UserFactory(username="boss", is_staff=True))
    html = client.get(reverse("approvals:insight")).content.decode()
    section = html.split('id="rubber-stamping"', 1)[1].split("</section>", 1)[0]
    row = section.split("<td>chat</td>", 1)[1].split("</tr>", 1)[0]
    assert row == "<td>0</td><td>\u2013</td><td>2</td>"  # an en dash


def test_held_requests_and_reviewer_load_are_counted() -> None:
    now = timezone.now()
    rita, sam = UserFactory(username="rita"), UserFactory(username="sam")
    bot = AgentFactory()
    hour_ago = now - timedelta(hours=1)
    rule = PolicyRuleFactory(name="refunds over 100")
    for reviewer, status, amount in (
        (rita, Status.APPROVED, 120),
        (rita, Status.DENIED, 450),
        (sam, Status.APPROVED, 999),
    ):
        # Each reason quotes the request's own amount: grouping by text would split them.
        reason = f"Matched rule “refunds over 100” (#1): arguments.amount = {amount} > 100."
        held = decided_approval(
            agent=bot,
            status=status,
            reviewer=reviewer,
            hold_reason=reason,
            created_at=hour_ago,
            decided_at=hour_ago + timedelta(seconds=30),
        )
        PolicyEvaluation.objects.create(
            approval=held,
            rule=rule,
            rule_name="refunds over 100" if amount != 999 else "refunds > 100 (renamed)",
            outcome="hold",
            decided_by="rule",
            reason=reason,
        )
    by_default = decided_approval(
        agent=bot, status=Status.PENDING, hold_reason=DEFAULT_HOLD_REASON, created_at=now
    )
    PolicyEvaluation.objects.create(
        approval=by_default, outcome="hold", decided_by="default", reason=DEFAULT_HOLD_REASON
    )
    decided_approval(agent=bot, status=Status.PENDING, hold_reason="", created_at=now)

    holds = insight.held_by_rule(since=now - timedelta(days=1), until=now + timedelta(1))
    assert [(h.reason, h.total, h.pending) for h in holds] == [
        ("Rule “refunds > 100 (renamed)”", 3, 0),
        ("(no rule recorded)", 1, 1),
        ("No rule matched (held by default)", 1, 1),
    ]
    loads = insight.reviewer_load(since=now - timedelta(days=1), until=now)
    assert [(load.reviewer, load.decisions, load.approved, load.denied) for load in loads] == [
        ("rita", 2, 1, 1),
        ("sam", 1, 1, 0),
    ]
    assert loads[0].median_seconds == 30
