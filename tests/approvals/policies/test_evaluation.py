"""Policies applied at creation: outcomes through the state machine, records, API, guardrails."""

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from agents.models import AgentGroup
from approvals.models import ActorType, ApprovalEvent, ApprovalRequest, Decision, Status
from approvals.policies.evaluation import policy_load
from approvals.policies.models import (
    Budget,
    CircuitBreaker,
    PolicyCondition,
    PolicyEvaluation,
    RuleState,
    Throttle,
)
from approvals.services import approval_request_approve, approval_request_create
from tests.factories import (
    AgentFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    build_submission,
)

pytestmark = pytest.mark.django_db


_keys = iter(range(1_000_000))


def _create(agent, **overrides: Any) -> ApprovalRequest:
    approval, created = approval_request_create(
        agent=agent,
        idempotency_key=f"k{next(_keys)}",
        submission=build_submission(
            **{"confidence": 0.9, "impact": "medium", "reasoning": "", **overrides}
        ),
    )
    assert created
    return approval


def _terminal_events(approval: ApprovalRequest) -> list[ApprovalEvent]:
    return list(ApprovalEvent.objects.filter(approval=approval, from_status=Status.PENDING))


def test_it_holds_by_default_and_records_why() -> None:
    approval = _create(AgentFactory())
    assert approval.status == Status.PENDING
    assert approval.hold_reason == "No policy rule matched: held for review by default."
    evaluation = PolicyEvaluation.objects.get(approval=approval)
    assert (evaluation.outcome, evaluation.rule, evaluation.on_timeout) == ("hold", None, "deny")


def test_it_approves_at_once_through_the_state_machine() -> None:
    rule = PolicyRuleFactory(name="small refunds", outcome="approve", tool_glob="issue_*")
    PolicyCondition.objects.create(rule=rule, path="amount", operator="<", value=5000)
    approval = _create(AgentFactory())

    assert approval.status == Status.APPROVED
    decision = Decision.objects.get(approval=approval)
    assert decision.reviewer is None
    assert decision.expires_at is not None
    assert "small refunds" in decision.note and "arguments.amount = 4900 < 5000" in decision.note
    [event] = _terminal_events(approval)
    assert (event.actor_type, event.to_status) == (ActorType.SYSTEM, Status.APPROVED)
    assert PolicyEvaluation.objects.get(approval=approval).rule == rule


def test_it_denies_at_once_with_the_rules_reason() -> None:
    PolicyRuleFactory(name="no deletes", outcome="deny", tool_glob="delete_*", reason="Ask Ops.")
    approval = _create(AgentFactory(), tool="delete_records")
    assert approval.status == Status.DENIED
    assert approval.decision.note.endswith("Ask Ops.")
    assert len(_terminal_events(approval)) == 1


def test_it_holds_for_the_named_team_quorum_and_time_to_decide() -> None:
    team = TeamFactory(name="finance")
    PolicyRuleFactory(outcome="hold", team=team, required_approvals=2, time_to_decide_seconds=600)
    approval = _create(AgentFactory(), timeout="2h")
    assert approval.status == Status.PENDING
    assert (approval.team, approval.required_approvals, approval.timeout_seconds) == (team, 2, 600)
    assert approval.deadline_at - approval.created_at < timedelta(seconds=601)
    assert "held for review by finance; 2 approvals" in approval.hold_reason
    # A rule shortens the agent's window, never lengthens it.
    assert _create(AgentFactory(), timeout="5m").timeout_seconds == 300


def test_it_ignores_drafts_and_records_shadows_without_effect() -> None:
    PolicyRuleFactory(name="draft approve", state=RuleState.DRAFT, outcome="approve")
    PolicyRuleFactory(name="shadow deny", state=RuleState.SHADOW, outcome="deny", reason="x")
    approval = _create(AgentFactory())
    assert approval.status == Status.PENDING
    evaluation = PolicyEvaluation.objects.get(approval=approval)
    assert [m["rule"] for m in evaluation.shadow_matches] == ["shadow deny"]


def test_it_holds_when_a_stored_rule_is_broken() -> None:
    rule = PolicyRuleFactory(name="bad regex", outcome="approve")
    # Saved around the admin's validation, as a migration or a shell might.
    PolicyCondition.objects.create(rule=rule, path="payment_id", operator="matches", value="([")
    approval = _create(AgentFactory())
    assert approval.status == Status.PENDING
    assert "could not be evaluated" in approval.hold_reason


def test_it_matches_agent_groups_from_the_database() -> None:
    agent, other = AgentFactory(), AgentFactory()
    group = AgentGroup.objects.create(name="support")
    group.agents.add(agent)
    PolicyRuleFactory(agent_group=group, outcome="approve")
    assert _create(agent).status == Status.APPROVED
    assert _create(other).status == Status.PENDING


def test_it_matches_labels_sent_in_context() -> None:
    PolicyRuleFactory(labels=["pii"], outcome="deny", reason="No PII.")
    assert _create(AgentFactory(), context={"labels": ["pii"]}).status == Status.DENIED
    assert _create(AgentFactory(), context={"labels": ["other"]}).status == Status.PENDING


def test_it_holds_once_the_running_total_passes_the_threshold() -> None:
    agent = AgentFactory()
    PolicyRuleFactory(
        position=1,
        name="daily refund ceiling",
        tool_glob="issue_refund",
        total_path="amount",
        total_window_seconds=86_400,
        total_above=10_000,
        outcome="hold",
    )
    PolicyRuleFactory(position=2, outcome="approve", tool_glob="issue_refund")
    assert _create(agent, arguments={"amount": 6000}).status == Status.APPROVED
    held = _create(agent, arguments={"amount": 4500})
    assert held.status == Status.PENDING
    assert "amount totals 10500" in held.hold_reason
    # Another agent has its own total.
    assert _create(AgentFactory(), arguments={"amount": 6000}).status == Status.APPROVED


def test_it_counts_the_arguments_a_reviewer_actually_approved_in_the_total() -> None:
    agent = AgentFactory()
    PolicyRuleFactory(
        position=1,
        tool_glob="issue_refund",
        total_path="amount",
        total_window_seconds=3600,
        total_above=1000,
        outcome="deny",
        reason="Too much today.",
    )
    first = _create(agent, arguments={"amount": 900})
    assert first.status == Status.PENDING  # total 900: no match, default hold
    approval_request_approve(approval=first, reviewer=UserFactory(), arguments={"amount": 50})
    # 50 + 200: not above 1000 (the submitted 900 would have made it 1100).
    assert _create(agent, arguments={"amount": 200}).status == Status.PENDING
    denied = _create(agent, arguments={"amount": 960})  # 50 + 960 > 1000
    assert denied.status == Status.DENIED
    assert "amount totals 1010" in denied.decision.note


def test_it_throttles_auto_approvals_and_releases_after_the_window() -> None:
    agent = AgentFactory()
    PolicyRuleFactory(outcome="approve")
    Throttle.objects.create(
        name="three refunds a minute",
        tool_glob="issue_*",
        max_auto_approvals=3,
        window_seconds=60,
    )
    outcomes = [_create(agent).status for _ in range(4)]
    assert outcomes == [Status.APPROVED] * 3 + [Status.PENDING]
    held = ApprovalRequest.objects.filter(agent=agent, status=Status.PENDING).get()
    assert "Throttle “three refunds a minute”: 3 auto-approvals" in held.hold_reason
    # Other tools and other agents are not throttled.
    assert _create(agent, tool="send_email").status == Status.APPROVED
    assert _create(AgentFactory()).status == Status.APPROVED
    # Once the window has passed, auto-approval resumes.
    ApprovalRequest.objects.filter(agent=agent).update(
        decided_at=timezone.now() - timedelta(seconds=61)
    )
    assert _create(agent).status == Status.APPROVED


def test_it_throttles_high_impact_auto_approvals_only() -> None:
    agent = AgentFactory()
    PolicyRuleFactory(outcome="approve")
    Throttle.objects.create(
        name="one high", impact_at_least="high", max_auto_approvals=1, window_seconds=60
    )
    assert _create(agent, impact="high").status == Status.APPROVED
    assert _create(agent, impact="critical").status == Status.PENDING
    assert _create(agent, impact="low").status == Status.APPROVED


def test_it_returns_the_evaluation_in_the_api_response(agent_client) -> None:
    PolicyRuleFactory(name="shadow", state=RuleState.SHADOW, outcome="approve")
    PolicyRuleFactory(name="finance review", outcome="hold", team=TeamFactory(name="finance"))
    response = agent_client.post(
        "/api/v1/requests",
        {"tool": "issue_refund", "arguments": {"amount": 1}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="api-1",
    )
    assert response.status_code == 201, response.content
    policy = response.json()["policy"]
    assert policy["rule"] == "finance review"
    assert policy["outcome"] == "hold"
    assert policy["team"] == "finance"
    assert policy["required_approvals"] == 1
    assert policy["on_timeout"] == "deny"
    assert policy["decided_by"] == "rule"
    assert "Matched rule “finance review”" in policy["reason"]
    assert [m["rule"] for m in policy["shadow_matches"]] == ["shadow"]
    code = response.json()["id"]
    again = agent_client.get(f"/api/v1/requests/{code}")
    assert again.json()["policy"] == policy


def test_it_returns_an_immediate_decision_in_the_api_response(agent_client) -> None:
    PolicyRuleFactory(name="tiny", outcome="approve")
    response = agent_client.post(
        "/api/v1/requests",
        {"tool": "issue_refund", "arguments": {"amount": 1}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="api-2",
    )
    body = response.json()
    assert (body["status"], body["decision"]["decided_by"]) == ("approved", "system")
    assert body["policy"]["rule"] == "tiny"
    assert body["policy"]["team"] is None


def test_it_applies_rule_edits_to_the_next_request_despite_the_cache() -> None:
    agent = AgentFactory()
    rule = PolicyRuleFactory(outcome="approve")
    condition = PolicyCondition.objects.create(rule=rule, path="amount", operator="<", value=10)
    assert _create(agent, arguments={"amount": 5}).status == Status.APPROVED
    condition.value = 1
    condition.save()
    assert _create(agent, arguments={"amount": 5}).status == Status.PENDING
    condition.delete()
    assert _create(agent, arguments={"amount": 5}).status == Status.APPROVED
    rule.state = RuleState.DRAFT
    rule.save()
    assert _create(agent, arguments={"amount": 5}).status == Status.PENDING


def test_it_applies_guardrail_edits_to_the_next_request_despite_the_cache() -> None:
    """Budgets, throttles and breakers are cached with the rules: every edit must show."""
    agent = AgentFactory()
    PolicyRuleFactory(outcome="approve")
    budget = Budget.objects.create(name="b", scope="agent", ceiling=0, action="deny")
    assert _create(agent).status == Status.DENIED  # nothing spent reaches a ceiling of 0
    budget.ceiling = 100
    budget.save()
    assert _create(agent).status == Status.APPROVED
    budget.delete()
    throttle = Throttle.objects.create(name="t", max_auto_approvals=1, window_seconds=3600)
    assert _create(agent).status == Status.PENDING  # the approval above counts
    throttle.max_auto_approvals = 5
    throttle.save()
    assert _create(agent).status == Status.APPROVED
    throttle.enabled = False
    throttle.save()
    assert not policy_load().interdependent
    breaker = CircuitBreaker.objects.create(name="c", max_denials=3, window_seconds=60)
    assert policy_load().interdependent
    breaker.enabled = False
    breaker.save()
    assert not policy_load().interdependent


def test_it_holds_when_a_stored_rule_has_malformed_labels() -> None:
    PolicyRuleFactory(name="bad labels", outcome="deny", reason="x", labels="pii")
    approval = _create(AgentFactory())
    assert approval.status == Status.PENDING
    assert "labels 'pii' are not a list of text" in approval.hold_reason


def test_it_shows_the_evaluation_to_reviewers_escaped() -> None:
    rule = PolicyRuleFactory(name="notes", outcome="hold")
    PolicyCondition.objects.create(rule=rule, path="note", operator="contains", value="<")
    approval = _create(AgentFactory(), arguments={"note": "<script>alert(1)</script>"})
    client = Client()
    client.force_login(UserFactory(is_staff=True))  # unrouted requests are staff-only
    html = client.get(f"/requests/{approval.code}/").content.decode()
    assert 'id="policy-evaluation"' in html
    assert "by rule <strong>notes</strong>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
