"""AAP "approve with changes" (a denial carrying a suggestion) and its resubmission, judged by the
policy as any new request: approved at once only where the suggestion's approvers may decide it.

Personas as in tests/approvals/test_changed_arguments.py: xena reviews for support (team X),
yuri and yves for finance (team Y). Payments over 1000 go to finance with two approvals, the
rest to support.
"""

import json
from typing import Any

import pytest

from approvals.exceptions import ReviewRejected
from approvals.models import ApprovalRequest, ApprovalVote, Impact, Source, Status
from approvals.policies.models import PolicyCondition
from approvals.reviews import check_approval_request_approve
from approvals.services import Submission, approval_request_create
from tests.agents.aap.conftest import Instance, key
from tests.factories import PolicyRuleFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db) -> dict[str, Any]:
    people: dict[str, Any] = {n: UserFactory(username=n) for n in ("xena", "yuri", "yves")}
    people["support"] = TeamFactory(name="support", members=[people["xena"]])
    people["finance"] = TeamFactory(name="finance", members=[people["yuri"], people["yves"]])
    PolicyRuleFactory(name="payments", position=20, tool_glob="aap_pay", team=people["support"])
    return people


def _large_payments_to_finance(people: dict[str, Any]) -> None:
    rule = PolicyRuleFactory(
        name="large payments",
        position=10,
        tool_glob="aap_pay",
        team=people["finance"],
        required_approvals=2,
    )
    PolicyCondition.objects.create(rule=rule, path="amount", operator=">", value=1000)


def _pay(instance: Instance, amount: int) -> ApprovalRequest:
    response = instance.create(
        {"tool": "aap_pay", "arguments": {"amount": amount}, "timeout": "30m"}
    )
    assert response.status_code == 201, response.content
    return ApprovalRequest.objects.get(code=response.json()["id"])


def test_a_change_another_team_must_approve_is_no_suggestion_to_resubmit(instance, people) -> None:
    _large_payments_to_finance(people)
    original = _pay(instance, 10)
    assert original.team == people["support"]
    outcome = check_approval_request_approve(
        approval=original, reviewer=people["xena"], arguments={"amount": 5000}
    )
    assert not outcome.decided
    original.refresh_from_db()
    # Not denied with a suggestion: still pending, now with finance, the change proposed.
    assert (original.status, original.team, original.required_approvals) == (
        Status.PENDING,
        people["finance"],
        2,
    )
    resubmitted = _pay(instance, 5000)
    assert (resubmitted.status, resubmitted.team, resubmitted.required_approvals) == (
        Status.PENDING,
        people["finance"],
        2,
    )


def test_a_resubmission_the_policy_routes_elsewhere_now_is_held_there(instance, people) -> None:
    original = _pay(instance, 10)
    check_approval_request_approve(
        approval=original, reviewer=people["xena"], arguments={"amount": 5000}
    )
    original.refresh_from_db()
    assert original.status == Status.DENIED and original.decision.suggested_arguments
    # The policy changed before the agent came back: 5000 now needs two of finance.
    _large_payments_to_finance(people)
    resubmitted = _pay(instance, 5000)
    assert (resubmitted.status, resubmitted.team, resubmitted.required_approvals) == (
        Status.PENDING,
        people["finance"],
        2,
    )
    assert resubmitted.approved_as_suggested_on == original  # the suggestion is used up
    assert not ApprovalVote.objects.filter(approval=resubmitted).exists()  # xena is not finance
    assert "counted: none of them" in resubmitted.events.get(kind="suggestion_resubmitted").note
    assert _pay(instance, 5000).events.filter(kind="suggestion_resubmitted").count() == 0


def test_a_staff_suggestion_counts_once_towards_the_new_quorum(instance, people) -> None:
    staff = UserFactory(username="sam", is_staff=True)
    original = _pay(instance, 10)
    check_approval_request_approve(approval=original, reviewer=staff, arguments={"amount": 5000})
    _large_payments_to_finance(people)
    resubmitted = _pay(instance, 5000)
    assert resubmitted.status == Status.PENDING
    assert list(resubmitted.votes.values_list("reviewer__username", flat=True)) == ["sam"]
    done = check_approval_request_approve(approval=resubmitted, reviewer=people["yuri"])
    assert done.decided and (done.votes, done.required) == (2, 2)


def test_a_change_finance_approved_is_approved_at_once_when_resubmitted(instance, people) -> None:
    _large_payments_to_finance(people)
    original = _pay(instance, 10)
    check_approval_request_approve(
        approval=original, reviewer=people["xena"], arguments={"amount": 5000}
    )
    for reviewer in ("yuri", "yves"):
        original.refresh_from_db()  # as finance's page reads it
        check_approval_request_approve(
            approval=original, reviewer=people[reviewer], arguments={"amount": 5000}
        )
    original.refresh_from_db()
    assert original.status == Status.DENIED  # AAP: the approved change is a suggestion
    assert original.decision.suggested_arguments == {"amount": 5000}
    resubmitted = _pay(instance, 5000)
    assert resubmitted.status == Status.APPROVED
    assert resubmitted.approved_as_suggested_on == original


# --- A resubmission may ask for nothing the suggestion's reviewers did not see -------------------
# AAP's wire has no `impact` (every AAP request is medium); the service takes one from any caller
# that creates an AAP request, so the rule is held where the resubmission is approved.


def _pay_declaring(instance: Instance, amount: int, impact: str) -> ApprovalRequest:
    arguments = {"amount": amount}
    approval, _ = approval_request_create(
        agent=instance.agent,
        idempotency_key=key(),
        submission=Submission(
            tool="aap_pay",
            arguments=arguments,
            timeout="30m",
            impact=impact,
            arguments_raw=json.dumps(arguments),
        ),
        source=Source.AAP,
    )
    return approval


def _suggest(original: ApprovalRequest, reviewer: Any, amount: int) -> None:
    check_approval_request_approve(
        approval=original, reviewer=reviewer, arguments={"amount": amount}, confirmed="aap_pay"
    )
    original.refresh_from_db()
    assert original.status == Status.DENIED and original.decision.suggested_arguments


@pytest.mark.parametrize("raised", [Impact.HIGH, Impact.CRITICAL])
def test_a_resubmission_declaring_a_higher_impact_waits_for_a_confirmed_approval(
    instance, people, client, raised
) -> None:
    original = _pay_declaring(instance, 10, Impact.LOW)
    _suggest(original, people["xena"], 50)

    resubmitted = _pay_declaring(instance, 50, raised)

    assert resubmitted.status == Status.PENDING
    assert resubmitted.approved_as_suggested_on == original  # the suggestion is used up
    assert not resubmitted.votes.exists()  # xena approved low impact, not this
    assert f"declares {raised} impact where that request had low" in resubmitted.hold_reason
    client.force_login(people["xena"])
    page = client.get(f"/requests/{resubmitted.code}/").content.decode()
    assert f"declares {raised} impact where that request had low" in page
    # Like any held request of that impact: approving it needs the confirmation.
    with pytest.raises(ReviewRejected) as refused:
        check_approval_request_approve(approval=resubmitted, reviewer=people["xena"])
    assert refused.value.code == "confirmation_required"
    approved = check_approval_request_approve(
        approval=resubmitted, reviewer=people["xena"], confirmed="aap_pay"
    )
    assert approved.decided


@pytest.mark.parametrize("declared", [Impact.HIGH, Impact.MEDIUM])
def test_a_resubmission_within_the_confirmed_impact_is_approved_at_once(
    instance, people, declared
) -> None:
    original = _pay_declaring(instance, 10, Impact.HIGH)
    _suggest(original, people["xena"], 50)
    resubmitted = _pay_declaring(instance, 50, declared)
    assert resubmitted.status == Status.APPROVED
    assert resubmitted.approved_as_suggested_on == original


def test_a_high_impact_suggestion_resubmitted_as_critical_is_held(instance, people) -> None:
    original = _pay_declaring(instance, 10, Impact.HIGH)
    _suggest(original, people["xena"], 50)
    resubmitted = _pay_declaring(instance, 50, Impact.CRITICAL)
    assert resubmitted.status == Status.PENDING
    assert "declares critical impact where that request had high" in resubmitted.hold_reason


def test_a_resubmission_for_another_server_is_held(instance, people) -> None:
    body = {"tool": "aap_pay", "arguments": {"amount": 10}, "timeout": "30m"}
    created = instance.create({**body, "server": {"name": "payments-staging"}})
    original = ApprovalRequest.objects.get(code=created.json()["id"])
    _suggest(original, people["xena"], 50)

    moved = instance.create(
        {**body, "arguments": {"amount": 50}, "server": {"name": "payments-prod"}}
    )
    assert moved.status_code == 201, moved.content
    assert moved.json()["status"] == "pending"
    held = ApprovalRequest.objects.get(code=moved.json()["id"])
    assert not held.votes.exists()
    # The agent's values are kept apart from the console's words (approvals.reasons).
    assert {"agent": '{"name": "payments-prod"}'} in held.hold_reason_parts
    assert "names another server" in held.events.get(kind="suggestion_resubmitted").note


def test_a_resubmission_for_the_same_server_is_approved_at_once(instance, people) -> None:
    body = {"tool": "aap_pay", "arguments": {"amount": 10}, "timeout": "30m"}
    created = instance.create({**body, "server": {"name": "payments", "v": 1}})
    original = ApprovalRequest.objects.get(code=created.json()["id"])
    _suggest(original, people["xena"], 50)
    # Key order and spacing are not a different server.
    same = instance.create(
        {**body, "arguments": {"amount": 50}, "server": {"v": 1, "name": "payments"}}
    )
    assert same.json()["status"] == "approved"


# --- ... nor run anywhere else: the context that changes what the call does must match ---------
# The AAP project's Claude Code hook sends this context; a resubmission is another attempt (another
# call_id, often another session), so those differ, while cwd names where the command runs.

CLAUDE_CODE = {
    "runtime": "claude-code",
    "session_id": "session-1",
    "cwd": "/home/chris/shop",
    "call_id": "toolu_1",
}


def _pay_in(instance: Instance, amount: int, context: dict[str, Any] | None) -> ApprovalRequest:
    body: dict[str, Any] = {"tool": "aap_pay", "arguments": {"amount": amount}, "timeout": "30m"}
    if context is not None:
        body["context"] = context
    response = instance.create(body)
    assert response.status_code == 201, response.content
    return ApprovalRequest.objects.get(code=response.json()["id"])


@pytest.mark.parametrize(
    "changed",
    [
        {"cwd": "/home/chris/shop-prod"},
        {"runtime": "codex"},
        {"repository": "acme/shop"},  # absent from the suggestion's request: differs too
        {"cwd": None},
        {"branch": "main"},  # a key nobody listed counts (fail closed)
    ],
)
def test_a_resubmission_in_another_context_is_held(instance, people, changed) -> None:
    original = _pay_in(instance, 10, CLAUDE_CODE)
    _suggest(original, people["xena"], 50)

    moved = _pay_in(instance, 50, {**CLAUDE_CODE, "call_id": "toolu_2", **changed})

    assert moved.status == Status.PENDING
    assert moved.approved_as_suggested_on == original  # the suggestion is used up
    assert not moved.votes.exists()  # xena approved it where it ran then, not here
    (key,) = changed
    # The agent's key and values are kept apart from the console's words (approvals.reasons).
    assert {"agent": json.dumps(key)} in moved.hold_reason_parts
    note = moved.events.get(kind="suggestion_resubmitted").note
    assert "runs in another context" in note and key not in note


def test_a_resubmission_without_the_context_is_held(instance, people) -> None:
    original = _pay_in(instance, 10, CLAUDE_CODE)
    _suggest(original, people["xena"], 50)
    assert _pay_in(instance, 50, None).status == Status.PENDING


def test_a_resubmission_in_the_same_context_is_approved_at_once(instance, people) -> None:
    original = _pay_in(instance, 10, {**CLAUDE_CODE, "limits": {"max": 1.0, "min": 0}})
    _suggest(original, people["xena"], 50)
    # Key order, spacing and 1.0 against 1 are not another context.
    same = _pay_in(
        instance, 50, {"limits": {"min": 0, "max": 1}, **dict(reversed(CLAUDE_CODE.items()))}
    )
    assert same.status == Status.APPROVED
    assert same.approved_as_suggested_on == original


@pytest.mark.parametrize(
    "benign",
    [
        {"session_id": "session-2", "call_id": "toolu_2"},  # a new session, a new attempt
        {"tool_use_id": "toolu_9", "turn_id": "turn-3"},
        {"sessionId": "s-3", "timestamp": "2026-09-16T12:00:00Z"},
        {"note": "retrying as the reviewer suggested"},
    ],
)
def test_a_resubmission_differing_only_in_who_when_or_why_is_approved_at_once(
    instance, people, benign
) -> None:
    original = _pay_in(instance, 10, CLAUDE_CODE)
    _suggest(original, people["xena"], 50)
    resubmitted = _pay_in(instance, 50, {**CLAUDE_CODE, **benign})
    assert resubmitted.status == Status.APPROVED
    assert resubmitted.approved_as_suggested_on == original


def test_the_decision_page_says_where_a_held_resubmission_runs(instance, people, client) -> None:
    original = _pay_in(instance, 10, CLAUDE_CODE)
    _suggest(original, people["xena"], 50)
    moved = _pay_in(instance, 50, {**CLAUDE_CODE, "cwd": "/home/chris/shop-prod"})
    client.force_login(people["xena"])
    page = client.get(f"/requests/{moved.code}/").content.decode()
    assert "not approved as suggested" in page
    # The directory it was suggested for is only in the hold reason, quoted as the agent's.
    assert 'where that request had <span class="agent-value"' in page
    assert "&quot;/home/chris/shop&quot;</span>" in page
