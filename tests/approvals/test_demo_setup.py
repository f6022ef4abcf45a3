"""`manage.py demo_setup`: the demo reviewer, team, escalation chain and policy, idempotently."""

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from agents.models import Agent
from approvals.models import EscalationChain, EscalationStep, Status, Team
from approvals.policies.models import PolicyCondition, PolicyRule
from approvals.services import Submission, approval_request_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def _setup() -> str:
    out = StringIO()
    call_command("demo_setup", stdout=out)
    return out.getvalue()


def _rows() -> dict[str, list[Any]]:
    return {
        "users": list(get_user_model().objects.values_list("pk", "username", "password")),
        "agents": list(Agent.objects.values_list("pk", "name")),
        "teams": list(Team.objects.values_list("pk", "name", "members")),
        "chains": list(EscalationChain.objects.values()),
        "steps": list(EscalationStep.objects.values()),
        "rules": list(PolicyRule.objects.values()),
        "conditions": list(PolicyCondition.objects.values()),
    }


def test_it_leaves_the_same_rows_when_run_twice() -> None:
    _setup()
    first = _rows()
    second_output = _setup()

    assert _rows() == first
    assert len(first["rules"]) == 6 and len(first["steps"]) == 2
    assert first["teams"][0][1:] == ("demo-team", first["users"][0][0])
    assert "demo-team" in second_output


def test_it_keeps_an_admins_edit_of_a_demo_rule() -> None:
    _setup()
    PolicyRule.objects.filter(name="Demo: hold everything else").update(required_approvals=2)

    _setup()

    assert PolicyRule.objects.get(name="Demo: hold everything else").required_approvals == 2


_keys = iter(range(1_000_000))


def _submit(tool: str, arguments: dict[str, Any], **fields: Any):
    approval, _ = approval_request_create(
        agent=Agent.objects.get(name="demo-agent"),
        idempotency_key=f"k{next(_keys)}",
        submission=Submission(tool=tool, arguments=arguments, timeout="10m", **fields),
    )
    return approval


def test_its_policy_decides_the_demo_agents_requests() -> None:
    _setup()
    team = Team.objects.get(name="demo-team")
    chain = EscalationChain.objects.get(name="demo-escalation")
    email = {"to": "ana@example.com", "subject": "Hi", "body": "..."}

    sure_email = _submit("send_email", email, impact="low", confidence=0.95)
    unsure_email = _submit("send_email", email, impact="low", confidence=0.85)
    loud_email = _submit("send_email", email, impact="medium", confidence=0.95)
    big_delete = _submit("delete_records", {"expected_rows": 1200}, impact="critical")
    small_delete = _submit("delete_records", {"expected_rows": 40}, impact="high")
    big_refund = _submit("issue_refund", {"amount": 120000}, impact="high", confidence=0.9)

    assert sure_email.status == Status.APPROVED
    assert big_delete.status == Status.DENIED
    for held in (unsure_email, loud_email, small_delete, big_refund):
        held.refresh_from_db()
        assert (held.status, held.team, held.escalation_chain) == (Status.PENDING, team, chain)
        assert held.required_approvals == 1
    assert "Demo: hold high-impact refunds for the demo team" in big_refund.hold_reason
