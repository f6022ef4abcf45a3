"""Policies name the chains: a rule's chain rides on the request it holds, and its steps fire."""

from datetime import timedelta
from typing import Any

import pytest

from approvals.escalations import escalations_fire_due
from approvals.models import (
    ApprovalRequest,
    Channel,
    EscalationChain,
    EscalationFiring,
    EscalationStep,
    Notification,
    Status,
)
from approvals.notifications import REASON_ROUTED, escalation_reason
from approvals.services import Submission, approval_request_create
from tests.factories import AgentFactory, PolicyRuleFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

_keys = iter(range(1_000_000))


def _create(**overrides: Any) -> ApprovalRequest:
    fields: dict[str, Any] = {
        "tool": "issue_refund",
        "arguments": {"payment_id": "pay_1", "amount": 4900},
        "timeout": "30m",
        "confidence": 0.9,
        "impact": "high",
        **overrides,
    }
    approval, created = approval_request_create(
        agent=AgentFactory(), idempotency_key=f"k{next(_keys)}", submission=Submission(**fields)
    )
    assert created
    return approval


@pytest.fixture
def refunds_chain() -> EscalationChain:
    chain = EscalationChain.objects.create(name="refunds")
    managers = TeamFactory(name="refund-managers", members=[UserFactory(username="maria")])
    EscalationStep.objects.create(
        chain=chain, position=1, after_minutes=5, notify_team=managers, notify_slack=False
    )
    EscalationStep.objects.create(chain=chain, position=2, after_minutes=20, notify_team=managers)
    return chain


def test_it_carries_the_rules_chain_and_fires_its_first_step_on_time(refunds_chain) -> None:
    payments = TeamFactory(name="payments", members=[UserFactory(username="alice")])
    PolicyRuleFactory(
        name="hold refunds",
        outcome="hold",
        tool_glob="issue_refund",
        team=payments,
        escalation_chain=refunds_chain,
    )

    approval = _create()

    assert approval.status == Status.PENDING
    approval.refresh_from_db()
    assert (approval.team, approval.escalation_chain) == (payments, refunds_chain)
    start = approval.created_at
    assert escalations_fire_due(now=start + timedelta(minutes=4, seconds=59)) == 0
    assert escalations_fire_due(now=start + timedelta(minutes=5)) == 1
    assert escalations_fire_due(now=start + timedelta(minutes=6)) == 0
    firing = EscalationFiring.objects.get(approval=approval)
    assert firing.step.position == 1
    maria_hears = Notification.objects.filter(
        approval=approval, recipient__username="maria", reason=escalation_reason(firing.step_id)
    )
    assert set(maria_hears.values_list("channel", flat=True)) == {Channel.EMAIL, Channel.CONSOLE}


def test_the_decision_page_names_the_chain(client, refunds_chain) -> None:
    alice = UserFactory(username="alice")
    payments = TeamFactory(name="payments", members=[alice])
    PolicyRuleFactory(name="hold", outcome="hold", team=payments, escalation_chain=refunds_chain)
    approval = _create()
    client.force_login(alice)

    html = client.get(f"/requests/{approval.code}/").content.decode()

    assert '<strong id="escalation-chain">refunds</strong>' in html


def test_it_tells_the_rules_team_when_it_holds_the_request(refunds_chain) -> None:
    payments = TeamFactory(name="payments", members=[UserFactory(username="alice")])
    PolicyRuleFactory(
        name="hold refunds", outcome="hold", team=payments, escalation_chain=refunds_chain
    )

    approval = _create()

    routed = Notification.objects.filter(approval=approval, reason=REASON_ROUTED)
    assert set(routed.values_list("recipient__username", flat=True)) == {"alice"}
    # The chain's people hear nothing until its first step is due.
    assert not Notification.objects.filter(approval=approval, recipient__username="maria").exists()


def test_it_leaves_the_default_chain_to_apply_when_the_rule_names_none(
    refunds_chain, settings
) -> None:
    settings.ESCALATION_DEFAULT_CHAIN = "refunds"
    PolicyRuleFactory(name="hold refunds", outcome="hold", tool_glob="issue_refund")

    approval = _create()

    assert approval.escalation_chain is None
    assert escalations_fire_due(now=approval.created_at + timedelta(minutes=5)) == 1


def test_it_names_no_chain_for_a_request_the_policy_decided(refunds_chain) -> None:
    PolicyRuleFactory(name="approve refunds", outcome="approve", escalation_chain=refunds_chain)

    approval = _create()

    assert approval.status == Status.APPROVED
    assert approval.escalation_chain is None
