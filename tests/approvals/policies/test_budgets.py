"""Budgets: cost ceilings per run and per agent per day, from runs' trace events."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from agents.models import Run, TraceEvent
from agents.services import NewTraceEvent, run_events_append, run_open
from approvals.models import ApprovalRequest, Status
from approvals.policies.models import Budget
from approvals.services import Submission, approval_request_create
from tests.factories import AgentFactory, PolicyRuleFactory

pytestmark = pytest.mark.django_db

_keys = iter(range(1_000_000))


def _create(agent, run: Run | None = None, **overrides: Any) -> ApprovalRequest:
    fields: dict[str, Any] = {"tool": "issue_refund", "arguments": {"amount": 1}, "timeout": "30m"}
    fields.update(overrides)
    if run is not None:
        fields["run"] = str(run.code)
    approval, _ = approval_request_create(
        agent=agent, idempotency_key=f"b{next(_keys)}", submission=Submission(**fields)
    )
    return approval


def _spend(run: Run, cost: str) -> None:
    run_events_append(run=run, events=[NewTraceEvent(type="llm_call", data={}, cost=Decimal(cost))])


def _open(agent, **fields: Any) -> Run:
    run, _ = run_open(agent=agent, name=fields.pop("name", "triage"), **fields)
    return run


def test_it_holds_a_request_once_the_run_reaches_its_ceiling_and_releases_on_a_new_run() -> None:
    agent = AgentFactory()
    PolicyRuleFactory(outcome="approve")
    Budget.objects.create(name="run cap", scope="run", ceiling=Decimal("1.00"))
    run = _open(agent)
    _spend(run, "0.60")
    assert _create(agent, run).status == Status.APPROVED
    _spend(run, "0.40")
    held = _create(agent, run)
    assert held.status == Status.PENDING
    assert 'Budget “run cap” reached: the run "triage" has cost 1, the ceiling is 1.' in (
        held.hold_reason
    )
    # Another run of the same agent starts from zero; requests outside runs have no run cost.
    assert _create(agent, _open(agent, name="next")).status == Status.APPROVED
    assert _create(agent).status == Status.APPROVED


def test_it_denies_past_the_agent_daily_ceiling_when_configured() -> None:
    agent, other = AgentFactory(), AgentFactory()
    PolicyRuleFactory(outcome="approve")
    Budget.objects.create(name="daily", scope="agent_day", ceiling=Decimal("5"), action="deny")
    _spend(_open(agent, name="a"), "3")
    _spend(_open(agent, name="b"), "2.5")
    _spend(_open(other, name="c"), "1")
    denied = _create(agent)
    assert denied.status == Status.DENIED
    assert "the agent's runs have cost today (UTC) 5.5, the ceiling is 5. Denied." in (
        denied.decision.note
    )
    assert _create(other).status == Status.APPROVED
    # Yesterday's costs do not count: the ceiling releases at midnight UTC.
    TraceEvent.objects.filter(run__agent=agent).update(
        recorded_at=timezone.now() - timedelta(days=1, hours=1)
    )
    assert _create(agent).status == Status.APPROVED


def test_it_honours_the_runs_own_budget_by_holding() -> None:
    agent = AgentFactory()
    PolicyRuleFactory(outcome="approve")
    run = _open(agent, budget=Decimal("0.5"))
    _spend(run, "0.75")
    held = _create(agent, run)
    assert held.status == Status.PENDING
    assert "The run's own budget of 0.5 is exceeded (cost 0.75)." in held.hold_reason


def test_it_never_approves_on_a_budget_and_ignores_disabled_ones() -> None:
    agent = AgentFactory()
    Budget.objects.create(name="off", scope="agent_day", ceiling=Decimal("0"), enabled=False)
    Budget.objects.create(name="hold", scope="agent_day", ceiling=Decimal("100"))
    assert _create(agent).status == Status.PENDING  # default hold stays a hold
    PolicyRuleFactory(outcome="deny", reason="No.", tool_glob="drop_*")
    _spend(_open(agent), "500")
    assert _create(agent, tool="drop_x").status == Status.DENIED  # a deny stays a deny
