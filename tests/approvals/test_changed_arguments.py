"""Approve with changes: changed arguments are judged by the policy as a new request with them.

Personas: xena and xavier review for support (team X), yuri and yves for finance (team Y). The
policy: deleting more than 1000 rows is denied; deletions go to support; payments over 1000 go
to finance with two approvals, over 100 to support with two, the rest to support.
"""

from functools import partial
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from approvals.exceptions import ApprovalNotVisible, ReviewRejected, TransitionConflict
from approvals.models import ApprovalEvent, ApprovalRequest, ApprovalVote, Decision, Status
from approvals.policies.models import Outcome, PolicyCondition, Throttle
from approvals.reviews import check_approval_request_approve, check_approval_request_escalate
from approvals.services import Submission, approval_request_approve, approval_request_create
from tests.factories import (
    AgentFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    reviewer_api_token,
)
from tests.races import raised, run_at_once

pytestmark = pytest.mark.django_db


class World:
    def __init__(self) -> None:
        self.xena, self.xavier = UserFactory(username="xena"), UserFactory(username="xavier")
        self.yuri, self.yves = UserFactory(username="yuri"), UserFactory(username="yves")
        self.support = TeamFactory(name="support", members=[self.xena, self.xavier])
        self.finance = TeamFactory(name="finance", members=[self.yuri, self.yves])
        self.agent = AgentFactory(name="ops-bot")
        self._keys = iter(range(1_000_000))
        self.rule(
            "mass deletes",
            tool_glob="delete_records",
            outcome=Outcome.DENY,
            reason="Never more than 1000 rows at once.",
            conditions=[("expected_rows", ">", 1000)],
        )
        self.rule("deletions", tool_glob="delete_records", team=self.support)
        self.rule(
            "large payments",
            tool_glob="pay",
            team=self.finance,
            required_approvals=2,
            conditions=[("amount", ">", 1000)],
        )
        self.rule(
            "mid payments",
            tool_glob="pay",
            team=self.support,
            required_approvals=2,
            conditions=[("amount", ">", 100)],
        )
        self.rule("payments", tool_glob="pay", team=self.support)

    def rule(self, name: str, *, conditions: Any = (), **fields: Any) -> Any:
        rule = PolicyRuleFactory(name=name, **fields)
        for path, operator, value in conditions:
            PolicyCondition.objects.create(rule=rule, path=path, operator=operator, value=value)
        return rule

    def ask(self, tool: str, **arguments: Any) -> ApprovalRequest:
        approval, _ = approval_request_create(
            agent=self.agent,
            idempotency_key=f"k{next(self._keys)}",
            submission=Submission(tool=tool, arguments=arguments, timeout="30m"),
        )
        return approval


@pytest.fixture
def world(db) -> World:
    return World()


def _api(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(user)}")
    return client


def _nothing_recorded(approval: ApprovalRequest) -> None:
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert not ApprovalVote.objects.filter(approval=approval).exists()
    assert not Decision.objects.filter(approval=approval).exists()
    assert list(approval.events.values_list("kind", flat=True)) == ["submitted"]


class TestDenied:
    def test_it_refuses_changed_arguments_the_policy_denies_naming_the_rule(self, world) -> None:
        approval = world.ask("delete_records", expected_rows=10)
        assert (approval.status, approval.team) == (Status.PENDING, world.support)
        with pytest.raises(ReviewRejected) as refused:
            check_approval_request_approve(
                approval=approval, reviewer=world.xena, arguments={"expected_rows": 50000}
            )
        assert refused.value.code == "policy_denies" and refused.value.param == "arguments"
        assert "“mass deletes”" in str(refused.value)
        _nothing_recorded(approval)

    def test_it_says_so_on_the_page_and_records_nothing(self, world, client) -> None:
        approval = world.ask("delete_records", expected_rows=10)
        client.force_login(world.xena)
        response = client.post(
            reverse("approvals:approve-changes", args=[approval.code]),
            {"arguments": '{"expected_rows": 50000}', "confirmed": approval.tool},
            HTTP_HX_REQUEST="true",
        )
        assert response.status_code == 400
        html = response.content.decode()
        assert "the policy denies these arguments" in html and "mass deletes" in html
        _nothing_recorded(approval)

    def test_it_answers_the_api_with_the_rule(self, world) -> None:
        approval = world.ask("delete_records", expected_rows=10)
        response = _api(world.xena).post(
            reverse("api-v1:reviewer-request-approve", args=[approval.code]),
            {"arguments": {"expected_rows": 50000}},
            format="json",
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("policy_denies", "arguments")
        assert "mass deletes" in error["message"]
        _nothing_recorded(approval)

    def test_it_refuses_the_service_call_too(self, world) -> None:
        approval = world.ask("delete_records", expected_rows=10)
        with pytest.raises(ReviewRejected):
            approval_request_approve(
                approval=approval, reviewer=world.xena, arguments={"expected_rows": 5000}
            )
        _nothing_recorded(approval)

    def test_it_counts_the_changed_value_in_a_running_total(self, world) -> None:
        world.rule(
            "daily payout",
            position=1,
            tool_glob="pay",
            outcome=Outcome.DENY,
            reason="At most 1000 a day.",
            total_path="amount",
            total_window_seconds=86400,
            total_above=1000,
        )
        paid = world.ask("pay", amount=90)
        check_approval_request_approve(approval=paid, reviewer=world.xena)
        approval = world.ask("pay", amount=10)  # 100 today with this one: held for support
        with pytest.raises(ReviewRejected) as refused:
            check_approval_request_approve(
                approval=approval, reviewer=world.xena, arguments={"amount": 950}
            )
        assert "daily payout" in str(refused.value)
        decided = check_approval_request_approve(
            approval=approval, reviewer=world.xena, arguments={"amount": 50}
        )
        assert decided.decided
        assert decided.approval.decision.approved_arguments == {"amount": 50}


class TestRouting:
    def test_it_approves_a_change_the_policy_routes_to_the_same_team_and_quorum(
        self, world
    ) -> None:
        approval = world.ask("pay", amount=10)
        outcome = check_approval_request_approve(
            approval=approval, reviewer=world.xena, arguments={"amount": 20}
        )
        assert outcome.decided and outcome.proposal is None
        assert outcome.approval.decision.approved_arguments == {"amount": 20}

    def test_it_lets_a_reviewer_approve_what_only_a_throttle_would_hold(self, world) -> None:
        # A new request for 5 would be approved by the rule, then held by the throttle, which
        # limits automatic approvals: a reviewer approving is what the throttle asks for.
        world.rule("tiny payments", position=1, tool_glob="pay", outcome=Outcome.APPROVE,
                   conditions=[("amount", "<=", 5)])  # fmt: skip
        Throttle.objects.create(name="no auto pay", tool_glob="pay", max_auto_approvals=0,
                                window_seconds=3600)  # fmt: skip
        approval = world.ask("pay", amount=50)
        outcome = check_approval_request_approve(
            approval=approval, reviewer=world.xena, arguments={"amount": 5}
        )
        assert outcome.decided

    def test_it_moves_a_change_that_needs_another_team_and_quorum(self, world, client) -> None:
        approval = world.ask("pay", amount=10)
        outcome = check_approval_request_approve(
            approval=approval, reviewer=world.xena, arguments={"amount": 5000}
        )
        assert not outcome.decided and outcome.proposal is not None and outcome.moved
        approval.refresh_from_db()
        assert (approval.status, approval.team, approval.required_approvals) == (
            Status.PENDING,
            world.finance,
            2,
        )
        kinds = list(approval.events.values_list("kind", flat=True))
        assert kinds == ["submitted", "change_proposed", "approval_vote"]
        assert "large payments" in approval.events.get(kind="change_proposed").note

        # Support no longer sees it; finance sees the proposal, in the API and on the page.
        url = reverse("api-v1:reviewer-request-detail", args=[approval.code])
        assert _api(world.xena).get(url).status_code == 404
        body = _api(world.yuri).get(url).json()
        assert (body["team"], body["required_approvals"]) == ("finance", 2)
        assert body["proposed_changes"] == [
            {"arguments": {"amount": 5000}, "approved_by": ["xena"]}
        ]
        client.force_login(world.yuri)
        html = client.get(reverse("approvals:detail", args=[approval.code])).content.decode()
        assert 'id="proposal-1"' in html and "&quot;amount&quot;: 5000" in html
        assert "Review this change" in html

        # Xena's approval does not count for finance: two of finance must approve the change.
        first = check_approval_request_approve(
            approval=approval, reviewer=world.yuri, arguments={"amount": 5000}
        )
        assert (first.decided, first.votes, first.required) == (False, 1, 2)
        second = check_approval_request_approve(
            approval=approval, reviewer=world.yves, arguments={"amount": 5000}
        )
        assert second.decided
        assert second.approval.decision.approved_arguments == {"amount": 5000}

    def test_it_tells_the_editor_where_the_change_went(self, world, client) -> None:
        approval = world.ask("pay", amount=10)
        client.force_login(world.xena)
        response = client.post(
            reverse("approvals:approve-changes", args=[approval.code]),
            {"arguments": '{"amount": 5000}', "confirmed": approval.tool},
            HTTP_HX_REQUEST="true",
        )
        assert response.status_code == 200
        html = response.content.decode()
        assert "Not approved yet" in html and "finance, 2 approvals" in html
        assert "It has left your queue." in html
        response = _api(world.xavier).post(
            reverse("api-v1:reviewer-request-approve", args=[world.ask("pay", amount=7).code]),
            {"arguments": {"amount": 3000}},
            format="json",
        )
        assert response.status_code == 200
        assert response.json()["proposal"]["team"] == "finance"
        assert response.json()["status"] == "pending"

    def test_it_raises_the_quorum_for_a_change_that_needs_more_approvals(self, world) -> None:
        approval = world.ask("pay", amount=10)
        stale = ApprovalRequest.objects.get(pk=approval.pk)  # xavier's page, read before
        outcome = check_approval_request_approve(
            approval=approval, reviewer=world.xena, arguments={"amount": 500}
        )
        assert (outcome.decided, outcome.votes, outcome.required, outcome.moved) == (
            False,
            1,
            2,
            False,
        )
        # Xavier's approval, counted against the quorum of one he read, must not land.
        with pytest.raises(ReviewRejected) as raced:
            check_approval_request_approve(approval=stale, reviewer=world.xavier)
        assert raced.value.code == "quorum_changed"
        approval.refresh_from_db()
        assert approval.status == Status.PENDING and approval.required_approvals == 2
        # Read again, his approval of the change completes it.
        done = check_approval_request_approve(
            approval=approval, reviewer=world.xavier, arguments={"amount": 500}
        )
        assert done.decided

    def test_it_keeps_one_outcome_when_an_approval_races_a_proposal(self, world) -> None:
        approval = world.ask("pay", amount=10)
        stale = ApprovalRequest.objects.get(pk=approval.pk)
        check_approval_request_approve(
            approval=approval, reviewer=world.xena, arguments={"amount": 5000}
        )
        with pytest.raises(ApprovalNotVisible):  # it went to finance meanwhile
            check_approval_request_approve(approval=stale, reviewer=world.xavier)
        other = world.ask("pay", amount=10)
        stale = ApprovalRequest.objects.get(pk=other.pk)
        check_approval_request_approve(approval=other, reviewer=world.xavier)
        with pytest.raises(TransitionConflict):
            check_approval_request_approve(
                approval=stale, reviewer=world.xena, arguments={"amount": 5000}
            )
        other.refresh_from_db()
        assert other.status == Status.APPROVED and other.decision.approved_arguments is None
        assert not ApprovalVote.objects.filter(approval=other).exists()

    def test_it_counts_no_vote_cast_before_the_request_moved_to_another_team(self, world) -> None:
        approval = world.ask("pay", amount=500)  # support, two approvals
        check_approval_request_approve(approval=approval, reviewer=world.xena)
        approval = check_approval_request_escalate(
            approval=approval, reviewer=world.xavier, team=world.finance, note="Finance, please."
        )
        first = check_approval_request_approve(approval=approval, reviewer=world.yuri)
        assert (first.decided, first.votes) == (False, 1)  # xena's support vote does not count
        assert check_approval_request_approve(approval=approval, reviewer=world.yves).decided

    def test_it_lets_staff_approve_a_change_routed_to_any_team_alone_when_one_suffices(
        self, world
    ) -> None:
        world.rule("refunds", position=1, tool_glob="pay", team=world.finance,
                   conditions=[("amount", "=", 42)])  # fmt: skip
        approval = world.ask("pay", amount=10)
        staff = UserFactory(username="sam", is_staff=True)
        outcome = check_approval_request_approve(
            approval=approval, reviewer=staff, arguments={"amount": 42}
        )
        assert outcome.decided
        assert ApprovalEvent.objects.filter(approval=approval, kind="change_proposed").count() == 0


@pytest.mark.django_db(transaction=True)
def test_it_keeps_one_outcome_when_two_reviewers_act_at_once() -> None:
    """Xena proposes a change finance must approve while xavier approves as submitted, for real
    at the same time (PostgreSQL: threads on their own connections; SQLite serializes them)."""
    world = World()
    for _ in range(5):
        approval = world.ask("pay", amount=10)
        results = run_at_once(
            [
                partial(
                    check_approval_request_approve,
                    approval=approval,
                    reviewer=world.xena,
                    arguments={"amount": 5000},
                ),
                partial(
                    check_approval_request_approve,
                    approval=approval,
                    reviewer=world.xavier,
                    arguments=None,
                ),
            ],
            timeout=30,
        )
        assert not raised(results, TransitionConflict, ApprovalNotVisible), results
        outcomes = [
            type(result).__name__
            if isinstance(result, BaseException)
            else "approved"
            if result.decided
            else "proposed"
            for result in results
        ]
        approval.refresh_from_db()
        if approval.status == Status.APPROVED:  # xavier first: the proposal lost
            assert sorted(outcomes) == ["TransitionConflict", "approved"], outcomes
            assert approval.decision.approved_arguments is None
            assert approval.team == world.support
        else:  # xena first: the request left support before xavier's approval could land
            assert sorted(outcomes) == ["ApprovalNotVisible", "proposed"], outcomes
            assert (approval.status, approval.team) == (Status.PENDING, world.finance)
        assert Decision.objects.filter(approval=approval).count() <= 1
