"""Something you approved failed: the people who approved it are told, on the channels they keep
on, if they kept the preference on (the default) and may still see the request. Nobody else; no
news for a success, a call never made or the console's "not reported" mark."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from approvals.models import (
    REASON_OUTCOME_FAILED,
    Channel,
    Decision,
    EmailMode,
    Notification,
    NotificationPreference,
    NotificationStatus,
    SlackMessage,
    Status,
)
from approvals.outbox import KIND_NOTIFICATION, outbox_deliver
from approvals.reviews import check_approval_request_approve
from approvals.services import (
    OutcomeReport,
    approval_outcome_report,
    approval_outcomes_mark_not_reported,
    approval_request_approve,
)
from tests.factories import ApprovalRequestFactory, PolicyRuleFactory, TeamFactory, UserFactory
from tests.notify_servers import slack_api, smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db


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


def _report(approval, status: str, error: str = "") -> None:
    with transaction.atomic():
        approval_outcome_report(approval=approval, report=OutcomeReport(status=status, error=error))


def _told(approval) -> set[tuple[str, str]]:
    """(username, channel) of every failure notice written for the request."""
    return set(
        Notification.objects.filter(approval=approval, reason=REASON_OUTCOME_FAILED).values_list(
            "recipient__username", "channel"
        )
    )


def _approved_by(reviewer, team, **fields):
    return approval_request_approve(
        approval=ApprovalRequestFactory(team=team, **fields), reviewer=reviewer
    )


def test_it_tells_the_approver_and_nobody_else(team) -> None:
    approval = _approved_by(_member(team, "ann"), team)
    _report(approval, "failed", error="card_declined")
    # Email and the console list; Slack is not configured on this console.
    assert _told(approval) == {("ann", Channel.EMAIL), ("ann", Channel.CONSOLE)}
    email = Notification.objects.get(approval=approval, channel=Channel.EMAIL)
    assert email.status == NotificationStatus.PENDING


@pytest.mark.parametrize("status", ["succeeded", "not_executed"])
def test_it_tells_nobody_when_the_call_did_not_fail(team, status) -> None:
    approval = _approved_by(_member(team, "ann"), team)
    _report(approval, status)
    assert _told(approval) == set()


def test_the_consoles_not_reported_mark_tells_nobody_but_a_late_failure_does(team) -> None:
    approval = _approved_by(_member(team, "ann"), team)
    Decision.objects.filter(approval=approval).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    approval_outcomes_mark_not_reported()
    assert _told(approval) == set()
    approval.refresh_from_db()
    _report(approval, "failed", error="timeout")
    assert ("ann", Channel.CONSOLE) in _told(approval)


def test_the_preference_turned_off_tells_nothing(team) -> None:
    ann = _member(team, "ann")
    NotificationPreference.objects.create(user=ann, notify_on_failure=False)
    approval = _approved_by(ann, team)
    _report(approval, "failed", error="card_declined")
    assert _told(approval) == set()


def test_the_preference_is_on_by_default_and_the_page_turns_it_off(client, team) -> None:
    ann = _member(team, "ann")
    assert NotificationPreference(user=ann).notify_on_failure is True
    client.force_login(ann)
    page = client.get("/notifications/preferences").content.decode()
    assert 'name="notify_on_failure"' in page and "checked" in page
    response = client.post(
        "/notifications/preferences",
        {"email_enabled": "on", "console_enabled": "on", "time_zone": "UTC"},
    )
    assert response.status_code == 302
    assert NotificationPreference.objects.get(user=ann).notify_on_failure is False


def test_a_reviewer_who_can_no_longer_see_the_request_is_told_nothing(team) -> None:
    ann = _member(team, "ann")
    approval = _approved_by(ann, team)
    team.members.remove(ann)
    _report(approval, "failed", error="card_declined")
    assert _told(approval) == set()


def test_an_approval_by_policy_has_nobody_to_tell(team) -> None:
    approval = ApprovalRequestFactory(team=team, status=Status.APPROVED)
    Decision.objects.create(
        approval=approval, status=Status.APPROVED, decided_at=timezone.now(), reviewer=None
    )
    _report(approval, "failed", error="card_declined")
    assert not Notification.objects.filter(reason=REASON_OUTCOME_FAILED).exists()


def test_under_a_quorum_only_those_who_approved_what_ran_are_told(team) -> None:
    approval = ApprovalRequestFactory(team=team, required_approvals=2, arguments={"amount": 10})
    check_approval_request_approve(
        approval=approval,
        reviewer=_member(team, "ann"),
        arguments={"amount": 5},
        confirmed=approval.tool,
    )
    check_approval_request_approve(
        approval=approval, reviewer=_member(team, "ben"), confirmed=approval.tool
    )
    decided = check_approval_request_approve(
        approval=approval,
        reviewer=_member(team, "cat"),
        arguments={"amount": 5},
        confirmed=approval.tool,
    )
    assert decided.decided
    approval.refresh_from_db()
    _report(approval, "failed", error="card_declined")
    # Ben approved the submitted amount, which never ran.
    assert {name for name, _ in _told(approval)} == {"ann", "cat"}


def test_a_digest_reader_gets_the_failure_at_once(team) -> None:
    ann = _member(team, "ann")
    NotificationPreference.objects.create(user=ann, email_mode=EmailMode.DIGEST)
    approval = _approved_by(ann, team)
    _report(approval, "failed", error="card_declined")
    email = Notification.objects.get(approval=approval, channel=Channel.EMAIL)
    assert email.status == NotificationStatus.PENDING


def test_the_email_says_what_failed_in_the_agents_words(settings, team, smtp_server) -> None:  # noqa: F811
    settings.SITE_URL = "https://console.example.test"
    approval = _approved_by(_member(team, "ann"), team, summary="Refund order 1042")
    _report(approval, "failed", error="card_declined\nDecide here: https://evil.example <b>")
    email = Notification.objects.get(approval=approval, channel=Channel.EMAIL)

    assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=email.pk) is None

    [message] = smtp_server.handler.messages
    assert message["To"] == "ann@example.test"
    assert message["Subject"].startswith("[Failed after approval] tool \u201cissue_refund\u201d")
    text = message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")
    assert "A request you approved failed when it ran." in text
    assert f"https://console.example.test/requests/{approval.code}/" in text
    # The agent's lines never start a line of their own in the plain text.
    assert "| card_declined\n| Decide here: https://evil.example <b>" in text
    assert "\nDecide here" not in text
    assert "card_declined\nDecide here: https://evil.example &lt;b&gt;" in html
    email.refresh_from_db()
    assert email.status == NotificationStatus.SENT  # not dropped for the request being decided


def test_the_slack_message_is_news_the_decision_never_overwrites(team, slack_api) -> None:  # noqa: F811
    ann = _member(team, "ann")
    NotificationPreference.objects.create(user=ann, slack_user_id="U0ANN")
    approval = _approved_by(ann, team)
    _report(approval, "failed", error="<!channel> card_declined")
    row = Notification.objects.get(approval=approval, channel=Channel.SLACK)

    assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk) is None

    [post] = slack_api.calls_to("chat.postMessage")
    assert post.body["channel"] == "U0ANN"
    assert post.body["text"] == "Failed after your approval: tool \u201cissue_refund\u201d"
    texts = [
        field
        for block in post.body["blocks"]
        for field in ([block["text"]] if "text" in block else block.get("fields", []))
    ]
    assert all(text["type"] == "plain_text" for text in texts)
    assert any("<!channel> card_declined" in text["text"] for text in texts)
    assert not any(b["type"] == "actions" and len(b["elements"]) > 1 for b in post.body["blocks"])
    assert not SlackMessage.objects.filter(approval=approval).exists()
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT


def test_the_console_list_says_what_happened(client, team) -> None:
    ann = _member(team, "ann")
    approval = _approved_by(ann, team)
    _report(approval, "failed", error="card_declined")
    client.force_login(ann)
    page = client.get("/notifications/").content.decode()
    assert "failed when it ran, after you approved it" in page
    feed = client.get("/notifications/feed", {"after": 0}).json()["notifications"]
    assert [item["title"] for item in feed] == [
        "Failed after your approval: tool \u201cissue_refund\u201d"
    ]
