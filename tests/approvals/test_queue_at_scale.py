"""The queue and the reviewer API at any size: pages by cursor, and a query count that does not
grow with the number of requests (the timings are the benchmark's job: console/bench)."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agents.services import run_open
from approvals import selectors, views
from approvals.models import (
    ApprovalRequest,
    ApprovalVote,
    Impact,
    ReviewerPresence,
)
from approvals.reviews import approval_claim_take
from approvals.selectors import QueueFilters, approval_risk, approvals_queue
from approvals.services import approval_request_approve, approval_request_deny
from tests.factories import (
    AgentFactory,
    ApprovalRequestFactory,
    TeamFactory,
    UserFactory,
    reviewer_api_token,
)

pytestmark = pytest.mark.django_db

PAGE = 4  # rows per page in these tests, so "many" spans several pages


@pytest.fixture
def staff(db):
    return UserFactory(username="sam", is_staff=True)


@pytest.fixture
def ann(db):
    return UserFactory(username="ann")


@pytest.fixture(autouse=True)
def small_pages(monkeypatch) -> None:
    monkeypatch.setattr(views, "LIST_PAGE_ROWS", PAGE)


def _add_requests(count: int, *, staff: Any, ann: Any, seed: int, urgent: int = 0) -> None:
    """`count` pending and `count` decided requests over several agents and teams (ann is in
    all of them; a quarter go unrouted), with the claims, votes and viewers of a busy queue.
    The first `urgent` are due within minutes."""
    teams = [TeamFactory(name=f"team-{seed}-{i}", members=[ann]) for i in range(3)]
    agents = [AgentFactory(name=f"agent-{seed}-{i}") for i in range(3)]
    runs = [run_open(agent=agent, name="nightly")[0] for agent in agents]
    now = timezone.now()
    for index in range(count):
        pending = ApprovalRequestFactory(
            agent=agents[index % 3],
            run=runs[index % 3],
            team=teams[index % 3] if index % 4 else None,
            tool=f"tool-{index % 5}",
            impact=[Impact.LOW, Impact.HIGH, Impact.CRITICAL][index % 3],
            confidence=(index % 10) / 10,
            required_approvals=2,
            deadline_at=now + timedelta(minutes=2 if index < urgent else 60 + index),
        )
        if index % 2:
            approval_claim_take(approval=pending, reviewer=staff)
        ApprovalVote.objects.create(approval=pending, reviewer=ann)
        ReviewerPresence.objects.create(
            approval=pending, reviewer=staff, channel_name=f"ws-{seed}-{index}", seen_at=now
        )
        decided = ApprovalRequestFactory(
            agent=agents[index % 3], run=runs[index % 3], team=teams[index % 3]
        )
        if index % 2:
            approval_request_approve(approval=decided, reviewer=staff)
        else:
            approval_request_deny(approval=decided, reviewer=staff, reason="no")


def _statements(call: Callable[[], Any]) -> list[str]:
    """The SQL statements one call runs (a wrapper, not the query log: a request clears that)."""
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = call()
    assert response.status_code == 200
    return statements


def _queries(call: Callable[[], Any]) -> int:
    return len(_statements(call))


def _calls(staff: Any, ann: Any) -> dict[str, Callable[[], Any]]:
    staff_page, ann_page = Client(), Client()
    staff_page.force_login(staff)
    ann_page.force_login(ann)
    api = Client(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(staff)}")
    api_url = reverse("api-v1:reviewer-request-list")
    queue_url, history_url = reverse("approvals:queue"), reverse("approvals:history")
    return {
        "queue page, staff": lambda: staff_page.get(queue_url),
        "queue page, team reviewer": lambda: ann_page.get(queue_url),
        "queue page, filtered": lambda: staff_page.get(queue_url, {"impact": "high"}),
        "history page": lambda: staff_page.get(history_url),
        "API first page": lambda: api.get(api_url, {"limit": PAGE}),
        "API decided": lambda: api.get(api_url, {"state": "decided", "limit": PAGE}),
    }


def test_the_queue_page_and_api_make_as_many_queries_for_many_rows_as_for_few(staff, ann) -> None:
    # Few: fewer rows than a page, one of them urgent; many: several pages more.
    _add_requests(3, staff=staff, ann=ann, seed=1, urgent=1)
    few = {name: _queries(call) for name, call in _calls(staff, ann).items()}
    _add_requests(6 * PAGE, staff=staff, ann=ann, seed=2)
    many = {name: _queries(call) for name, call in _calls(staff, ann).items()}
    assert many == few
    # A filter costs no query of its own: the filtered total adds up the facet counts' groups.
    assert few["queue page, filtered"] == few["queue page, staff"]
    # A later page costs no more than the first (past the urgent ones it skips their query).
    api = Client(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(staff)}")
    url = reverse("api-v1:reviewer-request-list")
    cursor = api.get(url, {"limit": PAGE}).json()["next_cursor"]
    for _ in range(3):
        page = api.get(url, {"limit": PAGE, "cursor": cursor}).json()
        cursor = page["next_cursor"]
    later = _queries(lambda: api.get(url, {"limit": PAGE, "cursor": cursor}))
    assert later <= few["API first page"]


def test_the_filtered_total_counts_exactly_what_the_filters_show(staff, ann) -> None:
    _add_requests(12, staff=staff, ann=ann, seed=1)
    for filters in (
        QueueFilters(),
        QueueFilters(tool="tool-1"),
        QueueFilters(impact=Impact.HIGH),
        QueueFilters(agent="agent-1-2"),
        QueueFilters(team="team-1-0"),
        QueueFilters(team="(unrouted)"),  # the counts' label for no team, not a team's name
        QueueFilters(agent="agent-1-1", tool="tool-1", impact=Impact.HIGH, team="team-1-1"),
        QueueFilters(tool="no-such-tool"),
        QueueFilters(mine=True),
        QueueFilters(q="tool-3", agent="agent-1-0"),
    ):
        for user in (staff, ann):
            counts = selectors.approvals_facet_counts(user=user, filters=filters, pending=True)
            total = selectors.approvals_pending_total(user=user, filters=filters, counts=counts)
            assert total == len(approvals_queue(user=user, filters=filters)), (filters, user)


def test_list_pages_read_only_what_their_rows_show(staff, ann) -> None:
    """No payload (arguments, context...) for any page's rows, and nothing of a pending
    request's review (claims, votes, viewers) nor its run or policy for history rows."""
    _add_requests(3, staff=staff, ann=ann, seed=1)
    calls = _calls(staff, ann)
    payload = '"approvals_approvalrequest"."arguments"'
    for name in ("queue page, staff", "queue page, team reviewer", "history page"):
        assert not [sql for sql in _statements(calls[name]) if payload in sql], name
    history = " ".join(_statements(calls["history page"]))
    for table in ("approvalvote", "reviewerpresence", "policyevaluation"):
        assert f'FROM "approvals_{table}"' not in history, table
    assert 'FROM "approvals_approvalclaim"' not in history
    assert 'FROM "agents_run"' not in history
    # The API's rows carry all of it.
    assert payload in " ".join(_statements(calls["API decided"]))


def test_the_api_pages_through_the_whole_queue_in_queue_order(staff, ann) -> None:
    _add_requests(9, staff=staff, ann=ann, seed=1)
    api = Client(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(staff)}")
    url = reverse("api-v1:reviewer-request-list")
    for state, expected in (
        ("pending", approvals_queue(user=staff, filters=QueueFilters())),
        ("decided", selectors.approvals_history(user=staff, filters=QueueFilters())),
    ):
        seen, cursor, pages = [], "", 0
        while True:
            body = api.get(url, {"state": state, "limit": 2, "cursor": cursor}).json()
            seen += [row["id"] for row in body["data"]]
            pages += 1
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert seen == [str(approval.code) for approval in expected], state
        assert pages == 5  # 9 rows, 2 a page


def test_the_api_rejects_a_bad_cursor_or_limit(staff) -> None:
    ApprovalRequestFactory.create_batch(3)
    api = Client(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(staff)}")
    url = reverse("api-v1:reviewer-request-list")
    queue_cursor = api.get(url, {"limit": 1}).json()["next_cursor"]
    for params, param in (
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"state": "decided", "cursor": queue_cursor}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
    ):
        response = api.get(url, params)
        assert response.status_code == 400, params
        assert response.json()["error"]["param"] == param


def test_the_queue_page_links_to_the_next_page_and_back(client, staff) -> None:
    client.force_login(staff)
    approvals = [ApprovalRequestFactory(confidence=i / 10) for i in range(PAGE + 1)]
    first = client.get(reverse("approvals:queue"), {"tool": "issue_refund"}).content.decode()
    assert first.count('class="queue-row') == PAGE
    next_query = first.split('rel="next"')[0].rsplit('href="?', 1)[1].split('"')[0]
    second = client.get(reverse("approvals:queue") + "?" + next_query.replace("&amp;", "&"))
    html = second.content.decode()
    # Least sure first: the surest request is the one left for page two.
    assert html.count('class="queue-row') == 1 and f"approval-{approvals[-1].code}" in html
    assert 'href="?tool=issue_refund">← Back to the top' in html and 'rel="next"' not in html
    # A mangled cursor shows the first page instead of an error.
    assert client.get(reverse("approvals:queue"), {"cursor": "x"}).status_code == 200


def test_history_counts_cover_only_the_latest_decisions(client, staff, monkeypatch) -> None:
    monkeypatch.setattr(selectors.queue, "HISTORY_COUNT_WINDOW", 2)
    for tool in ("old_tool", "new_tool", "new_tool"):
        approval_request_approve(approval=ApprovalRequestFactory(tool=tool), reviewer=staff)
    counts = selectors.approvals_facet_counts(user=staff, filters=QueueFilters(), pending=False)
    assert (counts.total, counts.window, counts.tools) == (2, 2, [("new_tool", 2)])
    client.force_login(staff)
    html = client.get(reverse("approvals:history")).content.decode()
    assert "Counts cover the latest 2 decisions." in html


def test_the_database_orders_the_queue_by_the_same_risk_the_rows_show(staff) -> None:
    for impact, confidence in ((Impact.LOW, 0.9), (Impact.CRITICAL, None), (Impact.HIGH, 0.25)):
        ApprovalRequestFactory(impact=impact, confidence=confidence)
    for approval in ApprovalRequest.objects.all():
        assert approval.queue_order == pytest.approx(-approval_risk(approval))


def test_the_impact_filter_finds_every_request_of_that_impact_whatever_its_confidence(
    staff,
) -> None:
    # The filter narrows the queue's order column to the impact's range: the ends of the
    # ranges (confidence 0 and 1, and unstated) must all stay in.
    agent = AgentFactory()
    made: dict[str, set[int]] = {impact: set() for impact in Impact.values}
    for impact in Impact.values:
        for confidence in (None, 0.0, 0.5, 1.0):
            approval = ApprovalRequestFactory(agent=agent, impact=impact, confidence=confidence)
            made[impact].add(approval.pk)

    for impact in Impact.values:
        found = approvals_queue(user=staff, filters=QueueFilters(impact=impact))
        assert {approval.pk for approval in found} == made[impact], impact
