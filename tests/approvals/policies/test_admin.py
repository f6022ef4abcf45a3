"""Rules in the admin, and the backtest of a draft rule against decided requests."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from approvals.models import ApprovalRequest, Decision, Status
from approvals.policies.models import PolicyCondition, PolicyRule, RuleState
from tests.factories import AgentFactory, ApprovalRequestFactory, PolicyRuleFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def _decided(status: str, amount: int, minutes_ago: int, **fields: object) -> ApprovalRequest:
    decided_at = timezone.now() - timedelta(minutes=minutes_ago)
    fields.setdefault("arguments", {"amount": amount})
    approval = ApprovalRequestFactory(status=status, decided_at=decided_at, **fields)
    Decision.objects.create(approval=approval, status=status, decided_at=decided_at)
    return approval


def test_it_backtests_a_draft_rule_and_shows_disagreements(admin_client_: Client) -> None:
    agent = AgentFactory()
    approved_small = _decided(Status.APPROVED, 100, 5, agent=agent)
    denied_small = _decided(Status.DENIED, 200, 4, agent=agent)
    expired_small = _decided(Status.EXPIRED, 300, 3, agent=agent)
    _decided(Status.APPROVED, 9000, 2, agent=agent)  # no match
    _decided(Status.DENIED, 50, 1, agent=agent, arguments={"note": "no amount"})  # cannot evaluate
    ApprovalRequestFactory(agent=agent)  # pending: not a decided request
    _decided(Status.APPROVED, 100, 60 * 24)  # older than the last N

    rule = PolicyRuleFactory(name="small refunds", state=RuleState.DRAFT, outcome="approve")
    PolicyCondition.objects.create(rule=rule, path="amount", operator="<", value=1000)

    page = admin_client_.get(f"/admin/approvals/policyrule/{rule.pk}/backtest/", {"limit": 5})
    assert page.status_code == 200
    result = page.context["result"]
    assert result.examined == 5
    assert (result.would_approve, result.would_deny, result.would_hold) == (3, 0, 0)
    assert (result.no_match, result.errors) == (1, 1)
    assert {row.approval for row in result.disagreements} == {denied_small, expired_small}
    assert approved_small not in {row.approval for row in result.disagreements}
    html = page.content.decode()
    assert '<td id="count-approve">3</td>' in html
    assert '<td id="count-disagree">2</td>' in html
    assert str(denied_small.code) in html
    rule.refresh_from_db()
    assert rule.state == RuleState.DRAFT  # a backtest changes nothing


def test_it_counts_would_deny_against_reviewer_approvals(admin_client_: Client) -> None:
    approved = _decided(Status.APPROVED, 5000, 1)
    _decided(Status.DENIED, 6000, 2)
    rule = PolicyRuleFactory(state=RuleState.DRAFT, outcome="deny", reason="Too big.")
    PolicyCondition.objects.create(rule=rule, path="amount", operator=">=", value=5000)
    page = admin_client_.get(f"/admin/approvals/policyrule/{rule.pk}/backtest/", {"limit": 10})
    result = page.context["result"]
    assert result.would_deny == 2
    assert [row.approval for row in result.disagreements] == [approved]


def test_it_refuses_the_backtest_to_non_staff() -> None:
    rule = PolicyRuleFactory()
    client = Client()
    client.force_login(UserFactory(username="plain"))
    response = client.get(f"/admin/approvals/policyrule/{rule.pk}/backtest/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_it_edits_rules_with_conditions_in_the_admin(admin_client_: Client) -> None:
    assert admin_client_.get("/admin/approvals/policyrule/add/").status_code == 200
    response = admin_client_.post(
        "/admin/approvals/policyrule/add/",
        {
            "name": "deny big",
            "position": "5",
            "state": "active",
            "tool_glob": "issue_*",
            "labels": "",
            "outcome": "deny",
            "reason": "Too big.",
            "required_approvals": "1",
            "on_timeout": "deny",
            "conditions-TOTAL_FORMS": "1",
            "conditions-INITIAL_FORMS": "0",
            "conditions-0-path": "amount",
            "conditions-0-operator": ">",
            "conditions-0-value": "10000",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = PolicyRule.objects.get(name="deny big")
    condition = rule.conditions.get()
    assert (condition.path, condition.operator, condition.value) == ("amount", ">", 10000)
    assert rule.labels == []  # left empty: no label required


def test_it_rejects_a_broken_regex_and_a_denial_without_reason(admin_client_: Client) -> None:
    response = admin_client_.post(
        "/admin/approvals/policyrule/add/",
        {
            "name": "broken",
            "position": "5",
            "state": "active",
            "labels": "[]",
            "outcome": "deny",
            "reason": "",
            "required_approvals": "1",
            "on_timeout": "deny",
            "conditions-TOTAL_FORMS": "1",
            "conditions-INITIAL_FORMS": "0",
            "conditions-0-path": "email",
            "conditions-0-operator": "matches",
            "conditions-0-value": '"([a-z"',
        },
    )
    assert response.status_code == 200
    assert not PolicyRule.objects.filter(name="broken").exists()
    html = response.content.decode()
    assert "A denial needs a reason" in html
    assert "Not a valid regular expression" in html
