"""What the policy approved or denied at once belongs to the team its rule names, the team it
would have been held for: that team's reviewers can check what the policy did in their place
(history, the decision page, the reviewer API, run timelines, exports), already decided and
read-only. Reviewers of other teams see nothing of it, nobody is notified of it, and the agent
and the audit trail are told exactly what they were before."""

import importlib
from typing import Any

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from agents.services import run_open
from approvals.agent_view import approval_request_representation
from approvals.audit import AuditAction
from approvals.models import ApprovalRequest, AuditRecord, Notification, Status
from approvals.policies.halts import agent_halt
from approvals.policies.models import Outcome
from approvals.selectors import run_timeline_for_reviewer
from approvals.services import approval_request_create
from tests.factories import (
    AgentFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    build_submission,
    reviewer_api_token,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db) -> dict[str, Any]:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    payments = TeamFactory(name="payments", members=[alice])
    TeamFactory(name="ops", members=[bob])
    PolicyRuleFactory(
        name="small refunds",
        tool_glob="issue_refund",
        outcome=Outcome.APPROVE,
        reason="A small refund.",
        team=payments,
        required_approvals=2,  # a held request's quorum: nothing to one decided at once
    )
    PolicyRuleFactory(
        name="no wires", tool_glob="wire_*", outcome=Outcome.DENY, reason="Never.", team=payments
    )
    PolicyRuleFactory(name="lookups", tool_glob="lookup", outcome=Outcome.APPROVE, reason="Safe.")
    PolicyRuleFactory(name="the rest", tool_glob="*", team=payments)
    return {"alice": alice, "bob": bob, "payments": payments, "agent": AgentFactory()}


def _create(agent: Any, tool: str, key: str, **overrides: Any) -> ApprovalRequest:
    approval, created = approval_request_create(
        agent=agent, idempotency_key=key, submission=build_submission(tool, **overrides)
    )
    assert created
    return approval


def _page(user: Any, url: str) -> tuple[int, str]:
    client = Client()
    client.force_login(user)
    response = client.get(url)
    return response.status_code, response.content.decode()


def _api(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(user)}")
    return client


def test_the_policy_gives_what_it_decides_the_team_it_would_have_held_it_for(world) -> None:
    agent = world["agent"]
    approved = _create(agent, "issue_refund", "k1")
    denied = _create(agent, "wire_payout", "k2")
    no_team = _create(agent, "lookup", "k3")
    held = _create(agent, "deploy", "k4")

    statuses = (approved.status, denied.status, no_team.status, held.status)
    assert statuses == ("approved", "denied", "approved", "pending")
    stored = dict(ApprovalRequest.objects.values_list("tool", "team__name"))
    assert stored == {
        "issue_refund": "payments",
        "wire_payout": "payments",
        "lookup": None,  # the rule names no team: staff's, as a hold by it would be
        "deploy": "payments",
    }
    # Only the team: the quorum and the chain are a held request's, for whoever decides it.
    assert approved.required_approvals == 1 and approved.escalation_chain_id is None


def test_a_halted_agents_denial_names_no_rule_and_stays_with_staff(world) -> None:
    agent = world["agent"]
    agent_halt(agent=agent, reason="Runaway.", halted_by=UserFactory(is_staff=True))
    denied = _create(agent, "issue_refund", "k1")
    assert denied.status == Status.DENIED and denied.team_id is None


def test_nobody_is_notified_of_what_the_policy_decided(world) -> None:
    agent = world["agent"]
    approved = _create(agent, "issue_refund", "k1")
    denied = _create(agent, "wire_payout", "k2")
    assert not Notification.objects.filter(approval__in=[approved, denied]).exists()
    # The team's reviewers are told of what waits for them, as before.
    held = _create(agent, "deploy", "k3")
    assert Notification.objects.filter(approval=held, recipient=world["alice"]).exists()


def test_the_teams_reviewer_sees_it_decided_in_history_and_on_its_page(world) -> None:
    approved = _create(world["agent"], "issue_refund", "k1")
    row = f'id="approval-{approved.code}"'

    status, history = _page(world["alice"], reverse("approvals:history"))
    assert status == 200 and row in history

    status, page = _page(world["alice"], reverse("approvals:detail", args=[approved.code]))
    assert status == 200
    assert 'id="status-badge">Approved<' in page and "small refunds" in page
    # Read-only: decided, so nothing to approve, deny, claim or escalate.
    for action in ("approve", "deny", "claim", "escalate"):
        assert reverse(f"approvals:{action}", args=[approved.code]) not in page, action


def test_its_policy_details_ask_nothing_of_a_person(world) -> None:
    # Before, a request approved at once read "2 approvals needed · if nobody decides: deny"
    # (the rule's terms for a hold), as if it still waited for someone.
    approved = _create(world["agent"], "issue_refund", "k1")
    held = _create(world["agent"], "deploy", "k2")

    _, page = _page(world["alice"], reverse("approvals:detail", args=[approved.code]))
    assert "small refunds" in page
    assert "needed" not in page and "if nobody decides:" not in page
    assert "What the policy decided:" in page and "Why it was paused" not in page

    _, page = _page(world["alice"], reverse("approvals:detail", args=[held.code]))
    assert "1 approval needed" in page and "if nobody decides:" in page
    assert "Why it was paused:" in page and "What the policy decided" not in page


def test_another_teams_reviewer_sees_nothing_of_it(world) -> None:
    approved = _create(world["agent"], "issue_refund", "k1")
    denied = _create(world["agent"], "wire_payout", "k2")

    _, history = _page(world["bob"], reverse("approvals:history"))
    for request in (approved, denied):
        assert str(request.code) not in history
        status, _ = _page(world["bob"], reverse("approvals:detail", args=[request.code]))
        assert status == 404
        url = reverse("api-v1:reviewer-request-detail", args=[request.code])
        assert _api(world["bob"]).get(url).status_code == 404
    listed = _api(world["bob"]).get(reverse("api-v1:reviewer-request-list"), {"state": "decided"})
    assert listed.status_code == 200 and listed.json()["data"] == []


def test_the_reviewer_api_lists_it_for_the_team_and_tells_the_agent_nothing_new(world) -> None:
    approved = _create(world["agent"], "issue_refund", "k1")

    listed = _api(world["alice"]).get(reverse("api-v1:reviewer-request-list"), {"state": "decided"})
    (row,) = listed.json()["data"]
    assert row["id"] == str(approved.code) and row["team"] == "payments"
    # `policy.team` is the team a request was held for: none here, for reviewers and agent alike.
    assert row["policy"]["outcome"] == "approve" and row["policy"]["team"] is None
    fresh = ApprovalRequest.objects.select_related("policy_evaluation", "team").get(pk=approved.pk)
    assert approval_request_representation(fresh)["policy"]["team"] is None


def test_the_agents_answer_reads_no_team(world, django_assert_num_queries) -> None:
    # What creation returns is what the agent is answered with: the team it belongs to is not
    # loaded for it, and the answer does not read it.
    approved = _create(world["agent"], "issue_refund", "k1")
    with django_assert_num_queries(0):
        view = approval_request_representation(approved)
    assert view["status"] == "approved" and view["policy"]["team"] is None


def test_creating_it_costs_no_query_more_than_for_a_rule_naming_no_team(world) -> None:
    # The team comes with the rule the policy loaded (Verdict.team_id): nothing more to read.
    agent = world["agent"]
    _create(agent, "warm", "warm")

    def queries(tool: str, key: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            _create(agent, tool, key)
        return len(captured.captured_queries)

    assert queries("issue_refund", "k1") == queries("lookup", "k2")


def test_the_teams_reviewer_sees_it_in_the_runs_timeline(world) -> None:
    agent = world["agent"]
    run, _ = run_open(agent=agent, name="refunds")
    approved = _create(agent, "issue_refund", "k1", run=str(run.code))
    held = _create(agent, "deploy", "k2", run=str(run.code))

    timeline = run_timeline_for_reviewer(approval=held, user=world["alice"])
    assert timeline is not None
    assert [e.approval for e in timeline.entries if e.approval] == [approved, held]
    status, page = _page(world["alice"], reverse("approvals:detail", args=[held.code]))
    assert status == 200 and str(approved.code) in page and "approvals-elsewhere" not in page


def test_the_audit_trail_is_the_same_as_for_a_request_of_no_team(world) -> None:
    with_team = _create(world["agent"], "issue_refund", "k1")
    without = _create(world["agent"], "lookup", "k2")

    def shape(approval: ApprovalRequest) -> list[tuple[Any, ...]]:
        records = AuditRecord.objects.filter(object_id=str(approval.code)).order_by("sequence")
        return [
            (
                r.action,
                r.actor_type,
                r.object_type,
                sorted(r.before or {}),
                sorted(r.after or {}),
                sorted(r.context),
            )
            for r in records
        ]

    assert with_team.team_id is not None and without.team_id is None
    assert shape(with_team) == shape(without)
    assert [row[0] for row in shape(with_team)] == [
        AuditAction.REQUEST_SUBMITTED,
        AuditAction.POLICY_DECIDED,
        AuditAction.REQUEST_APPROVED,
    ]
    assert not any("team" in str(r.after) for r in AuditRecord.objects.all())


class _SchemaEditor:
    connection = connection


def test_the_backfill_gives_earlier_decisions_their_rules_team_in_batches(
    world, monkeypatch
) -> None:
    backfill = importlib.import_module("approvals.migrations.0031_policy_decided_requests_teams")
    agent = world["agent"]
    approved = [_create(agent, "issue_refund", f"a{n}") for n in range(5)]
    denied = _create(agent, "wire_payout", "d")
    no_team = _create(agent, "lookup", "l")
    held = _create(agent, "deploy", "h")
    ApprovalRequest.objects.filter(pk__in=[a.pk for a in [*approved, denied]]).update(team=None)
    # A held request a person took away from its team keeps where it went.
    ApprovalRequest.objects.filter(pk=held.pk).update(team=None)
    before = AuditRecord.objects.count()
    monkeypatch.setattr(backfill, "BATCH", 2)

    backfill.teams_backfilled(apps, _SchemaEditor())

    teams = dict(ApprovalRequest.objects.values_list("pk", "team__name"))
    assert [teams[a.pk] for a in [*approved, denied]] == ["payments"] * 6
    assert teams[no_team.pk] is None and teams[held.pk] is None
    assert AuditRecord.objects.count() == before
    assert not Notification.objects.filter(approval__in=[*approved, denied]).exists()
    backfill.teams_backfilled(apps, _SchemaEditor())  # run again: nothing left to do
    assert dict(ApprovalRequest.objects.values_list("pk", "team__name")) == teams
