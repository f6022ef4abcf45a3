"""A question reads as a question wherever people see it: answered or declined, never "Approved"
or "Denied", and marked as a question in the queue, on its page, in Slack and in email. (The APIs
keep `approved` and `denied`: docs/questions.md.)"""

import json
from urllib.parse import urlencode

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from approvals.digests import email_digests_create
from approvals.models import (
    ApprovalRequest,
    Channel,
    EmailMode,
    Kind,
    Notification,
    NotificationPreference,
    Status,
)
from approvals.notifications import notifications_on_submitted
from approvals.notifiers.slack import approval_blocks
from approvals.outbox import KIND_EMAIL_DIGEST, KIND_NOTIFICATION, outbox_deliver
from approvals.services import approval_request_answer, approval_request_deny
from tests.approvals.test_slack import _post, _signed_headers
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory, reviewer_with_slack
from tests.notify_servers import slack_api, smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "properties": {"region": {"type": "string"}}}


def _question(**fields) -> ApprovalRequest:
    return ApprovalRequestFactory(
        kind=Kind.QUESTION,
        tool="ask_human",
        arguments={},
        answer_schema=SCHEMA,
        summary="Which region should the new cluster go to?",
        **fields,
    )


@pytest.fixture
def rita(db):
    return UserFactory(username="rita", is_staff=True)


@pytest.fixture
def rita_page(client, rita):
    client.force_login(rita)
    return client


def test_the_status_label_of_a_question_is_answered_or_declined(rita) -> None:
    answered, declined, expired = _question(), _question(), _question(status=Status.EXPIRED)
    approval_request_answer(approval=answered, reviewer=rita, answer={"region": "eu-west-1"})
    approval_request_deny(approval=declined, reviewer=rita, reason="Not mine.")
    approved = ApprovalRequestFactory(status=Status.APPROVED)
    for approval in (answered, declined):
        approval.refresh_from_db()

    assert [a.status_label for a in (answered, declined, expired, approved)] == [
        "Answered",
        "Declined",
        "Expired",
        "Approved",
    ]


def test_the_queue_marks_a_question(rita_page) -> None:
    question = _question()
    approval = ApprovalRequestFactory(summary="Refund a duplicate charge.")

    page = rita_page.get(reverse("approvals:queue")).content.decode()

    question_row = _row(page, question)
    assert '<span class="badge kind-question"' in question_row
    assert "Agent asks" in question_row and "Agent says" not in question_row
    approval_row = _row(page, approval)
    assert "kind-question" not in approval_row and "Agent says" in approval_row


def _row(page: str, approval: ApprovalRequest) -> str:
    start = page.index(f'id="approval-{approval.code}"')
    return page[start : page.index("</li>", start)]


def test_an_answered_questions_page_says_answered(rita_page, rita) -> None:
    question = _question()
    approval_request_answer(approval=question, reviewer=rita, answer={"region": "eu-west-1"})

    page = rita_page.get(reverse("approvals:detail", args=[question.code])).content.decode()

    assert '<span class="badge status-approved" id="status-badge">Answered</span>' in page
    assert 'id="kind-badge">Question</span>' in page
    assert 'data-outcome-label="Answered"' in page and "<strong>Answered</strong>" in page
    assert "Answered at" in page and "The agent asks" in page
    assert "Approved" not in page


def test_a_declined_question_reads_declined_in_the_page_and_history(rita_page, rita) -> None:
    question = _question()
    approval_request_deny(approval=question, reviewer=rita, reason="Not mine.")

    page = rita_page.get(reverse("approvals:detail", args=[question.code])).content.decode()
    history = rita_page.get(reverse("approvals:history")).content.decode()

    assert 'id="status-badge">Declined</span>' in page and "Denied" not in page
    row = _row(history, question)
    assert ">Declined</span>" in row and '<span class="badge kind-question">' in row


def _slack_question(**fields):
    sam = reviewer_with_slack("sam", "U0SAM")
    question = _question(team=TeamFactory(members=[sam]), **fields)
    with transaction.atomic():
        created = notifications_on_submitted(approval=question)
    return question, next(n for n in created if n.channel == Channel.SLACK)


def test_slack_asks_a_question_without_an_approve_button(slack_api) -> None:  # noqa: F811
    question, _ = _slack_question()

    blocks = approval_blocks(question)

    text = json.dumps(blocks)
    assert blocks[0]["text"]["text"] == "Question: an answer needed"
    assert "Question (the agent's claim, not verified)" in text
    assert "Exact call" not in text and "nothing runs when it is answered" in text
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert [(e["action_id"], e["text"]["text"]) for e in actions["elements"]] == [
        ("approval_deny", "Decline"),
        ("approval_open", "Answer in console"),
    ]


def test_slack_updates_an_answered_question_to_answered(slack_api, rita) -> None:  # noqa: F811
    question, row = _slack_question()
    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk)

    approval_request_answer(approval=question, reviewer=rita, answer={"region": "eu-west-1"})

    update = Notification.objects.get(approval=question, reason="resolved")
    outbox_deliver(kind=KIND_NOTIFICATION, row_id=update.pk)
    [call] = slack_api.calls_to("chat.update")
    assert "Answered by rita." in json.dumps(call.body["blocks"])
    assert call.body["text"] == "Answered by rita: tool \u201cask_human\u201d"


def test_slack_declines_a_question_and_refuses_to_approve_one(client, slack_api) -> None:  # noqa: F811
    question, _ = _slack_question()

    def click(action_id: str) -> None:
        payload = {
            "type": "block_actions",
            "user": {"id": "U0SAM"},
            "response_url": f"{slack_api.url}actions/T1/reply",
            "actions": [{"action_id": action_id, "value": str(question.code)}],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        assert _post(client, body, _signed_headers(body)).status_code == 200

    click("approval_approve")  # an old message's button, or a forged one
    [reply] = slack_api.calls_to("reply")
    assert reply.body["text"] == "Not recorded: this is a question. Answer it in the console."
    question.refresh_from_db()
    assert question.status == Status.PENDING

    click("approval_deny")
    question.refresh_from_db()
    assert question.status == Status.DENIED
    assert question.decision.note == "Declined from Slack by sam."


def test_the_email_asks_a_question(settings, smtp_server) -> None:  # noqa: F811
    alice = UserFactory(username="alice", email="alice@example.test")
    question = _question(team=TeamFactory(members=[alice]))
    with transaction.atomic():
        created = notifications_on_submitted(approval=question)
    row = next(n for n in created if n.channel == Channel.EMAIL)

    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk)

    [message] = smtp_server.handler.messages
    assert message["Subject"] == (
        "[Question] the agent asks \u201cWhich region should the new cluster go to?\u201d"
    )
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert text.startswith("An agent's question routed to your team is waiting for an answer.")
    assert "Answer here: " in text and "What the agent asks" in text
    assert "Tool: " not in text and "Decide here" not in text
    assert "A question from agent" in html and "What the agent asks" in html


def test_a_digest_marks_a_question(smtp_server) -> None:  # noqa: F811
    alice = UserFactory(username="alice", email="alice@example.test")
    NotificationPreference.objects.create(user=alice, email_mode=EmailMode.DIGEST)
    team = TeamFactory(members=[alice])
    question, approval = _question(team=team), ApprovalRequestFactory(team=team)
    for held in (question, approval):
        with transaction.atomic():
            notifications_on_submitted(approval=held)

    [digest] = email_digests_create(now=timezone.now())
    outbox_deliver(kind=KIND_EMAIL_DIGEST, row_id=digest.pk)

    [message] = smtp_server.handler.messages
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "A question (answer it; nothing runs)" in text
    assert "Tool: \u201cissue_refund\u201d" in text
    assert "What the agent asks" in text and "What the agent says" in text
    assert "<strong>A question</strong> from agent" in html
