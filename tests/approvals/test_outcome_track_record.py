"""Outcomes where earlier decisions are shown on the decision page: the track record counts what
the approved calls did, and each similar past decision says it ("Approved → failed:
card_declined"), the agent's error framed as its words; a page with many earlier decisions costs
no more queries than one with few."""

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from agents.models import Agent
from agents.services import run_open
from approvals.models import ApprovalRequest, Team
from approvals.reviews import check_approval_request_deny
from approvals.selectors import approval_track_record
from approvals.services import OutcomeReport, approval_outcome_report, approval_request_approve
from tests.factories import AgentFactory, ApprovalRequestFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann(db):
    return UserFactory(username="ann")


@pytest.fixture
def payments(ann) -> Team:
    return TeamFactory(name="payments", members=[ann])


def _approved(
    agent: Agent, team: Team, reviewer: Any, status: str | None, error: str = "", **fields: Any
) -> Any:
    approval = approval_request_approve(
        approval=ApprovalRequestFactory(agent=agent, team=team, **fields), reviewer=reviewer
    )
    if status is not None:
        approval_outcome_report(approval=approval, report=OutcomeReport(status=status, error=error))
    return approval


def test_the_track_record_counts_what_the_approved_calls_did(ann, payments) -> None:
    bot = AgentFactory(name="refund-bot")
    for status in ("succeeded", "succeeded", "failed", "not_executed", None):
        _approved(bot, payments, ann, status)
    check_approval_request_deny(
        approval=ApprovalRequestFactory(agent=bot, team=payments), reviewer=ann, reason="No."
    )
    # Another team's failure is not the reader's to count.
    oscar = UserFactory(username="oscar")
    _approved(bot, TeamFactory(name="ops", members=[oscar]), oscar, "failed")

    current = ApprovalRequestFactory(agent=bot, team=payments)
    record = approval_track_record(user=ann, approval=current)

    assert (record.approved, record.denied) == (5, 1)
    tally = record.outcomes
    assert (tally.succeeded, tally.failed, tally.not_executed, tally.awaiting) == (2, 1, 1, 1)
    assert tally.failure_rate == pytest.approx(1 / 4)
    assert [words for _, words, _ in tally.parts] == [
        "succeeded",
        "failed",
        "not executed",
        "no outcome yet",
    ]


def test_the_decision_page_shows_outcomes_in_the_record_and_similar_decisions(
    client, ann, payments
) -> None:
    bot = AgentFactory(name="refund-bot")
    _approved(bot, payments, ann, "succeeded")
    _approved(bot, payments, ann, "failed", error="card_declined <b>\u202e")
    current = ApprovalRequestFactory(agent=bot, team=payments)
    client.force_login(ann)
    html = client.get(reverse("approvals:detail", args=[current.code])).content.decode()

    similar = html[html.index('id="similar-decisions"') :]
    similar = similar[: similar.index("</section>")]
    assert 'When they ran: <span class="execution-succeeded">1 succeeded</span>' in similar
    assert '<span class="execution-failed">1 failed</span>.' in similar
    # Newest first: the failure, then the success; the error is the agent's, escaped.
    assert similar.index('data-execution-status="failed"') < similar.index(
        'data-execution-status="succeeded"'
    )
    assert (
        '→ <strong>failed</strong>: <span class="says">Agent says</span> '
        '<q class="agent-claim">card_declined &lt;b&gt;⟨U+202E⟩</q>'
    ) in similar
    assert "<b>" not in similar


def test_a_denied_decision_says_nothing_about_running(client, ann, payments) -> None:
    bot = AgentFactory(name="refund-bot")
    check_approval_request_deny(
        approval=ApprovalRequestFactory(agent=bot, team=payments), reviewer=ann, reason="No."
    )
    current = ApprovalRequestFactory(agent=bot, team=payments)
    client.force_login(ann)
    html = client.get(reverse("approvals:detail", args=[current.code])).content.decode()
    similar = html[html.index('id="similar-decisions"') :]
    similar = similar[: similar.index("</section>")]
    assert "When they ran" not in similar and "data-execution-status" not in similar


def _queries(call: Callable[[], Any]) -> int:
    statements: list[str] = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = call()
    assert response.status_code == 200
    return len(statements)


def test_the_decision_page_costs_as_many_queries_with_many_outcomes_as_with_few(
    ann, payments
) -> None:
    bot = AgentFactory(name="refund-bot")
    # In a run: the run's timeline lists its earlier requests, each with its outcome.
    run, _ = run_open(agent=bot, name="nightly")
    current = ApprovalRequestFactory(agent=bot, team=payments, run=run)
    page = Client()
    page.force_login(ann)
    url = reverse("approvals:detail", args=[current.code])

    def add(count: int) -> None:
        for index in range(count):
            status = ("succeeded", "failed", None)[index % 3]
            _approved(bot, payments, ann, status, error="x", run=run)

    add(1)
    page.get(url)  # the first view records itself; later views read alike
    few = _queries(lambda: page.get(url))
    add(12)
    many = _queries(lambda: page.get(url))
    assert many == few
    assert ApprovalRequest.objects.filter(outcome__status="failed").count() == 4


def test_the_run_timeline_says_what_the_runs_earlier_approvals_did(client, ann, payments) -> None:
    bot = AgentFactory(name="refund-bot")
    run, _ = run_open(agent=bot, name="ticket-4711")
    earlier = approval_request_approve(
        approval=ApprovalRequestFactory(agent=bot, team=payments, run=run, tool="charge_card"),
        reviewer=ann,
    )
    approval_outcome_report(
        approval=earlier, report=OutcomeReport(status="failed", error="card_declined")
    )
    current = ApprovalRequestFactory(agent=bot, team=payments, run=run)
    client.force_login(ann)
    html = client.get(reverse("approvals:detail", args=[current.code])).content.decode()
    timeline = html[html.index('class="timeline"') :]
    line = timeline[: timeline.index("</li>")]
    assert "charge_card" in line and 'data-execution-status="failed"' in line
    assert '<q class="agent-claim">card_declined</q>' in line
