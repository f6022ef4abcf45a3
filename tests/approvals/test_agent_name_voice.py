"""An agent's name is the agent's words, not the console's: agents name themselves (AAP
provisioning), so wherever a page, a mail, a Slack message or a browser notification shows one,
it is quoted whole on one line, its invisible characters shown, escaped, with the console's label
("agent") outside the quotes. A hostile agent picks the name below."""

import re
from datetime import timedelta
from html import escape
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent
from approvals.digests import email_digests_create
from approvals.models import (
    REASON_OUTCOME_FAILED,
    ApprovalRequest,
    Channel,
    EmailMode,
    Kind,
    Notification,
    NotificationPreference,
    Status,
)
from approvals.notifications import notifications_on_submitted
from approvals.notifiers.slack import approval_blocks, outcome_failed_blocks
from approvals.outbox import KIND_EMAIL_DIGEST, KIND_NOTIFICATION, outbox_deliver
from approvals.services import (
    OutcomeReport,
    Submission,
    approval_outcome_report,
    approval_request_approve,
    approval_request_create,
)
from tests.factories import (
    AgentFactory,
    ApprovalRequestFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    decided_approval,
)
from tests.notify_servers import smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db

# A verdict, markup, a line break that would start a line of its own, an invisible character.
HOSTILE_NAME = "Approved by admin\n<b>ok</b>\u200b"
# How it must read: one line, every character visible, in quotes.
QUOTED = "\u201cApproved by admin <b>ok</b>\u27e8U+200B\u27e9\u201d"
QUOTED_HTML = escape(QUOTED)


def _marked(text: str, *, html: bool = True) -> str:
    """`text` after checking that the hostile name appears in it only quoted whole (and, in
    HTML, escaped); form values (a filter's) are left out: they are not shown."""
    if html:
        text = re.sub(r' value="[^"]*"', "", text)
        assert "<b>ok</b>" not in text
    assert "\u200b" not in text
    quoted = QUOTED_HTML if html else QUOTED
    assert text.count(quoted) > 0
    assert text.count("Approved by admin") == text.count(quoted), "the name shown unquoted"
    return text


def _hostile_agent(**fields: object) -> Agent:
    return AgentFactory(name=HOSTILE_NAME, **fields)


def _created(agent: Agent, **submission: Any) -> tuple[ApprovalRequest, User]:
    """A request the agent submitted (its history says so), held for team ops: ann, who may
    decide it. A question when `submission` says kind=Kind.QUESTION."""
    ann = UserFactory(username="ann", email="ann@example.test")
    PolicyRuleFactory(tool_glob="*", team=TeamFactory(name="ops", members=[ann]))
    fields: dict[str, Any] = {"tool": "issue_refund", "arguments": {"amount": 1}, "impact": "low"}
    if submission.get("kind") == Kind.QUESTION:
        fields = {"tool": "ask_human", "arguments": {}, "answer_schema": {"type": "string"}}
    approval, created = approval_request_create(
        agent=agent,
        idempotency_key=f"k-{ApprovalRequest.objects.count()}",
        submission=Submission(timeout="30m", **{**fields, **submission}),
    )
    assert created and approval.status == Status.PENDING
    return approval, ann


def test_the_queue_marks_the_agents_name(client: Client) -> None:
    approval = ApprovalRequestFactory(
        agent=_hostile_agent(), team=TeamFactory(name="ops", members=[UserFactory()])
    )
    client.force_login(approval.team.members.get())

    page = client.get(reverse("approvals:queue")).content.decode()

    html = _marked(page)
    assert f'<span class="chip agent">agent {QUOTED_HTML}</span>' in html
    # The agent filter: the name shown quoted; the value it sends is the name exactly.
    assert f"<option>{QUOTED_HTML} (1)</option>" in html
    assert f'<option value="{escape(HOSTILE_NAME)}">' in page


def test_the_decision_page_marks_the_agents_name_everywhere(client: Client) -> None:
    ann = UserFactory(username="ann", is_staff=True, is_superuser=True)
    approval = ApprovalRequestFactory(
        agent=_hostile_agent(operators=[ann]), team=TeamFactory(name="ops", members=[ann])
    )
    approval.events.create(kind="created", actor_agent=approval.agent)
    client.force_login(ann)

    html = _marked(client.get(reverse("approvals:detail", args=[approval.code])).content.decode())

    assert f'<li class="chip">agent <strong>{QUOTED_HTML}</strong></li>' in html
    assert f"Similar past decisions: agent {QUOTED_HTML} calling" in html
    assert f"You operate the agent <strong>{QUOTED_HTML}</strong>" in html
    assert f"by agent {QUOTED_HTML}" in html  # the request's history
    assert f"Why halt the agent {QUOTED_HTML} (optional)" in html
    assert f"Halt agent {QUOTED_HTML}</button>" in html


def test_the_history_and_bulk_pages_mark_the_agents_name(client: Client) -> None:
    agent = _hostile_agent()
    reviewer = UserFactory()
    team = TeamFactory(name="ops", members=[reviewer])
    decided = ApprovalRequestFactory(
        agent=agent, team=team, status=Status.DENIED, decided_at=timezone.now()
    )
    pending = ApprovalRequestFactory(agent=agent, team=team)
    client.force_login(reviewer)

    history = _marked(client.get(reverse("approvals:history")).content.decode())
    bulk = _marked(
        client.post(
            reverse("approvals:bulk-confirm"), {"action": "deny", "codes": [pending.code]}
        ).content.decode()
    )

    assert f'id="approval-{decided.code}"' in history
    assert f'<span class="muted agent">agent {QUOTED_HTML}</span>' in history
    assert f'<span class="chip agent">agent {QUOTED_HTML}</span>' in bulk


def test_the_agents_page_and_halt_messages_mark_the_agents_name(client: Client) -> None:
    agent = _hostile_agent()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    page = _marked(client.get(reverse("policies:agents")).content.decode())
    halted = client.post(
        reverse("policies:halt", args=[agent.code]), {"reason": "x"}, follow=True
    ).content.decode()
    resumed = client.post(
        reverse("policies:resume", args=[agent.code]), {"reason": "y"}, follow=True
    ).content.decode()

    assert f"<strong>{QUOTED_HTML}</strong>" in page
    assert f"Agent {QUOTED_HTML} is halted" in _marked(halted)
    assert f"Agent {QUOTED_HTML} is resumed." in _marked(resumed)


def test_the_insight_page_marks_the_agents_name_in_tables_and_charts(client: Client) -> None:
    now = timezone.now()
    decided_approval(
        agent=_hostile_agent(),
        status=Status.APPROVED,
        reviewer=UserFactory(),
        confidence=0.8,
        created_at=now - timedelta(minutes=5),
        decided_at=now,
    )
    client.force_login(UserFactory(is_staff=True))

    html = _marked(client.get("/insight/").content.decode())

    assert f"<title>Calibration of agent {QUOTED_HTML}</title>" in html
    assert f"<figcaption>Agent {QUOTED_HTML}:" in html


def _sent_marked(smtp_server, kind: str, row_id: int) -> tuple[str, str]:  # noqa: F811
    """The outbox row's mail, sent: its HTML and its plain text, each checked by _marked."""
    outbox_deliver(kind=kind, row_id=row_id)
    [message] = smtp_server.handler.messages
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    return _marked(html), _marked(text, html=False)


def test_the_mail_marks_the_agents_name(smtp_server) -> None:  # noqa: F811
    approval, _ = _created(_hostile_agent())
    notification = approval.notifications.get(channel=Channel.EMAIL)

    html, text = _sent_marked(smtp_server, KIND_NOTIFICATION, notification.pk)
    assert f"</code> requested by agent {QUOTED_HTML}</h2>" in html
    assert f"Agent: {QUOTED}" in text.splitlines()


def test_a_questions_mail_marks_the_agents_name(smtp_server) -> None:  # noqa: F811
    approval, _ = _created(_hostile_agent(), kind=Kind.QUESTION, summary="Which region?")
    notification = approval.notifications.get(channel=Channel.EMAIL)

    html, text = _sent_marked(smtp_server, KIND_NOTIFICATION, notification.pk)
    assert f"A question from agent {QUOTED_HTML}</h2>" in html
    assert f"Question from agent: {QUOTED}" in text.splitlines()


def test_the_digest_marks_the_agents_name(smtp_server) -> None:  # noqa: F811
    agent = _hostile_agent()
    alice = UserFactory(username="alice", email="alice@example.test")
    NotificationPreference.objects.create(user=alice, email_mode=EmailMode.DIGEST)
    approval = ApprovalRequestFactory(agent=agent, team=TeamFactory(members=[alice]))
    with transaction.atomic():
        notifications_on_submitted(approval=approval)
    [digest] = email_digests_create(now=timezone.now())

    html, text = _sent_marked(smtp_server, KIND_EMAIL_DIGEST, digest.pk)
    assert f"requested by agent {QUOTED_HTML}:" in html
    assert f"   Agent: {QUOTED}" in text.splitlines()


def _failed_after_approval(agent: Agent) -> ApprovalRequest:
    approval, ann = _created(agent)
    approval = approval_request_approve(approval=approval, reviewer=ann)
    with transaction.atomic():
        approval_outcome_report(
            approval=approval, report=OutcomeReport(status="failed", error="declined")
        )
    approval.refresh_from_db()
    return approval


def test_the_failure_mail_marks_the_agents_name(smtp_server) -> None:  # noqa: F811
    approval = _failed_after_approval(_hostile_agent())
    notification = Notification.objects.get(
        approval=approval, reason=REASON_OUTCOME_FAILED, channel=Channel.EMAIL
    )
    smtp_server.handler.messages.clear()

    html, text = _sent_marked(smtp_server, KIND_NOTIFICATION, notification.pk)
    assert f"</code> by agent {QUOTED_HTML}</h2>" in html
    assert f"Agent: {QUOTED}" in text.splitlines()


def test_slack_messages_quote_the_agents_name_on_one_line() -> None:
    agent = _hostile_agent()
    held = ApprovalRequestFactory(agent=agent)
    failed = _failed_after_approval(agent)

    for blocks in (approval_blocks(held), outcome_failed_blocks(failed)):
        fields = [field["text"] for block in blocks for field in block.get("fields", [])]
        assert f"Agent: {QUOTED}" in fields
        texts = [text for text in fields if "Approved by admin" in text]
        assert texts == [f"Agent: {QUOTED}"]


def test_a_questions_browser_notification_says_it_is_a_question(client: Client) -> None:
    _, ann = _created(_hostile_agent(), kind=Kind.QUESTION, summary="Which region?")
    client.force_login(ann)

    [item] = client.get("/notifications/feed", {"after": 0}).json()["notifications"]

    assert item["title"] == f"Question from agent {QUOTED}"
    assert item["body"] == "The agent asks \u201cWhich region?\u201d"
