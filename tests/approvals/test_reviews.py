"""Reviewer actions besides the transition itself: quorum votes, escalation, comments, claims."""

from datetime import timedelta
from functools import partial

import pytest
from django.utils import timezone

from approvals.exceptions import (
    ApprovalNotVisible,
    ClaimConflict,
    ReviewRejected,
    TransitionConflict,
)
from approvals.models import ApprovalEvent, ApprovalVote, Decision, Status
from approvals.reviews import (
    approval_arguments_parse,
    approval_claim_release,
    approval_claim_take,
    check_approval_request_approve,
    check_approval_request_comment,
    check_approval_request_deny,
    check_approval_request_escalate,
)
from tests.factories import ApprovalRequestFactory, PolicyRuleFactory, TeamFactory, UserFactory
from tests.races import raised, run_at_once


@pytest.fixture
def team(db):
    payments = TeamFactory(
        name="payments", members=[UserFactory(username=n) for n in ("ann", "ben", "cat")]
    )
    # Payments reviews refunds, so a changed refund stays with payments (a real routing rule).
    PolicyRuleFactory(tool_glob="issue_refund", team=payments)
    return payments


def _member(team, name):
    return team.members.get(username=name)


@pytest.mark.django_db
class TestQuorum:
    def test_it_stays_pending_until_enough_distinct_reviewers_approve(self, team) -> None:
        approval = ApprovalRequestFactory(team=team, required_approvals=2)
        first = check_approval_request_approve(
            approval=approval, reviewer=_member(team, "ann"), confirmed=approval.tool
        )
        assert (first.decided, first.votes, first.required) == (False, 1, 2)
        approval.refresh_from_db()
        assert approval.status == Status.PENDING
        second = check_approval_request_approve(
            approval=approval, reviewer=_member(team, "ben"), confirmed=approval.tool
        )
        assert second.decided
        approval.refresh_from_db()
        assert approval.status == Status.APPROVED
        assert approval.decision.reviewer == _member(team, "ben")
        kinds = list(approval.events.values_list("kind", flat=True))
        assert kinds == ["approval_vote", "approved"]

    def test_it_counts_one_vote_per_reviewer(self, team) -> None:
        approval = ApprovalRequestFactory(team=team, required_approvals=2)
        check_approval_request_approve(
            approval=approval, reviewer=_member(team, "ann"), confirmed=approval.tool
        )
        with pytest.raises(ReviewRejected) as twice:
            check_approval_request_approve(
                approval=approval, reviewer=_member(team, "ann"), confirmed=approval.tool
            )
        assert twice.value.code == "already_voted"
        approval.refresh_from_db()
        assert approval.status == Status.PENDING
        assert ApprovalVote.objects.filter(approval=approval).count() == 1

    def test_it_ends_with_one_denial_whatever_the_votes(self, team) -> None:
        approval = ApprovalRequestFactory(team=team, required_approvals=3)
        check_approval_request_approve(
            approval=approval, reviewer=_member(team, "ann"), confirmed=approval.tool
        )
        check_approval_request_approve(
            approval=approval, reviewer=_member(team, "ben"), confirmed=approval.tool
        )
        check_approval_request_deny(
            approval=approval, reviewer=_member(team, "cat"), reason="Wrong account."
        )
        approval.refresh_from_db()
        assert approval.status == Status.DENIED
        with pytest.raises(TransitionConflict):
            check_approval_request_approve(
                approval=approval, reviewer=UserFactory(is_staff=True), confirmed=approval.tool
            )

    def test_it_needs_the_quorum_to_agree_on_the_same_arguments(self, team) -> None:
        approval = ApprovalRequestFactory(team=team, required_approvals=2, arguments={"amount": 10})
        check_approval_request_approve(
            approval=approval,
            reviewer=_member(team, "ann"),
            arguments={"amount": 5},
            confirmed=approval.tool,
        )
        plain = check_approval_request_approve(
            approval=approval, reviewer=_member(team, "ben"), confirmed=approval.tool
        )
        assert not plain.decided  # ann approved other arguments than ben
        changed = check_approval_request_approve(
            approval=approval,
            reviewer=_member(team, "cat"),
            arguments={"amount": 5},
            confirmed=approval.tool,
        )
        assert changed.decided
        approval.refresh_from_db()
        assert approval.decision.approved_arguments == {"amount": 5}

    @pytest.mark.django_db(transaction=True)
    def test_it_decides_exactly_once_when_the_last_votes_race(self) -> None:
        for _ in range(6):
            voters = [UserFactory() for _ in range(3)]
            team = TeamFactory(members=voters)
            approval = ApprovalRequestFactory(team=team, required_approvals=2)
            check_approval_request_approve(
                approval=approval, reviewer=voters[0], confirmed=approval.tool
            )
            results = run_at_once(
                [
                    partial(
                        check_approval_request_approve,
                        approval=approval,
                        reviewer=voter,
                        confirmed=approval.tool,
                    )
                    for voter in voters[1:]
                ],
                timeout=30,
            )
            assert not raised(results, TransitionConflict), results
            outcomes = [
                f"conflict:{result.current_status}"
                if isinstance(result, TransitionConflict)
                else "decided"
                if result.decided
                else "pending"
                for result in results
            ]
            approval.refresh_from_db()
            assert approval.status == Status.APPROVED
            assert sorted(outcomes) == ["conflict:approved", "decided"], outcomes
            assert Decision.objects.filter(approval=approval).count() == 1
            assert approval.events.filter(kind="approved").count() == 1


@pytest.mark.django_db
class TestArguments:
    def test_it_names_the_json_error(self, team) -> None:
        approval = ApprovalRequestFactory(team=team)
        with pytest.raises(ReviewRejected) as bad:
            approval_arguments_parse(approval=approval, text='{"amount": }')
        assert bad.value.param == "arguments"
        assert "Not valid JSON" in str(bad.value)

    def test_it_wants_an_object(self, team) -> None:
        approval = ApprovalRequestFactory(team=team)
        with pytest.raises(ReviewRejected):
            approval_arguments_parse(approval=approval, text="[1, 2]")

    def test_it_counts_unchanged_arguments_as_a_plain_approval(self, team) -> None:
        approval = ApprovalRequestFactory(team=team, arguments={"amount": 10})
        check_approval_request_approve(
            approval=approval,
            reviewer=_member(team, "ann"),
            arguments={"amount": 10},
            confirmed=approval.tool,
        )
        approval.refresh_from_db()
        assert approval.decision.approved_arguments is None


@pytest.mark.django_db
class TestEscalation:
    def test_it_hands_the_request_to_another_team_with_a_note(self, team) -> None:
        security = TeamFactory(name="security")
        approval = ApprovalRequestFactory(team=team)
        approval_claim_take(approval=approval, reviewer=_member(team, "ann"))
        check_approval_request_escalate(
            approval=approval,
            reviewer=_member(team, "ann"),
            team=security,
            note="Looks like fraud.",
        )
        approval.refresh_from_db()
        assert approval.team == security and approval.status == Status.PENDING
        event = approval.events.get(kind="escalated")
        assert event.note == "To security: Looks like fraud."
        assert not hasattr(approval, "claim") or approval.claim is None

    def test_it_requires_a_note(self, team) -> None:
        approval = ApprovalRequestFactory(team=team)
        with pytest.raises(ReviewRejected):
            check_approval_request_escalate(
                approval=approval, reviewer=_member(team, "ann"), team=TeamFactory(), note=" "
            )
        approval.refresh_from_db()
        assert approval.team == team

    def test_it_refuses_after_a_decision(self, team) -> None:
        approval = ApprovalRequestFactory(team=team)
        check_approval_request_deny(approval=approval, reviewer=_member(team, "ann"), reason="No")
        with pytest.raises(TransitionConflict):
            check_approval_request_escalate(
                approval=approval, reviewer=_member(team, "ben"), team=TeamFactory(), note="x"
            )


@pytest.mark.django_db
class TestCommentsAndClaims:
    def test_it_records_a_comment_without_deciding(self, team) -> None:
        approval = ApprovalRequestFactory(team=team)
        check_approval_request_comment(
            approval=approval, reviewer=_member(team, "ann"), note="Checking"
        )
        approval.refresh_from_db()
        assert approval.status == Status.PENDING
        assert approval.events.get(kind="commented").note == "Checking"

    def test_it_refuses_an_outsider(self, team) -> None:
        approval = ApprovalRequestFactory(team=team)
        with pytest.raises(ApprovalNotVisible):
            check_approval_request_comment(approval=approval, reviewer=UserFactory(), note="hi")
        assert not ApprovalEvent.objects.filter(approval=approval).exists()

    def test_it_needs_take_over_for_someone_elses_live_claim(self, team) -> None:
        approval = ApprovalRequestFactory(team=team)
        approval_claim_take(approval=approval, reviewer=_member(team, "ann"))
        with pytest.raises(ClaimConflict) as held:
            approval_claim_take(approval=approval, reviewer=_member(team, "ben"))
        assert held.value.holder == "ann"
        claim = approval_claim_take(
            approval=approval, reviewer=_member(team, "ben"), take_over=True
        )
        assert claim.reviewer == _member(team, "ben")
        assert approval.events.filter(kind="claim_taken_over").count() == 1

    def test_it_lets_anyone_claim_after_expiry(self, team) -> None:
        approval = ApprovalRequestFactory(team=team)
        claim = approval_claim_take(approval=approval, reviewer=_member(team, "ann"))
        claim.expires_at = timezone.now() - timedelta(seconds=1)
        claim.save()
        claim = approval_claim_take(approval=approval, reviewer=_member(team, "ben"))
        assert claim.reviewer == _member(team, "ben")

    def test_it_releases_only_ones_own_claim(self, team) -> None:
        approval = ApprovalRequestFactory(team=team)
        approval_claim_take(approval=approval, reviewer=_member(team, "ann"))
        approval_claim_release(approval=approval, reviewer=_member(team, "ben"))
        approval.refresh_from_db()
        assert approval.claim.reviewer == _member(team, "ann")
        approval_claim_release(approval=approval, reviewer=_member(team, "ann"))
        assert not type(approval.claim).objects.filter(approval=approval).exists()


@pytest.mark.django_db
class TestArgumentsSchema:
    """Changed arguments must fit the JSON Schema the agent sent with the request."""

    SCHEMA = {
        "type": "object",
        "properties": {"amount": {"type": "integer", "maximum": 100}},
        "required": ["amount"],
        "additionalProperties": False,
    }

    def test_it_turns_a_schema_rejection_into_a_400_naming_arguments(self, team) -> None:
        approval = ApprovalRequestFactory(
            team=team, arguments={"amount": 50}, arguments_schema=self.SCHEMA
        )
        with pytest.raises(ReviewRejected) as rejected:
            approval_arguments_parse(approval=approval, text='{"amount": 500}')
        assert rejected.value.param == "arguments"
        assert "maximum of 100" in str(rejected.value)
        with pytest.raises(ReviewRejected):
            approval_arguments_parse(approval=approval, text='{"amount": 5, "extra": 1}')
        assert approval_arguments_parse(approval=approval, text='{"amount": 50}') == {"amount": 50}

    def test_it_accepts_any_object_when_no_schema_was_sent(self, team) -> None:
        approval = ApprovalRequestFactory(team=team, arguments_schema=None)
        assert approval_arguments_parse(approval=approval, text='{"anything": [1]}') == {
            "anything": [1]
        }
