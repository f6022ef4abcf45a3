"""The confirmation naming the tool that a high- or critical-impact approval needs, checked once
for every surface (approvals/services/confirmation.py, through check_approval_request_approve)."""

import pytest

from approvals.exceptions import ReviewRejected, TransitionConflict
from approvals.models import ApprovalRequest, ApprovalVote, Decision, Impact, Status
from approvals.reviews import check_approval_request_approve, check_approval_request_deny
from approvals.services import (
    CONFIRMATION_WORD,
    ConfirmationAsked,
    approval_confirmation_asked,
    approval_confirmation_typed,
    approval_request_deny,
)
from tests.factories import ApprovalRequestFactory, PolicyRuleFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(db):
    payments = TeamFactory(
        name="payments", members=[UserFactory(username="ann"), UserFactory(username="ben")]
    )
    PolicyRuleFactory(tool_glob="issue_refund", team=payments)  # a changed refund stays here
    return payments


def _ann(team):
    return team.members.get(username="ann")


def _nothing_recorded(approval: ApprovalRequest) -> None:
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert not Decision.objects.filter(approval=approval).exists()
    assert not ApprovalVote.objects.filter(approval=approval).exists()
    assert not approval.events.exists()


@pytest.mark.parametrize("impact", [Impact.HIGH, Impact.CRITICAL])
@pytest.mark.parametrize("confirmed", [None, "", "send_email"])
def test_it_refuses_a_high_or_critical_approval_not_confirmed_by_its_tool(
    team, impact, confirmed
) -> None:
    approval = ApprovalRequestFactory(team=team, impact=impact)

    with pytest.raises(ReviewRejected) as refused:
        check_approval_request_approve(approval=approval, reviewer=_ann(team), confirmed=confirmed)

    error = refused.value
    assert (error.code, error.param, error.http_status) == ("confirmation_required", "confirm", 400)
    assert '"issue_refund"' in error.message and "Nothing was recorded" in error.message
    _nothing_recorded(approval)


def test_it_refuses_changed_arguments_and_quorum_votes_alike(team) -> None:
    changed = ApprovalRequestFactory(team=team, arguments={"amount": 10})
    quorum = ApprovalRequestFactory(team=team, required_approvals=2)

    with pytest.raises(ReviewRejected, match="confirmation naming the tool"):
        check_approval_request_approve(
            approval=changed, reviewer=_ann(team), arguments={"amount": 5}
        )
    with pytest.raises(ReviewRejected, match="confirmation naming the tool"):
        check_approval_request_approve(approval=quorum, reviewer=_ann(team))

    _nothing_recorded(changed)
    _nothing_recorded(quorum)


def test_it_approves_once_the_reviewer_confirmed_the_tool(team) -> None:
    approval = ApprovalRequestFactory(team=team, impact=Impact.CRITICAL, arguments={"amount": 10})

    outcome = check_approval_request_approve(
        approval=approval, reviewer=_ann(team), arguments={"amount": 5}, confirmed="issue_refund"
    )

    assert outcome.decided
    assert outcome.approval.decision.approved_arguments == {"amount": 5}


@pytest.mark.parametrize("impact", [Impact.LOW, Impact.MEDIUM])
def test_it_asks_nothing_of_low_and_medium_impact(team, impact) -> None:
    approval = ApprovalRequestFactory(team=team, impact=impact)
    assert check_approval_request_approve(approval=approval, reviewer=_ann(team)).decided


def test_it_refuses_a_confirmation_naming_another_tool_at_any_impact(team) -> None:
    approval = ApprovalRequestFactory(team=team, impact=Impact.LOW)

    with pytest.raises(ReviewRejected) as refused:
        check_approval_request_approve(
            approval=approval, reviewer=_ann(team), confirmed="delete_records"
        )

    assert refused.value.code == "confirmation_required"
    assert 'names "delete_records", but this request runs "issue_refund"' in refused.value.message
    _nothing_recorded(approval)


def test_a_denial_never_needs_it(team) -> None:
    approval = ApprovalRequestFactory(team=team, impact=Impact.CRITICAL)
    denied = check_approval_request_deny(approval=approval, reviewer=_ann(team), reason="No.")
    assert denied.status == Status.DENIED


def test_a_request_decided_meanwhile_answers_the_conflict_not_the_confirmation(team) -> None:
    approval = ApprovalRequestFactory(team=team)
    approval_request_deny(approval=approval, reviewer=UserFactory(username="otto"), reason="No.")
    approval.refresh_from_db()

    with pytest.raises(TransitionConflict):
        check_approval_request_approve(approval=approval, reviewer=_ann(team))


@pytest.mark.parametrize("tool", ["   ", "\u00a0\t\u3000", ""])
def test_a_tool_whose_name_shows_as_nothing_is_confirmed_by_the_word_on_the_page(
    team, tool
) -> None:
    approval = ApprovalRequestFactory(team=team, impact=Impact.CRITICAL, tool=tool)

    assert approval_confirmation_asked(approval) == ConfirmationAsked(
        text=CONFIRMATION_WORD, names_tool=False
    )
    # Its whitespace typed (or nothing) is no deliberate step: refused, nothing recorded.
    for typed in (tool, "", "Approve"):
        confirmed = approval_confirmation_typed(approval=approval, typed=typed)
        with pytest.raises(ReviewRejected):
            check_approval_request_approve(
                approval=approval, reviewer=_ann(team), confirmed=confirmed
            )
    _nothing_recorded(approval)

    confirmed = approval_confirmation_typed(approval=approval, typed=" approve ")
    assert confirmed == tool
    assert check_approval_request_approve(
        approval=approval, reviewer=_ann(team), confirmed=confirmed
    ).decided


def test_the_page_asks_for_the_name_as_shown_whitespace_aside(team) -> None:
    approval = ApprovalRequestFactory(team=team, tool=" issue  refund\t")
    asked = approval_confirmation_asked(approval)
    assert asked == ConfirmationAsked(text="issue refund", names_tool=True, whitespace_hidden=True)
    for typed in ("issue refund", " issue refund ", "\tissue refund\n"):
        assert approval_confirmation_typed(approval=approval, typed=typed) == approval.tool
    assert approval_confirmation_typed(approval=approval, typed="Issue refund") == "Issue refund"
    assert approval_confirmation_typed(approval=approval, typed=" ") is None


# (the tool as the agent sent it, the name as the page shows it and asks it typed)
NAMES_SHOWN_OTHERWISE = [
    pytest.param("delete\u200b_backup", "delete⟨U+200B⟩_backup", id="zero-width-space"),
    # Raw, it reads "pdf.exe".
    pytest.param("\u202eexe.fdp", "⟨U+202E⟩exe.fdp", id="right-to-left-override"),
    pytest.param("issue\x07refund", "issue⟨U+0007⟩refund", id="control-character"),
    pytest.param("issue  refund", "issue refund", id="run-of-whitespace"),
    pytest.param("issue\nrefund", "issue refund", id="line-break"),
    pytest.param("issue\u2028refund", "issue refund", id="line-separator"),
]


@pytest.mark.parametrize(("tool", "shown"), NAMES_SHOWN_OTHERWISE)
def test_only_the_name_as_shown_confirms_it_not_the_raw_name_the_page_hides(
    team, tool, shown
) -> None:
    approval = ApprovalRequestFactory(team=team, impact=Impact.CRITICAL, tool=tool)
    assert approval_confirmation_asked(approval).text == shown

    for raw in (tool, f" {tool} "):
        confirmed = approval_confirmation_typed(approval=approval, typed=raw)
        assert confirmed != tool
        with pytest.raises(ReviewRejected) as refused:
            check_approval_request_approve(
                approval=approval, reviewer=_ann(team), confirmed=confirmed
            )
        assert refused.value.code == "confirmation_required"
    _nothing_recorded(approval)

    confirmed = approval_confirmation_typed(approval=approval, typed=shown)
    assert confirmed == tool
    assert check_approval_request_approve(
        approval=approval, reviewer=_ann(team), confirmed=confirmed
    ).decided


# The server's whitespace is str.isspace's: U+001C-U+001F and U+0085 count, U+FEFF and the other
# invisible characters do not. static/js/decision.js trims exactly the same, so its button never
# disagrees with this (tests/browser/test_decision_page.py checks every character).
@pytest.mark.parametrize("around", ["\x1c", "\x1f", "\x85", "\xa0", "\u2028", "\u3000", "\t"])
def test_it_trims_every_whitespace_character_around_what_was_typed(team, around) -> None:
    approval = ApprovalRequestFactory(team=team, impact=Impact.CRITICAL)
    typed = f"{around}issue_refund{around}"
    assert approval_confirmation_typed(approval=approval, typed=typed) == "issue_refund"


@pytest.mark.parametrize("around", ["\ufeff", "\u200b", "\u180e", "\u2060"])
def test_it_keeps_invisible_characters_that_are_not_whitespace(team, around) -> None:
    approval = ApprovalRequestFactory(team=team, impact=Impact.CRITICAL)
    typed = f"{around}issue_refund{around}"
    confirmed = approval_confirmation_typed(approval=approval, typed=typed)
    assert confirmed == typed
    with pytest.raises(ReviewRejected):
        check_approval_request_approve(approval=approval, reviewer=_ann(team), confirmed=confirmed)
    _nothing_recorded(approval)
