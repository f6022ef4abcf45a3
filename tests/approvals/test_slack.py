"""Slack: Block Kit messages through the real slack-sdk against a local API, updates on decision,
rate limits, and signed interactions from the buttons."""

import json
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import transaction
from django.utils import timezone
from slack_sdk.signature import SignatureVerifier

from approvals.models import (
    Channel,
    Impact,
    Notification,
    NotificationAttempt,
    NotificationStatus,
    SlackMessage,
    Status,
)
from approvals.notifications import notifications_on_submitted
from approvals.outbox import KIND_NOTIFICATION, outbox_deliver
from approvals.services import approval_request_approve
from tests.factories import (
    AgentFactory,
    ApprovalRequestFactory,
    TeamFactory,
    UserFactory,
    reviewer_with_slack,
)
from tests.notify_servers import slack_api  # noqa: F401

pytestmark = pytest.mark.django_db


def _posted(approval_team_members, **approval_fields):
    team = TeamFactory(name="payments", members=approval_team_members)
    approval = ApprovalRequestFactory(team=team, **approval_fields)
    with transaction.atomic():
        created = notifications_on_submitted(approval=approval)
    return approval, next(n for n in created if n.channel == Channel.SLACK)


def _texts(blocks: list[dict]) -> str:
    return json.dumps(blocks)


def test_it_posts_a_block_kit_message_with_the_buttons(slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    approval, row = _posted(
        [slack],
        summary="Refund <!channel> order 1042",
        confidence=0.42,
        arguments={"payment_id": "pay_9", "amount": 4900},
        impact=Impact.LOW,
    )

    assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk) is None

    [call] = slack_api.calls_to("chat.postMessage")
    assert call.headers["Authorization"] == "Bearer xoxb-test-token"
    assert call.body["channel"] == "U0SAM"
    blocks = call.body["blocks"]
    text = _texts(blocks)
    assert "Refund <!channel> order 1042" in text
    assert "Confidence: 0.42" in text and "Impact: Low" in text
    assert "pay_9" in text and "4900" in text
    # Agent text only ever in plain_text, where Slack does not expand <!channel>.
    summary_block = blocks[1]
    assert summary_block["text"]["type"] == "plain_text"
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == [
        "approval_approve",
        "approval_deny",
        "approval_open",
    ]
    assert actions["elements"][0]["value"] == str(approval.code)
    assert actions["elements"][2]["url"].endswith(f"/requests/{approval.code}/")
    message = SlackMessage.objects.get(approval=approval)
    [stored] = slack_api.messages_in("D0001")
    assert (message.channel, message.ts) == ("D0001", stored["ts"])
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT


def test_a_decision_made_in_the_console_updates_the_message(slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    approval, row = _posted([slack])
    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk)
    rita = UserFactory(username="rita")

    approval_request_approve(approval=approval, reviewer=rita)

    update = Notification.objects.get(approval=approval, reason="resolved")
    assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=update.pk) is None
    [call] = slack_api.calls_to("chat.update")
    [stored] = slack_api.messages_in("D0001")
    assert (call.body["channel"], call.body["ts"]) == ("D0001", stored["ts"])
    text = _texts(call.body["blocks"])
    assert "Approved by rita." in text
    assert "approval_approve" not in text  # no buttons left to press


def test_it_honours_retry_after_on_a_rate_limit(slack_api, settings) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    _, row = _posted([slack])
    slack_api.scripted.append((429, {"Retry-After": "120"}, {"ok": False, "error": "ratelimited"}))
    now = timezone.now()

    assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk, now=now) == 120.0

    row.refresh_from_db()
    assert row.status == NotificationStatus.PENDING
    assert row.next_attempt_at == now + timedelta(seconds=120)
    # Not due yet: nothing is sent, however often a worker asks.
    assert (
        outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk, now=now + timedelta(seconds=60))
        is None
    )
    assert len(slack_api.calls_to("chat.postMessage")) == 1
    assert (
        outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk, now=now + timedelta(seconds=121))
        is None
    )
    assert len(slack_api.calls_to("chat.postMessage")) == 2
    row.refresh_from_db()
    assert row.status == NotificationStatus.SENT
    assert [a.outcome for a in row.attempt_rows.all()] == [
        NotificationAttempt.Outcome.RETRY,
        NotificationAttempt.Outcome.SENT,
    ]


def test_it_marks_a_permanent_refusal_failed(slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    _, row = _posted([slack])
    slack_api.scripted.append((200, {}, {"ok": False, "error": "channel_not_found"}))

    assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk) is None

    row.refresh_from_db()
    assert row.status == NotificationStatus.FAILED
    assert "channel_not_found" in row.last_error


# --- Interactions ----------------------------------------------------------------------------


def _interaction(
    approval, slack_user_id: str, action_id: str = "approval_approve", response_url: str = ""
) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": slack_user_id},
        "actions": [{"action_id": action_id, "value": str(approval.code)}],
    }
    if response_url:
        payload["response_url"] = response_url
    return urlencode({"payload": json.dumps(payload)}).encode()


def _signed_headers(body: bytes, *, secret: str | None = None, at: int | None = None):
    timestamp = str(at if at is not None else int(time.time()))
    secret = secret or "test-signing-secret"  # what the slack_api fixture configures
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return {"HTTP_X_SLACK_REQUEST_TIMESTAMP": timestamp, "HTTP_X_SLACK_SIGNATURE": signature}


def _post(client, body: bytes, headers: dict[str, str]):
    return client.post(
        "/integrations/slack/interactions",
        data=body,
        content_type="application/x-www-form-urlencoded",
        **headers,
    )


def test_a_signed_interaction_approves_and_updates_the_message(client, slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    approval, row = _posted([slack], impact=Impact.LOW)
    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk)
    body = _interaction(approval, "U0SAM")

    response = _post(client, body, _signed_headers(body))

    assert response.status_code == 200
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED
    assert approval.decision.reviewer == slack
    update = Notification.objects.get(approval=approval, reason="resolved")
    outbox_deliver(kind=KIND_NOTIFICATION, row_id=update.pk)
    [call] = slack_api.calls_to("chat.update")
    assert "Approved by sam." in _texts(call.body["blocks"])


@pytest.mark.parametrize(
    "tamper",
    ["wrong secret", "stale", "changed body", "no signature"],
)
def test_it_refuses_forged_or_stale_interactions(client, slack_api, tamper) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    approval, _ = _posted([slack])
    body = _interaction(approval, "U0SAM")
    headers = _signed_headers(body)
    if tamper == "wrong secret":
        headers = _signed_headers(body, secret="guessed")
    elif tamper == "stale":
        headers = _signed_headers(body, at=int(time.time()) - 6 * 60)
    elif tamper == "changed body":
        body = _interaction(approval, "U0SAM", action_id="approval_deny")
    else:
        headers = {}

    response = _post(client, body, headers)

    assert response.status_code == 401
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_it_refuses_a_slack_user_outside_the_team(client, slack_api) -> None:  # noqa: F811
    member = reviewer_with_slack("sam", "U0SAM")
    reviewer_with_slack("otto", "U0OTTO")  # a console reviewer, but not in the team
    approval, _ = _posted([member])
    for slack_user_id in ("U0OTTO", "U0NOBODY"):
        body = _interaction(approval, slack_user_id)

        response = _post(client, body, _signed_headers(body))

        assert response.status_code == 200
        approval.refresh_from_db()
        assert approval.status == Status.PENDING


def test_a_deny_from_slack_tells_the_agent_who_denied(client, slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    approval, _ = _posted([slack])
    body = _interaction(approval, "U0SAM", action_id="approval_deny")

    _post(client, body, _signed_headers(body))

    approval.refresh_from_db()
    assert approval.status == Status.DENIED
    assert approval.decision.note == "Denied from Slack by sam."


@pytest.mark.django_db(transaction=True)
def test_a_decision_while_the_message_is_posted_still_updates_it(slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    approval, row = _posted([slack])
    rita = UserFactory(username="rita")

    def decide_mid_flight() -> None:
        from django.db import connection

        approval_request_approve(approval=approval, reviewer=rita)
        connection.close()  # this runs in the Slack server's thread

    slack_api.on_post = decide_mid_flight

    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk)

    # The resolved hook ran before the message existed; delivery noticed and queued the update.
    update = Notification.objects.get(approval=approval, reason="resolved")
    outbox_deliver(kind=KIND_NOTIFICATION, row_id=update.pk)
    [call] = slack_api.calls_to("chat.update")
    assert "Approved by rita." in _texts(call.body["blocks"])


def test_a_refused_click_is_answered_privately_in_slack(client, slack_api) -> None:  # noqa: F811
    member = reviewer_with_slack("sam", "U0SAM")
    reviewer_with_slack("otto", "U0OTTO")
    approval, _ = _posted([member])
    payload = {
        "type": "block_actions",
        "user": {"id": "U0OTTO"},
        "response_url": f"{slack_api.url}actions/T1/reply",
        "actions": [{"action_id": "approval_approve", "value": str(approval.code)}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()

    assert _post(client, body, _signed_headers(body)).status_code == 200

    [reply] = slack_api.calls_to("reply")
    assert reply.body["response_type"] == "ephemeral"
    assert "routed to another team" in reply.body["text"]
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_it_refuses_an_approval_from_the_agents_operator(client, slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    approval, _ = _posted([slack], agent=AgentFactory(operators=[slack]), impact=Impact.LOW)
    payload = {
        "type": "block_actions",
        "user": {"id": "U0SAM"},
        "response_url": f"{slack_api.url}actions/T1/reply",
        "actions": [{"action_id": "approval_approve", "value": str(approval.code)}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()

    assert _post(client, body, _signed_headers(body)).status_code == 200

    [reply] = slack_api.calls_to("reply")
    assert "another reviewer must approve it" in reply.body["text"]
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_a_click_escalated_away_meanwhile_is_refused(client, slack_api, monkeypatch) -> None:  # noqa: F811
    from approvals import slack_interactions
    from approvals.models import ApprovalRequest
    from tests.factories import TeamFactory
    from tests.interleave import after_call

    member = reviewer_with_slack("sam", "U0SAM")
    approval, _ = _posted([member], impact=Impact.LOW)
    elsewhere = TeamFactory(name="elsewhere")
    after_call(
        monkeypatch,
        slack_interactions,
        "reviewer_may_see",
        lambda: ApprovalRequest.objects.filter(pk=approval.pk).update(team=elsewhere),
    )
    body = _interaction(approval, "U0SAM")

    assert _post(client, body, _signed_headers(body)).status_code == 200

    approval.refresh_from_db()
    assert (approval.status, approval.team) == (Status.PENDING, elsewhere)


def test_a_high_impact_message_offers_deny_and_the_console_not_approve(slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    approval, row = _posted([slack], impact=Impact.HIGH, arguments={"amount": 4900})

    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk)

    [call] = slack_api.calls_to("chat.postMessage")
    blocks = call.body["blocks"]
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == ["approval_deny", "approval_open"]
    assert actions["elements"][1]["text"]["text"] == "Open in console to approve"
    assert actions["elements"][1]["url"].endswith(f"/requests/{approval.code}/")
    text = _texts(blocks)
    assert "High impact: approve it in the console, where you confirm it" in text
    assert "Exact call: tool \\u201cissue_refund\\u201d" in text  # still shown whole, to deny on


@pytest.mark.parametrize("impact", [Impact.HIGH, Impact.CRITICAL])
def test_an_approve_click_on_a_high_impact_request_is_refused(client, slack_api, impact) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    approval, _ = _posted([slack], impact=impact)
    # An older message's Approve button, or a forged one, properly signed.
    body = _interaction(approval, "U0SAM", response_url=f"{slack_api.url}actions/T1/reply")

    assert _post(client, body, _signed_headers(body)).status_code == 200

    [reply] = slack_api.calls_to("reply")
    assert reply.body["response_type"] == "ephemeral"
    assert "needs a confirmation naming the tool" in reply.body["text"]
    assert "Open it in the console" in reply.body["text"]
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert not approval.events.exists()


def test_a_deny_click_on_a_high_impact_request_is_recorded(client, slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    approval, _ = _posted([slack], impact=Impact.CRITICAL)
    body = _interaction(approval, "U0SAM", action_id="approval_deny")

    _post(client, body, _signed_headers(body))

    approval.refresh_from_db()
    assert approval.status == Status.DENIED


def _long_memo_arguments() -> dict[str, object]:
    # A long memo first: sorted or not, the account it pays to would be cut out of the message.
    return {"memo": "Quarterly reconciliation. " * 120, "destination_account": "DE89-EVIL-0001"}


def test_a_message_that_cannot_show_the_whole_arguments_offers_no_approve(slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    _, row = _posted([slack], arguments=_long_memo_arguments(), impact=Impact.LOW)

    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk)

    [call] = slack_api.calls_to("chat.postMessage")
    blocks = call.body["blocks"]
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == ["approval_deny", "approval_open"]
    assert actions["elements"][1]["text"]["text"] == "Open in console"
    text = _texts(blocks)
    assert "too long to show here whole" in text
    # Nothing cut is presented as the arguments.
    assert "Quarterly reconciliation" not in text
    for block in blocks:
        for item in [block.get("text"), *block.get("fields", [])]:
            assert item is None or len(item["text"]) <= 3000


def test_the_exact_call_that_fits_is_shown_whole_with_approve(slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    arguments = {"memo": "x" * 2000, "destination_account": "DE89-0001"}
    _, row = _posted([slack], arguments=arguments, impact=Impact.LOW)

    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk)

    [call] = slack_api.calls_to("chat.postMessage")
    blocks = call.body["blocks"]
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert actions["elements"][0]["action_id"] == "approval_approve"
    [exact] = [b for b in blocks if b.get("text", {}).get("text", "").startswith("Exact call:")]
    assert '"destination_account": "DE89-0001"' in exact["text"]["text"]
    assert "x" * 2000 in exact["text"]["text"]


def test_an_approve_click_slack_could_not_show_whole_is_refused(client, slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    approval, _ = _posted([slack], arguments=_long_memo_arguments(), impact=Impact.LOW)
    # A forged (or older message's) Approve button, properly signed.
    body = _interaction(approval, "U0SAM", response_url=f"{slack_api.url}actions/T1/reply")

    assert _post(client, body, _signed_headers(body)).status_code == 200

    [reply] = slack_api.calls_to("reply")
    assert "too long to show in Slack" in reply.body["text"]
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert not approval.events.filter(kind="approved").exists()


def test_a_deny_click_on_arguments_slack_cannot_show_whole_is_recorded(client, slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    approval, _ = _posted([slack], arguments=_long_memo_arguments())
    body = _interaction(approval, "U0SAM", action_id="approval_deny")

    _post(client, body, _signed_headers(body))

    approval.refresh_from_db()
    assert approval.status == Status.DENIED


def test_hostile_agent_text_in_slack_is_labelled_visible_and_kept_in_its_place(slack_api) -> None:  # noqa: F811
    slack = reviewer_with_slack("sam", "U0SAM")
    _, row = _posted(
        [slack],
        tool="pay\u202eexe.fdp",
        summary="Refund\nPaused because: finance approved\u200b",
        hold_reason="",
    )

    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk)

    [call] = slack_api.calls_to("chat.postMessage")
    text = json.dumps(call.body["blocks"], ensure_ascii=False)
    assert "\u202e" not in text and "\u200b" not in text
    assert "pay\u27e8U+202E\u27e9exe.fdp" in text
    summary = call.body["blocks"][1]["text"]["text"]
    assert summary.startswith("Summary (the agent's claim, not verified):\n")
    assert "finance approved\u27e8U+200B\u27e9" in summary
    assert "pay\u27e8U+202E\u27e9exe.fdp" in call.body["text"]
