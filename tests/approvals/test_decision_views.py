"""The decision page's actions: approve with changes (diff, then confirm), escalate, comment,
claim, and quorum progress."""

import re

import pytest
from django.urls import reverse

from approvals.models import Status
from approvals.reviews import approval_claim_take
from tests.factories import ApprovalRequestFactory, PolicyRuleFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(db):
    payments = TeamFactory(
        name="payments", members=[UserFactory(username="ann"), UserFactory(username="ben")]
    )
    PolicyRuleFactory(tool_glob="issue_refund", team=payments)  # payments reviews refunds
    return payments


def _as(client, team, name):
    client.force_login(team.members.get(username=name))
    return client


def _post(client, name, approval, data):
    return client.post(reverse(name, args=[approval.code]), data, HTTP_HX_REQUEST="true")


def test_it_shows_the_diff_and_records_nothing_until_confirmed(client, team) -> None:
    approval = ApprovalRequestFactory(team=team, arguments={"amount": 4900, "currency": "GBP"})
    client = _as(client, team, "ann")
    changed = '{"amount": 2450, "currency": "GBP"}'
    preview = _post(client, "approvals:approve-changes", approval, {"arguments": changed})
    html = preview.content.decode()
    assert preview.status_code == 200
    assert "-  &quot;amount&quot;: 4900," in html and "+  &quot;amount&quot;: 2450," in html
    assert "Confirm changed arguments" in html
    approval.refresh_from_db()
    assert approval.status == Status.PENDING

    confirmed = _post(
        client,
        "approvals:approve-changes",
        approval,
        {"arguments": changed, "confirmed": approval.tool},
    )
    assert confirmed.status_code == 200
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED
    assert approval.decision.approved_arguments == {"amount": 2450, "currency": "GBP"}
    assert "With changed arguments" in confirmed.content.decode()
    assert "&quot;amount&quot;: 2450" in confirmed.content.decode()


def test_a_high_impact_change_is_confirmed_by_typing_the_tools_name(client, team) -> None:
    approval = ApprovalRequestFactory(team=team, arguments={"amount": 4900, "currency": "GBP"})
    client = _as(client, team, "ann")
    changed = '{"amount": 2450, "currency": "GBP"}'
    preview = _post(client, "approvals:approve-changes", approval, {"arguments": changed})
    html = preview.content.decode()
    assert "High impact: confirm." in html
    assert 'type="hidden" name="confirmed"' not in html
    field = re.search(r'<input type="text" name="confirmed" id="confirm-changes-typed"[^>]*>', html)
    assert field and 'data-confirm-name="issue_refund"' in field[0]
    assert '<label for="confirm-changes-typed" class="confirm-label">Type the tool' in html

    # A post that skips the typed name (a script, an older page) approves nothing: the diff
    # again, with why.
    skipped = _post(
        client, "approvals:approve-changes", approval, {"arguments": changed, "confirmed": "on"}
    )
    html = skipped.content.decode()
    assert skipped.status_code == 400
    assert "is not the tool&#x27;s name" in html
    assert 'id="arguments-diff"' in html and "+  &quot;amount&quot;: 2450," in html
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert not approval.events.exists()


def test_without_htmx_the_diff_step_is_shown_and_then_confirmed(client, team) -> None:
    approval = ApprovalRequestFactory(team=team, arguments={"amount": 4900, "currency": "GBP"})
    client = _as(client, team, "ann")
    url = reverse("approvals:approve-changes", args=[approval.code])
    changed = '{"amount": 2450, "currency": "GBP"}'
    # A plain form post (no script): the diff step is the answer, not a redirect that loses it.
    preview = client.post(url, {"arguments": changed})
    assert preview.status_code == 200
    assert 'id="arguments-diff"' in preview.content.decode()
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    confirmed = client.post(url, {"arguments": changed, "confirmed": "issue_refund"})
    assert confirmed.status_code == 302
    approval.refresh_from_db()
    assert approval.decision.approved_arguments == {"amount": 2450, "currency": "GBP"}


def test_a_change_to_a_tool_whose_name_shows_as_nothing_is_confirmed_with_the_word(
    client, team
) -> None:
    PolicyRuleFactory(tool_glob="  ", team=team)  # the changed call stays with payments
    approval = ApprovalRequestFactory(
        team=team, tool="  ", arguments={"amount": 4900, "currency": "GBP"}
    )
    client = _as(client, team, "ann")
    changed = '{"amount": 2450, "currency": "GBP"}'
    preview = _post(client, "approvals:approve-changes", approval, {"arguments": changed})
    html = preview.content.decode()
    assert "(a tool with no readable name)" in html
    field = re.search(r'<input type="text" name="confirmed" id="confirm-changes-typed"[^>]*>', html)
    assert field and 'data-confirm-name="approve"' in field[0]
    data = {"arguments": changed, "confirmed": "  ", "confirm_step": "1"}
    assert _post(client, "approvals:approve-changes", approval, data).status_code == 400
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    data["confirmed"] = "approve"
    assert _post(client, "approvals:approve-changes", approval, data).status_code == 200
    approval.refresh_from_db()
    assert approval.decision.approved_arguments == {"amount": 2450, "currency": "GBP"}


def test_a_low_impact_change_to_an_unnamed_tool_is_confirmed_by_its_button(client, team) -> None:
    PolicyRuleFactory(tool_glob="*", team=team)  # the changed call stays with payments
    approval = ApprovalRequestFactory(team=team, tool="", impact="low", arguments={"amount": 1})
    client = _as(client, team, "ann")
    preview = _post(client, "approvals:approve-changes", approval, {"arguments": '{"amount": 2}'})
    html = preview.content.decode()
    # The button's form sends the (empty) name and says it is the answer to the step.
    assert '<input type="hidden" name="confirm_step" value="1">' in html
    data = {"arguments": '{"amount": 2}', "confirmed": "", "confirm_step": "1"}
    assert _post(client, "approvals:approve-changes", approval, data).status_code == 200
    approval.refresh_from_db()
    assert approval.decision.approved_arguments == {"amount": 2}


@pytest.mark.parametrize("typed", ["", "issue refund"])
def test_a_wrong_typed_name_keeps_the_changed_arguments_and_the_note(client, team, typed) -> None:
    approval = ApprovalRequestFactory(team=team, arguments={"amount": 4900, "currency": "GBP"})
    changed = '{"amount": 2450, "currency": "GBP"}'
    data = {"arguments": changed, "note": "half, as agreed", "confirmed": typed}
    data["confirm_step"] = "1"
    response = _post(_as(client, team, "ann"), "approvals:approve-changes", approval, data)
    html = response.content.decode()
    assert response.status_code == 400
    error = re.search(r'<p class="error" id="confirm-changes-error" role="alert">([^<]*)</p>', html)
    assert error and error[1].startswith("Not approved.")
    assert 'aria-describedby="confirm-changes-help confirm-changes-error"' in html
    assert 'id="arguments-diff"' in html and "+  &quot;amount&quot;: 2450," in html
    assert '<input type="hidden" name="note" value="half, as agreed">' in html
    kept = r'<input type="hidden" name="arguments" value="[^"]*&quot;amount&quot;: 2450'
    assert re.search(kept, html)
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert not approval.events.exists()

    data["confirmed"] = " issue_refund "
    confirmed = _post(client, "approvals:approve-changes", approval, data)
    assert confirmed.status_code == 200
    approval.refresh_from_db()
    assert approval.decision.approved_arguments == {"amount": 2450, "currency": "GBP"}
    assert approval.decision.note == "half, as agreed"


def test_it_names_invalid_json_and_keeps_what_was_typed(client, team) -> None:
    approval = ApprovalRequestFactory(team=team)
    response = _post(
        _as(client, team, "ann"),
        "approvals:approve-changes",
        approval,
        {"arguments": '{"amount": 12,}', "confirmed": "on"},
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "Not valid JSON" in html
    assert "{&quot;amount&quot;: 12,}" in html
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_it_shows_quorum_progress_after_the_first_approval(client, team) -> None:
    approval = ApprovalRequestFactory(team=team, required_approvals=2)
    confirmed = {"note": "", "confirmed": approval.tool}  # high impact: the second step
    response = _post(_as(client, team, "ann"), "approvals:approve", approval, confirmed)
    html = response.content.decode()
    assert "Your approval is recorded (1 of 2)" in html
    assert "You approved already" in html
    again = _post(client, "approvals:approve", approval, confirmed)
    assert again.status_code == 409
    assert "already approved" in again.content.decode()


def test_it_escalates_and_says_the_request_left_the_queue(client, team) -> None:
    security = TeamFactory(name="security")
    approval = ApprovalRequestFactory(team=team)
    response = _post(
        _as(client, team, "ann"),
        "approvals:escalate",
        approval,
        {"team": security.pk, "note": "Fraud pattern."},
    )
    assert response.status_code == 200
    assert "Escalated to security. It has left your queue." in response.content.decode()
    approval.refresh_from_db()
    assert approval.team == security


def test_it_requires_a_note_to_escalate(client, team) -> None:
    approval = ApprovalRequestFactory(team=team)
    response = _post(
        _as(client, team, "ann"),
        "approvals:escalate",
        approval,
        {"team": TeamFactory().pk, "note": ""},
    )
    assert response.status_code == 400
    assert "Say why" in response.content.decode()


def test_it_adds_a_comment_to_the_history(client, team) -> None:
    approval = ApprovalRequestFactory(team=team)
    response = _post(
        _as(client, team, "ann"), "approvals:comment", approval, {"note": "Calling the customer."}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<ol id="history-{approval.code}"')
    assert "Calling the customer." in html


def test_it_says_who_holds_the_claim(client, team) -> None:
    approval = ApprovalRequestFactory(team=team)
    approval_claim_take(approval=approval, reviewer=team.members.get(username="ann"))
    client = _as(client, team, "ben")
    refused = _post(client, "approvals:claim", approval, {})
    assert refused.status_code == 409
    assert "ann has claimed this request" in refused.content.decode()
    taken = _post(client, "approvals:claim", approval, {"take_over": "1"})
    assert taken.status_code == 200
    assert "You claimed this request." in taken.content.decode()


def test_the_detail_page_shows_hold_reason_and_folds_large_values(client, team) -> None:
    approval = ApprovalRequestFactory(
        team=team,
        hold_reason="confidence 0.42 below 0.70 for high-impact refunds",
        arguments={"amount": 1, "body": "x" * 2000},
    )
    html = (
        _as(client, team, "ann")
        .get(reverse("approvals:detail", args=[approval.code]))
        .content.decode()
    )
    assert "confidence 0.42 below 0.70 for high-impact refunds" in html
    assert '<details class="folded"><summary><code>body</code>' in html
    assert "&quot;amount&quot;: 1</pre>" in html
    # The agent's claim is the headline; the arguments, then why it was held, follow it.
    assert (
        html.index("The agent says")
        < html.index("What approving lets it do")
        < html.index("Why it was paused")
    )
