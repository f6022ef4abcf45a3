"""The reviewer's queue and history: order by urgency, risk and deadline; filters; counts."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals.models import Impact, Status
from approvals.reviews import approval_claim_take
from approvals.selectors import (
    QueueFilters,
    approval_track_record,
    approvals_facet_counts,
    approvals_history,
    approvals_queue,
)
from approvals.services import approval_request_approve, approval_request_deny
from tests.factories import AgentFactory, ApprovalRequestFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return UserFactory(username="sam", is_staff=True)


def _in_hours(hours: float):
    return timezone.now() + timedelta(hours=hours)


def test_it_puts_urgent_first_then_risk_then_deadline(staff) -> None:
    calm_low = ApprovalRequestFactory(
        tool="low", impact=Impact.LOW, confidence=0.9, deadline_at=_in_hours(1)
    )
    critical_sure = ApprovalRequestFactory(
        tool="crit", impact=Impact.CRITICAL, confidence=0.95, deadline_at=_in_hours(2)
    )
    high_unsure = ApprovalRequestFactory(
        tool="high-unsure", impact=Impact.HIGH, confidence=0.1, deadline_at=_in_hours(2)
    )
    high_sure_sooner = ApprovalRequestFactory(
        tool="high-sure", impact=Impact.HIGH, confidence=0.8, deadline_at=_in_hours(1)
    )
    urgent_low = ApprovalRequestFactory(
        tool="urgent",
        impact=Impact.LOW,
        confidence=0.9,
        deadline_at=timezone.now() + timedelta(minutes=2),
    )
    order = [a.tool for a in approvals_queue(user=staff, filters=QueueFilters())]
    assert order == [
        urgent_low.tool,
        critical_sure.tool,
        high_unsure.tool,
        high_sure_sooner.tool,
        calm_low.tool,
    ]


def test_it_treats_unstated_confidence_as_least_sure(staff) -> None:
    ApprovalRequestFactory(tool="stated", impact=Impact.HIGH, confidence=0.5)
    ApprovalRequestFactory(tool="unstated", impact=Impact.HIGH, confidence=None)
    assert [a.tool for a in approvals_queue(user=staff, filters=QueueFilters())] == [
        "unstated",
        "stated",
    ]


def test_it_filters_by_agent_tool_impact_team_and_mine(staff) -> None:
    payments = TeamFactory(name="payments")
    bot = AgentFactory(name="refund-bot")
    mine = ApprovalRequestFactory(agent=bot, tool="issue_refund", impact=Impact.HIGH, team=payments)
    ApprovalRequestFactory(tool="send_email", impact=Impact.LOW)
    approval_claim_take(approval=mine, reviewer=staff)
    for filters in (
        QueueFilters(agent="refund-bot"),
        QueueFilters(tool="issue_refund"),
        QueueFilters(impact="high"),
        QueueFilters(team="payments"),
        QueueFilters(mine=True),
    ):
        assert [a.pk for a in approvals_queue(user=staff, filters=filters)] == [mine.pk], filters


def test_it_searches_tool_summary_and_arguments(staff) -> None:
    by_tool = ApprovalRequestFactory(tool="rotate_keys", summary="", arguments={})
    by_summary = ApprovalRequestFactory(tool="x", summary="Refund the Zebra order", arguments={})
    by_argument = ApprovalRequestFactory(
        tool="y", summary="", arguments={"customer": "zebra@example.test"}
    )
    ApprovalRequestFactory(tool="z", summary="nothing", arguments={"a": 1})
    assert {a.pk for a in approvals_queue(user=staff, filters=QueueFilters(q="zebra"))} == {
        by_summary.pk,
        by_argument.pk,
    }
    assert [a.pk for a in approvals_queue(user=staff, filters=QueueFilters(q="ROTATE"))] == [
        by_tool.pk
    ]


def test_it_counts_each_filter_value_within_the_search(staff) -> None:
    ApprovalRequestFactory(tool="issue_refund", impact=Impact.HIGH, summary="refund")
    ApprovalRequestFactory(tool="issue_refund", impact=Impact.LOW, summary="refund")
    ApprovalRequestFactory(tool="send_email", impact=Impact.LOW, summary="email")
    counts = approvals_facet_counts(user=staff, filters=QueueFilters(q="refund"), pending=True)
    assert counts.total == 2
    assert counts.tools == [("issue_refund", 2)]
    assert dict(counts.impacts) == {"low": 1, "medium": 0, "high": 1, "critical": 0}


def test_it_lists_decided_requests_in_history_with_the_same_filters(staff) -> None:
    refund = ApprovalRequestFactory(tool="issue_refund")
    email = ApprovalRequestFactory(tool="send_email")
    ApprovalRequestFactory(tool="issue_refund")  # still pending
    approval_request_approve(approval=refund, reviewer=staff)
    approval_request_deny(approval=email, reviewer=staff, reason="no")
    assert [a.pk for a in approvals_history(user=staff, filters=QueueFilters())] == [
        email.pk,
        refund.pk,
    ]
    assert [
        a.pk for a in approvals_history(user=staff, filters=QueueFilters(tool="issue_refund"))
    ] == [refund.pk]


def test_it_reports_the_track_record_for_the_same_agent_and_tool(staff) -> None:
    bot = AgentFactory(name="refund-bot")
    for status in ("approve", "approve", "approve", "deny"):
        earlier = ApprovalRequestFactory(agent=bot, tool="issue_refund")
        if status == "approve":
            approval_request_approve(approval=earlier, reviewer=staff)
        else:
            approval_request_deny(approval=earlier, reviewer=staff, reason="Too much.")
    other_tool = ApprovalRequestFactory(agent=bot, tool="send_email")
    approval_request_deny(approval=other_tool, reviewer=staff, reason="no")
    current = ApprovalRequestFactory(agent=bot, tool="issue_refund")
    record = approval_track_record(user=staff, approval=current)
    assert (record.approved, record.denied, record.approval_rate) == (3, 1, 75)
    assert len(record.recent) == 4 and record.recent[0].status == Status.DENIED


def test_the_queue_page_shows_counts_and_keeps_filters(client, staff) -> None:
    client.force_login(staff)
    ApprovalRequestFactory(tool="issue_refund")
    ApprovalRequestFactory(tool="send_email")
    html = client.get(reverse("approvals:queue"), {"tool": "send_email"}).content.decode()
    assert "\u201cissue_refund\u201d (1)" in html and "\u201csend_email\u201d (1)" in html
    assert html.count('class="queue-row') == 1
    assert 'data-filtered="1"' in html
    assert "fragment=rows&amp;tool=send_email" in html


def test_the_rows_fragment_refreshes_the_counts_out_of_band(client, staff) -> None:
    client.force_login(staff)
    ApprovalRequestFactory(tool="issue_refund")
    html = client.get(
        reverse("approvals:queue"), {"fragment": "rows"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert html.lstrip().startswith('<ol id="queue-rows"')
    assert 'id="filters"' in html and 'hx-swap-oob="true"' in html


def test_the_history_page_filters_and_searches(client, staff) -> None:
    client.force_login(staff)
    decided = ApprovalRequestFactory(tool="issue_refund", summary="the walrus case")
    other = ApprovalRequestFactory(tool="issue_refund", summary="another")
    approval_request_approve(approval=decided, reviewer=staff)
    approval_request_approve(approval=other, reviewer=staff)
    html = client.get(reverse("approvals:history"), {"q": "walrus"}).content.decode()
    assert f'id="approval-{decided.code}"' in html
    assert f'id="approval-{other.code}"' not in html


def test_the_counts_fragment_refreshes_only_the_filters(client, staff) -> None:
    client.force_login(staff)
    ApprovalRequestFactory(tool="issue_refund")
    html = client.get(
        reverse("approvals:queue"), {"fragment": "counts"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert html.lstrip().startswith('<form id="filters"')
    assert 'hx-swap-oob="true"' in html and "\u201cissue_refund\u201d (1)" in html
    assert 'id="queue-rows"' not in html
