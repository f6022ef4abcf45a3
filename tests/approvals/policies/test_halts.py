"""Kill switch and circuit breaker: halting cancels and denies, resuming releases, all recorded."""

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from agents.models import AgentHalt
from approvals.models import ActorType, ApprovalEvent, ApprovalRequest, Status
from approvals.policies.halts import NotHalted, agent_halt, agent_resume
from approvals.policies.models import CircuitBreaker
from approvals.services import Submission, approval_request_create, approval_request_deny
from tests.factories import AgentFactory, PolicyRuleFactory, UserFactory

pytestmark = pytest.mark.django_db

_keys = iter(range(1_000_000))


def _create(agent, **overrides: Any) -> ApprovalRequest:
    fields: dict[str, Any] = {"tool": "issue_refund", "arguments": {"amount": 1}, "timeout": "30m"}
    fields.update(overrides)
    approval, _ = approval_request_create(
        agent=agent, idempotency_key=f"h{next(_keys)}", submission=Submission(**fields)
    )
    return approval


def _halter(username: str = "hal"):
    # Staff, so unrouted requests are visible; halting still needs the permission.
    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="halt_agent"))
    return user


def test_it_halts_cancels_pending_denies_new_and_resumes() -> None:
    agent, bystander = AgentFactory(), AgentFactory()
    pending = [_create(agent), _create(agent)]
    untouched = _create(bystander)
    halter = _halter()

    halt = agent_halt(agent=agent, reason="looping on refunds", halted_by=halter)

    for approval in pending:
        approval.refresh_from_db()
        assert approval.status == Status.CANCELLED
        event = ApprovalEvent.objects.get(approval=approval, to_status=Status.CANCELLED)
        assert (event.actor_type, event.actor_user) == (ActorType.REVIEWER, halter)
        assert "looping on refunds" in event.note
    untouched.refresh_from_db()
    assert untouched.status == Status.PENDING

    PolicyRuleFactory(outcome="approve")  # even an approving policy is not consulted
    denied = _create(agent)
    assert denied.status == Status.DENIED
    assert "halted by hal" in denied.decision.note and "looping on refunds" in denied.decision.note

    # Halting again changes nothing: one active halt.
    assert agent_halt(agent=agent, reason="again", halted_by=halter) == halt

    resumed = agent_resume(agent=agent, resumed_by=halter, reason="fixed the loop")
    assert (resumed.resumed_by, resumed.resume_reason) == (halter, "fixed the loop")
    assert _create(agent).status == Status.APPROVED
    with pytest.raises(NotHalted):
        agent_resume(agent=agent, resumed_by=halter, reason="twice")
    assert AgentHalt.objects.filter(agent=agent).count() == 1


def test_it_trips_the_circuit_breaker_after_m_denials_and_resets_on_resume() -> None:
    agent = AgentFactory()
    reviewer = UserFactory()
    CircuitBreaker.objects.create(name="three strikes", max_denials=3, window_seconds=600)
    for _ in range(2):
        approval_request_deny(approval=_create(agent), reviewer=reviewer, reason="No.")
    waiting = _create(agent)
    assert not AgentHalt.objects.filter(agent=agent).exists()

    approval_request_deny(approval=_create(agent), reviewer=reviewer, reason="No.")

    halt = AgentHalt.objects.get(agent=agent, resumed_at__isnull=True)
    assert halt.halted_by is None
    assert "circuit breaker “three strikes”: 3 denials" in halt.reason
    waiting.refresh_from_db()
    assert waiting.status == Status.CANCELLED
    assert _create(agent).status == Status.DENIED

    agent_resume(agent=agent, resumed_by=reviewer, reason="reviewed")
    # Denials from before the resume no longer count: one more does not halt again.
    approval_request_deny(approval=_create(agent), reviewer=reviewer, reason="No.")
    assert not AgentHalt.objects.filter(agent=agent, resumed_at__isnull=True).exists()


def test_it_counts_policy_denials_towards_the_breaker() -> None:
    agent = AgentFactory()
    PolicyRuleFactory(outcome="deny", tool_glob="drop_*", reason="Never.")
    CircuitBreaker.objects.create(name="two", max_denials=2, window_seconds=600)
    _create(agent, tool="drop_table")
    _create(agent, tool="drop_table")
    assert AgentHalt.objects.filter(agent=agent, resumed_at__isnull=True).exists()


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_halts_from_the_console_in_one_click() -> None:
    agent = AgentFactory(name="refund-bot")
    approval = _create(agent)
    client = _client_for(_halter())

    page = client.get(f"/requests/{approval.code}/")
    assert "Halt agent “refund-bot”" in page.content.decode()

    response = client.post(f"/agents/{agent.code}/halt", {"next": f"/requests/{approval.code}/"})
    assert response.status_code == 302
    assert response["Location"] == f"/requests/{approval.code}/"
    halt = AgentHalt.objects.get(agent=agent)
    assert halt.halted_by.username == "hal"
    assert "Halted from the console by hal" in halt.reason
    approval.refresh_from_db()
    assert approval.status == Status.CANCELLED

    listing = client.get("/agents/")
    assert b"Halted" in listing.content and b"Resume" in listing.content
    assert client.post(f"/agents/{agent.code}/resume", {"reason": ""}).status_code == 302
    assert AgentHalt.objects.get(agent=agent).resumed_at is None  # a resume needs a reason
    client.post(f"/agents/{agent.code}/resume", {"reason": "all clear"})
    assert AgentHalt.objects.get(agent=agent).resume_reason == "all clear"


def test_it_refuses_the_kill_switch_without_the_permission() -> None:
    agent = AgentFactory()
    approval = _create(agent)
    client = _client_for(UserFactory(username="viewer"))
    assert b"Halt agent" not in client.get(f"/requests/{approval.code}/").content
    assert client.post(f"/agents/{agent.code}/halt", {"reason": "x"}).status_code == 403
    assert not AgentHalt.objects.exists()
    assert Client().post(f"/agents/{agent.code}/halt").status_code == 302  # to the login page
    assert not AgentHalt.objects.exists()


def test_it_refuses_an_offsite_redirect_after_halting() -> None:
    agent = AgentFactory()
    response = _client_for(_halter()).post(
        f"/agents/{agent.code}/halt", {"next": "https://evil.example/"}
    )
    assert response["Location"] == "/agents/"


def test_it_halts_a_single_run_from_the_console() -> None:
    from agents.services import run_open

    agent = AgentFactory()
    run, _ = run_open(agent=agent, name="nightly")
    other_run, _ = run_open(agent=agent, name="other")
    in_run = _create(agent, run=str(run.code))
    outside = _create(agent, run=str(other_run.code))
    client = _client_for(_halter())
    assert b"Halt only this run" in client.get(f"/requests/{in_run.code}/").content

    response = client.post(f"/runs/{run.code}/halt", {"reason": "runaway loop"})
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == "halted"
    assert run.close_reason == "Halted by hal from the console: runaway loop"
    in_run.refresh_from_db()
    outside.refresh_from_db()
    assert (in_run.status, outside.status) == (Status.DENIED, Status.PENDING)
    assert _create(agent, run=str(run.code)).status == Status.DENIED
    assert not AgentHalt.objects.exists()  # the agent itself keeps running
    viewer = _client_for(UserFactory(username="viewer"))
    assert viewer.post(f"/runs/{other_run.code}/halt").status_code == 403
    other_run.refresh_from_db()
    assert other_run.status == "open"


def test_it_does_not_count_denials_from_a_halted_run_towards_the_breaker() -> None:
    from agents.services import run_open

    agent = AgentFactory()
    CircuitBreaker.objects.create(name="two", max_denials=2, window_seconds=600)
    run, _ = run_open(agent=agent, name="nightly")
    for _ in range(3):
        _create(agent, run=str(run.code))
    _client_for(_halter()).post(f"/runs/{run.code}/halt", {"reason": "stop"})
    assert ApprovalRequest.objects.filter(agent=agent, status=Status.DENIED).count() == 3
    _create(agent, run=str(run.code))  # refused: the run is closed
    approval_request_deny(approval=_create(agent), reviewer=UserFactory(), reason="No.")
    assert not AgentHalt.objects.filter(agent=agent).exists()
    approval_request_deny(approval=_create(agent), reviewer=UserFactory(), reason="No.")
    assert AgentHalt.objects.filter(agent=agent, resumed_at__isnull=True).exists()
