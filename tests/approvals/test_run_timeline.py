"""The reviewer detail page shows a request inside its run's timeline, with the cost so far."""

from decimal import Decimal

import pytest
from django.urls import reverse

from agents.services import NewTraceEvent, run_events_append, run_open
from approvals.selectors import run_timeline_for_reviewer
from approvals.services import Submission, approval_request_create
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


@pytest.fixture
def logged_in(client, reviewer):
    client.force_login(reviewer)
    return client


def _event(type_: str, cost: str | None = None, **data: object) -> NewTraceEvent:
    return NewTraceEvent(type=type_, data=data, cost=Decimal(cost) if cost else None)


@pytest.fixture
def run_with_request(agent_and_token):
    agent, _ = agent_and_token
    run, _ = run_open(agent=agent, name="refund run", budget=Decimal("1"))
    run_events_append(
        run=run,
        events=[
            _event("message", role="user", content="I was charged twice"),
            _event("llm_call", "0.25", model="gpt-5", input_tokens=900, output_tokens=40),
            _event("tool_call", tool="lookup_payment", arguments={"id": 1}, result={"dup": True}),
        ],
    )
    approval, _ = approval_request_create(
        agent=agent,
        idempotency_key="k1",
        submission=Submission(
            tool="issue_refund", arguments={"amount": 1}, timeout="30m", run=str(run.code)
        ),
    )
    run_events_append(run=run, events=[_event("llm_call", "0.5", model="gpt-5")])
    return run, approval


def test_it_shows_earlier_events_and_the_cost_when_asked(logged_in, run_with_request) -> None:
    _, approval = run_with_request
    html = logged_in.get(reverse("approvals:detail", args=[approval.code])).content.decode()
    assert 'id="run-timeline"' in html and "refund run" in html
    assert "I was charged twice" in html and "lookup_payment" in html
    assert "&quot;dup&quot;: true" in html  # the tool's result, as JSON
    assert '<dd class="cost-when-asked">0.25</dd>' in html
    assert '<dd class="run-total-cost">0.75 of 1 budget' in html
    assert "This request:" in html
    # Earlier events come before the request, later ones after it.
    assert html.index("I was charged twice") < html.index("This request:")
    assert html.index("This request:") < html.index("#4")


def test_it_orders_the_timeline_around_the_request(run_with_request, reviewer) -> None:
    _, approval = run_with_request
    timeline = run_timeline_for_reviewer(approval=approval, user=reviewer)
    assert timeline is not None
    rows = [
        f"event {entry.event.sequence}" if entry.event else f"approval {entry.approval.tool}"
        for entry in timeline.entries
    ]
    assert rows == ["event 1", "event 2", "event 3", "approval issue_refund", "event 4"]
    assert timeline.cost_when_asked == Decimal("0.25")


def test_it_escapes_trace_text(logged_in, agent_and_token) -> None:
    agent, _ = agent_and_token
    run, _ = run_open(agent=agent, name=HOSTILE[:200])
    run_events_append(
        run=run,
        events=[
            _event("note", text=HOSTILE),
            _event("tool_call", tool=HOSTILE[:200], arguments={"x": HOSTILE}, error=HOSTILE),
            _event("llm_call", model="m", prompt=HOSTILE, completion=HOSTILE),
        ],
    )
    approval = ApprovalRequestFactory(agent=agent, run=run)
    html = logged_in.get(reverse("approvals:detail", args=[approval.code])).content.decode()
    assert "<script>alert(2)</script>" not in html
    assert '<img src=x onerror="alert(1)">' not in html
    assert html.count("&lt;script&gt;alert(2)&lt;/script&gt;") >= 4


def test_it_shows_no_timeline_without_a_run(logged_in) -> None:
    approval = ApprovalRequestFactory()
    html = logged_in.get(reverse("approvals:detail", args=[approval.code])).content.decode()
    assert 'id="run-timeline"' not in html


def test_it_shows_a_team_reviewer_none_of_the_runs_requests_routed_to_another_team(
    client, agent_and_token
) -> None:
    agent, _ = agent_and_token
    xavier, yvonne = UserFactory(username="xavier"), UserFactory(username="yvonne")
    team_x = TeamFactory(name="team-x", members=[xavier])
    team_y = TeamFactory(name="team-y", members=[yvonne])
    run, _ = run_open(agent=agent, name="payout run")
    own = ApprovalRequestFactory(agent=agent, run=run, team=team_x, tool="issue_refund")
    elsewhere = ApprovalRequestFactory(agent=agent, run=run, team=team_y, tool="wire_payout")
    unrouted = ApprovalRequestFactory(agent=agent, run=run, team=None, tool="purge_ledger")

    client.force_login(xavier)
    html = client.get(reverse("approvals:detail", args=[own.code])).content.decode()
    assert "This request:" in html
    for hidden in (elsewhere, unrouted):
        assert hidden.tool not in html
        assert str(hidden.code) not in html
    assert "2 other requests in this run are routed to teams you are not in" in html
    timeline = run_timeline_for_reviewer(approval=own, user=xavier)
    assert timeline is not None
    assert [entry.approval for entry in timeline.entries if entry.approval] == [own]

    # Their own team sees its request and, of the rest, only a count; staff see everything.
    client.force_login(yvonne)
    html = client.get(reverse("approvals:detail", args=[elsewhere.code])).content.decode()
    assert "wire_payout" in html and str(own.code) not in html and "purge_ledger" not in html
    staff = UserFactory(username="sam", is_staff=True)
    client.force_login(staff)
    html = client.get(reverse("approvals:detail", args=[own.code])).content.decode()
    assert str(elsewhere.code) in html and "purge_ledger" in html
    assert 'id="approvals-elsewhere"' not in html


def test_it_shows_a_team_reviewer_no_trace_event_about_another_teams_request(
    client, agent_and_token
) -> None:
    agent, _ = agent_and_token
    xavier = UserFactory(username="xavier")
    team_x = TeamFactory(name="team-x", members=[xavier])
    team_y = TeamFactory(name="team-y")
    run, _ = run_open(agent=agent, name="payout run")
    own = ApprovalRequestFactory(agent=agent, run=run, team=team_x, tool="issue_refund")
    elsewhere = ApprovalRequestFactory(agent=agent, run=run, team=team_y, tool="wire_payout")
    run_events_append(
        run=run,
        events=[
            _event("tool_call", tool="issue_refund", approval=str(own.code), result={"ok": 1}),
            _event(
                "tool_call",
                tool="wire_payout",
                approval=str(elsewhere.code),
                arguments={"iban": "DE00-PAYOUT-IBAN"},
                error="payout account frozen",
            ),
            _event("note", text="both calls made"),
        ],
    )

    client.force_login(xavier)
    html = client.get(reverse("approvals:detail", args=[own.code])).content.decode()
    assert "both calls made" in html and "&quot;ok&quot;: 1" in html
    for hidden in ("wire_payout", "DE00-PAYOUT-IBAN", "payout account frozen", ">#2<"):
        assert hidden not in html
    assert "1 trace event about requests you may not see is not shown" in html
    timeline = run_timeline_for_reviewer(approval=own, user=xavier)
    assert timeline is not None
    assert [e.event.sequence for e in timeline.entries if e.event] == [1, 3]
    assert timeline.events_elsewhere == 1

    staff = UserFactory(username="sam", is_staff=True)
    client.force_login(staff)
    html = client.get(reverse("approvals:detail", args=[own.code])).content.decode()
    assert "DE00-PAYOUT-IBAN" in html and "payout account frozen" in html
    assert 'id="events-elsewhere"' not in html
