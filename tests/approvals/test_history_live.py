"""The history of decisions updates live: a new decision arrives as the row the page renders."""

import asyncio
import re

import pytest
from django.urls import reverse

from approvals.reviews import check_approval_request_comment, check_approval_request_deny
from approvals.services import approval_request_approve
from tests.conftest import ReviewerSession
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory
from tests.sockets import messages_until
from tests.thread_connections import db_to_thread


def _row(html: str, code: object) -> str:
    match = re.search(
        rf'<li id="approval-{code}" class="queue-row" data-decided=.*?</li>', html, re.S
    )
    assert match, f"no history row for {code}"
    return match.group(0)


@pytest.mark.django_db(transaction=True)
def test_it_pushes_a_new_decision_to_the_top_of_the_history(live_console) -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    payments = TeamFactory(name="payments", members=[alice, bob])
    approval = ApprovalRequestFactory(team=payments, tool="refund_card", summary="<b>hi</b>")
    session = ReviewerSession(live_console.url, "alice")

    async def scenario() -> str:
        async with session.socket() as ws:
            await db_to_thread(
                check_approval_request_deny, approval=approval, reviewer=bob, reason="No."
            )
            return (await messages_until(ws, "#history-rows"))[-1]

    pushed = asyncio.run(scenario())
    assert 'hx-swap-oob="afterbegin:#history-rows"' in pushed
    # The same partial as the page: a reload shows exactly what the push showed.
    page = session.client.get(reverse("approvals:history")).text
    assert _row(pushed, approval.code) == _row(page, approval.code)
    assert "Denied" in _row(pushed, approval.code) and "by bob" in _row(pushed, approval.code)
    assert "<b>hi</b>" not in pushed  # agent text stays text
    session.close()


@pytest.mark.django_db(transaction=True)
def test_it_keeps_a_decision_from_reviewers_of_other_teams(live_console) -> None:
    alice, sara = UserFactory(username="alice"), UserFactory(username="sara")
    payments = TeamFactory(name="payments", members=[alice])
    security = TeamFactory(name="security", members=[sara])
    hidden = ApprovalRequestFactory(team=payments, tool="payments_secret")
    marker = ApprovalRequestFactory(team=security, tool="security_marker")
    session = ReviewerSession(live_console.url, "sara")

    async def scenario() -> list[str]:
        async with session.socket() as ws:
            await db_to_thread(approval_request_approve, approval=hidden, reviewer=alice)
            await db_to_thread(approval_request_approve, approval=marker, reviewer=sara)
            return await messages_until(ws, "security_marker")

    got = asyncio.run(scenario())
    assert not any("payments_secret" in message for message in got)
    assert 'hx-swap-oob="afterbegin:#history-rows"' in got[-1]
    session.close()


@pytest.mark.django_db
def test_the_page_listens_and_renders_rows_with_their_decision_time(client) -> None:
    alice = UserFactory(username="alice")
    approval = ApprovalRequestFactory(team=TeamFactory(name="payments", members=[alice]))
    check_approval_request_comment(approval=approval, reviewer=alice, note="before")
    approval_request_approve(approval=approval, reviewer=alice)
    client.force_login(alice)
    page = client.get(reverse("approvals:history")).content.decode()
    assert 'ws-connect="/ws/queue/"' in page and 'id="history-rows"' in page
    assert f'id="approval-{approval.code}" class="queue-row" data-decided="' in page
    # A decision just made reads "by alice · now", not "· 0 minutes ago".
    assert re.search(
        r"by alice · (now|a second ago|\d+ seconds ago)</span>", _row(page, approval.code)
    )


@pytest.mark.django_db
def test_it_re_reads_filtered_rows_for_a_live_page(client) -> None:
    alice = UserFactory(username="alice")
    team = TeamFactory(name="payments", members=[alice])
    wanted = ApprovalRequestFactory(team=team, tool="refund_card")
    other = ApprovalRequestFactory(team=team, tool="send_mail")
    for approval in (wanted, other):
        approval_request_approve(approval=approval, reviewer=alice)
    client.force_login(alice)
    response = client.get(
        reverse("approvals:history"),
        {"fragment": "rows", "tool": "refund_card"},
        HTTP_HX_REQUEST="true",
    )
    rows = response.content.decode()
    assert rows.strip().startswith('<ol id="history-rows"')
    assert f"approval-{wanted.code}" in rows and f"approval-{other.code}" not in rows


@pytest.mark.django_db(transaction=True)
def test_it_pushes_an_outcome_reported_after_the_decision(live_console) -> None:
    from approvals.services import OutcomeReport, approval_outcome_report

    alice = UserFactory(username="alice")
    payments = TeamFactory(name="payments", members=[alice])
    approval = approval_request_approve(
        approval=ApprovalRequestFactory(team=payments), reviewer=alice
    )
    session = ReviewerSession(live_console.url, "alice")

    async def scenario() -> str:
        async with session.socket() as ws:
            await db_to_thread(
                approval_outcome_report,
                approval=approval,
                report=OutcomeReport(status="failed", error="card_declined"),
            )
            return (await messages_until(ws, "data-execution-status"))[-1]

    pushed = asyncio.run(scenario())
    assert 'data-execution-status="failed"' in pushed and "card_declined" in pushed
    session.close()
