"""The insight dashboard page and the page-view tracking behind the rubber-stamping signal."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from agents.models import Run, RunStatus
from approvals.models import DecisionPageView, Status
from approvals.policies.models import PolicyEvaluation
from approvals.services import approval_request_approve
from tests.factories import AgentFactory, ApprovalRequestFactory, UserFactory, decided_approval

pytestmark = pytest.mark.django_db

URL = "/insight/"


def test_it_is_for_staff(client) -> None:
    assert client.get(URL).status_code == 302  # to the login page
    client.force_login(UserFactory(username="rita"))
    assert client.get(URL).status_code == 403


def test_it_renders_charts_as_svg_without_inline_script_or_style(client) -> None:
    now = timezone.now()
    rita = UserFactory(username="rita")
    for index in range(3):
        held = decided_approval(
            agent=AgentFactory(name=f"<b>bot-{index}</b>"),
            status=Status.APPROVED,
            reviewer=rita,
            confidence=0.8,
            hold_reason="Matched rule “Refunds over 100 EUR”",
            created_at=now - timedelta(days=index, minutes=5),
            decided_at=now - timedelta(days=index),
        )
        PolicyEvaluation.objects.create(
            approval=held,
            rule_name="Refunds over 100 EUR",
            outcome="hold",
            decided_by="rule",
            reason=held.hold_reason,
        )
    client.force_login(UserFactory(username="boss", is_staff=True))
    response = client.get(URL, {"weeks": "4"})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("<svg") >= 5
    assert "Refunds over 100 EUR" in html
    assert "Calibration of agent “&lt;b&gt;bot-0&lt;/b&gt;”" in html
    assert "<b>bot-0</b>" not in html
    assert "style=" not in html
    assert "<script>" not in html
    assert 'aria-current="page">4<' in html


def test_it_shows_flagged_drift(client) -> None:
    now = timezone.now()
    rita = UserFactory(username="rita")
    bot = AgentFactory(name="refund-bot")
    for week_start, approved in ((now - timedelta(days=13), 12), (now - timedelta(days=6), 1)):
        for index in range(12):
            decided_approval(
                agent=bot,
                status=Status.APPROVED if index < approved else Status.DENIED,
                reviewer=rita,
                created_at=week_start + timedelta(hours=index),
                decided_at=week_start + timedelta(hours=index, minutes=1),
            )
    client.force_login(UserFactory(username="boss", is_staff=True))
    html = client.get(URL).content.decode()
    assert 'class="flagged"' in html
    assert "changed</span>" in html


def test_a_week_without_figures_shows_a_dash_on_its_side_of_the_arrow(client) -> None:
    now = timezone.now()
    decided_approval(
        agent=AgentFactory(name="refund-bot"),
        status=Status.APPROVED,
        reviewer=UserFactory(username="rita"),
        confidence=None,
        created_at=now - timedelta(days=1, minutes=1),
        decided_at=now - timedelta(days=1),
    )
    client.force_login(UserFactory(username="boss", is_staff=True))
    html = client.get(URL).content.decode()
    row = html[html.index("<td>0 → 1</td>") :].split("</tr>")[0]
    # Approval rate, mean confidence, failure rate: no decisions (or none stated) the week before.
    dash = "\u2013"  # what the page shows for "no figure"
    assert f'<td class="">{dash} → 1.00</td>' in row
    assert f'<td class="">{dash} → {dash}</td>' in row
    assert f"{dash} → {dash} <span" in row
    assert "> → " not in row


def test_it_shows_cost_per_run_next_to_the_agents_drift(client) -> None:
    now = timezone.now()
    bot = AgentFactory(name="refund-bot")
    decided_approval(
        agent=bot,
        status=Status.APPROVED,
        reviewer=UserFactory(username="rita"),
        created_at=now - timedelta(days=1, minutes=1),
        decided_at=now - timedelta(days=1),
    )
    for days_ago, cost in ((10, "0.1250"), (2, "0.5000")):
        Run.objects.create(
            agent=bot,
            name=f"run-{days_ago}",
            status=RunStatus.COMPLETED,
            total_cost=Decimal(cost),
            closed_at=now - timedelta(days=days_ago),
        )
    client.force_login(UserFactory(username="boss", is_staff=True))
    html = client.get(URL).content.decode()
    assert "0.1250 → 0.5000" in html
    assert "(1 → 1 runs)" in html


def test_opening_a_pending_request_records_the_first_view_only(client) -> None:
    rita = UserFactory(username="rita", is_staff=True)  # unrouted requests are staff-only
    approval = ApprovalRequestFactory()
    client.force_login(rita)
    client.get(f"/requests/{approval.code}/")
    first = DecisionPageView.objects.get(approval=approval, reviewer=rita).first_viewed_at
    client.get(f"/requests/{approval.code}/")
    assert DecisionPageView.objects.get(approval=approval, reviewer=rita).first_viewed_at == first

    approval_request_approve(approval=approval, reviewer=rita)
    sam = UserFactory(username="sam", is_staff=True)
    client.force_login(sam)
    client.get(f"/requests/{approval.code}/")  # decided already: not time spent deciding
    assert not DecisionPageView.objects.filter(reviewer=sam).exists()


def test_it_renders_with_no_data_at_all(client) -> None:
    client.force_login(UserFactory(username="boss", is_staff=True))
    response = client.get(URL, {"weeks": "not-a-number"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "No data yet." in html
    assert "No decisions in the last two weeks." in html
    assert 'aria-current="page">8<' in html  # the default window
