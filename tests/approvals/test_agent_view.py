"""The agent's view of a request (approvals.agent_view) is what the API's schema documents.

The plain function answers every agent-facing surface; the DRF output serializer only documents
the shape. These tests hold the two equal for each kind of request an agent can see.
"""

import pytest

from agents.api.outputs import ApprovalRequestOutput
from agents.services import run_open
from approvals.agent_view import approval_request_representation
from approvals.models import ApprovalRequest, Impact
from approvals.services import (
    Submission,
    approval_request_answer,
    approval_request_approve,
    approval_request_create,
    approval_request_deny,
)
from tests.factories import AgentFactory, PolicyRuleFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def _both(approval: ApprovalRequest) -> tuple[dict[str, object], dict[str, object]]:
    fresh = ApprovalRequest.objects.select_related(
        "decision", "run", "policy_evaluation", "team"
    ).get(pk=approval.pk)
    return approval_request_representation(fresh), ApprovalRequestOutput().to_representation(fresh)


def _submitted() -> ApprovalRequest:
    submission = Submission(
        tool="deploy",
        arguments={"service": "api", "replicas": 3},
        timeout="30m",
        summary="Deploy the api",
        reasoning="A fix is ready",
        context={"ticket": "OPS-1"},
        confidence=0.75,
        impact=Impact.HIGH,
        labels=["prod", "deploy"],
        arguments_schema={"type": "object"},
    )
    approval, _ = approval_request_create(
        agent=AgentFactory(),
        idempotency_key="k-1",
        submission=submission,
    )
    return approval


def test_it_matches_the_schema_for_a_held_request_in_a_run() -> None:
    agent = AgentFactory()
    run, _ = run_open(agent=agent, name="nightly")
    team = TeamFactory()
    PolicyRuleFactory(tool_glob="deploy", outcome="hold", team=team, name="deploys need ops")
    approval, _ = approval_request_create(
        agent=agent,
        idempotency_key="k-1",
        submission=Submission(
            tool="deploy",
            arguments={"service": "api"},
            timeout="30m",
            confidence=0.5,
            labels=["prod"],
            run=str(run.code),
        ),
    )
    ours, documented = _both(approval)
    assert ours["run"] == str(run.code) and ours["policy"]["team"] == team.name
    assert ours == documented


def test_it_matches_the_schema_for_a_request_approved_with_changes() -> None:
    approval = _submitted()
    approval_request_approve(
        approval=approval, reviewer=UserFactory(is_staff=True), arguments={"service": "web"}
    )
    ours, documented = _both(approval)
    assert ours["decision"]["arguments_changed"] is True
    assert ours == documented
    assert list(ours) == list(documented)


def test_it_matches_the_schema_for_a_denied_request() -> None:
    approval = _submitted()
    approval_request_deny(approval=approval, reviewer=UserFactory(is_staff=True), reason="no")
    ours, documented = _both(approval)
    assert ours["decision"]["approved_arguments"] is None
    assert ours == documented


def test_it_matches_the_schema_for_a_request_with_an_outcome() -> None:
    from decimal import Decimal

    from approvals.services import OutcomeReport, approval_outcome_report

    approval = approval_request_approve(approval=_submitted(), reviewer=UserFactory(is_staff=True))
    approval_outcome_report(
        approval=approval,
        report=OutcomeReport(
            status="failed", error="card_declined", duration_ms=5, cost=Decimal("1.5")
        ),
    )
    ours, documented = _both(approval)
    assert ours["outcome"]["error"] == "card_declined" and ours["outcome"]["currency"] is None
    assert list(ours)[-1] == "outcome"
    assert ours == documented


def test_it_matches_the_schema_for_an_answered_question() -> None:
    question, _ = approval_request_create(
        agent=AgentFactory(),
        idempotency_key="q-1",
        submission=Submission(
            kind="question",
            tool="ask_human",
            arguments={},
            timeout="30m",
            summary="Which region?",
            answer_schema={"type": "object", "properties": {"region": {"type": "string"}}},
        ),
    )
    approval_request_answer(
        approval=question, reviewer=UserFactory(), answer={"region": "eu-west-1"}
    )
    ours, documented = _both(question)
    assert ours["kind"] == "question"
    assert ours["decision"]["answer"] == {"region": "eu-west-1"}
    assert ours == documented
    assert list(ours) == list(documented)
    ours_decision, documented_decision = ours["decision"], documented["decision"]
    assert isinstance(ours_decision, dict) and isinstance(documented_decision, dict)
    assert list(ours_decision) == list(documented_decision)
