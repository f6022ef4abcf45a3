"""AAP "approve with changes" (a denial carrying a suggestion) and its resubmission, judged by the
policy as any new request: approved at once only where the suggestion's approvers may decide it.

Personas as in tests/approvals/test_changed_arguments.py: xena reviews for support (team X),
yuri and yves for finance (team Y). Payments over 1000 go to finance with two approvals, the
rest to support.
"""

from typing import Any

import pytest

from approvals.models import ApprovalRequest, ApprovalVote, Status
from approvals.policies.models import PolicyCondition
from approvals.reviews import check_approval_request_approve
from tests.agents.aap.conftest import Instance
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
