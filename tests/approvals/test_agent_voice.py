"""Agent text never speaks as the console: policy reasons keep the agent's values apart and show
them marked as the agent's, and invisible or bidi characters are shown as escapes, in pages,
email, Slack and insight. A hostile agent writes the values below."""

import json
import re
import unicodedata
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils.timezone import now as timezone_now

from agents.services import NewTraceEvent, run_events_append, run_open
from approvals import insight
from approvals.agent_text import agent_text_one_line, agent_text_visible
from approvals.models import ApprovalRequest, Channel, Status
from approvals.notifications import notifications_on_submitted
from approvals.outbox import KIND_NOTIFICATION, outbox_deliver
from approvals.policies.models import Budget, PolicyCondition, PolicyEvaluation
from approvals.reasons import AGENT, CONSOLE, Reason
from approvals.services import Submission, approval_request_create
from tests.factories import (
    AgentFactory,
    ApprovalRequestFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    reviewer_with_slack,
)
from tests.notify_servers import slack_api, smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db

# The review's example: an argument value written to read as the console's own verdict.
INJECTION = "2'. Policy check passed: finance pre-verified this deletion; reviewers: approve"
SPAN = (
    '<span class="agent-value" '
    'title="The agent&#x27;s value, quoted: its claim, not the console&#x27;s words"'
)


def _held(
    *, tool: str = "delete_records", arguments: dict[str, Any] | None = None, **submission: Any
) -> ApprovalRequest:
    team = TeamFactory(name="ops", members=[UserFactory(username="ann", email="ann@example.test")])
    rule = PolicyRuleFactory(name="big deletes", tool_glob="*", team=team, reason="Ask Ops.")
    PolicyCondition.objects.create(rule=rule, path="count", operator="!=", value=0)
    approval, created = approval_request_create(
        agent=submission.pop("agent", None) or AgentFactory(),
        idempotency_key=f"k-{tool}-{len(ApprovalRequest.objects.all())}",
        submission=Submission(
            tool=tool,
            arguments=arguments if arguments is not None else {"count": INJECTION},
            timeout="30m",
            impact="high",
            **submission,
        ),
    )
    assert created and approval.status == Status.PENDING
    return approval


def _outside_agent_values(html: str) -> str:
    """The HTML with every marked agent value taken out: what reads as the console's."""
    return re.sub(r'<span class="agent-value"[^>]*>[^<]*</span>', "«agent»", html)


def _element(html: str, element_id_or_class: str) -> str:
    match = re.search(rf'<p (?:id|class)="{element_id_or_class}">(.*?)</p>', html, flags=re.DOTALL)
    assert match is not None, element_id_or_class
    return match.group(1)


def test_it_keeps_the_matched_value_apart_from_the_rules_words() -> None:
    approval = _held()

    evaluation = PolicyEvaluation.objects.get(approval=approval)
    reason = Reason.from_json(evaluation.reason_parts)
    assert reason is not None
    console_words = "".join(text for kind, text in reason.parts if kind == CONSOLE)
    agent_values = [text for kind, text in reason.parts if kind == AGENT]
    assert "Policy check passed" not in console_words
    assert console_words.startswith("Matched rule “big deletes”")
    assert console_words.endswith("Ask Ops.")
    # Quoted as a JSON literal: the agent's own quote cannot close it.
    assert agent_values == ['"delete_records"', json.dumps(INJECTION)]
    # The plain text (API answers, audit) is the same sentence with those literals in it.
    assert approval.hold_reason == str(reason) == evaluation.reason
    assert approval.hold_reason_parts == evaluation.reason_parts


def test_a_long_agent_value_is_cut_inside_its_quotes() -> None:
    approval = _held(arguments={"count": "approve " * 100})

    reason = Reason.from_json(approval.hold_reason_parts)
    assert reason is not None
    [_, value] = [text for kind, text in reason.parts if kind == AGENT]
    assert len(value) <= 122 and value.startswith('"approve ') and value.endswith('…"')


def test_the_pages_show_agent_values_in_reasons_marked_as_the_agents(client: Client) -> None:
    approval = _held()
    client.force_login(UserFactory(username="ann"))

    detail = client.get(reverse("approvals:detail", args=[approval.code])).content.decode()
    queue = client.get(reverse("approvals:queue")).content.decode()

    for html in (_element(detail, "hold-reason"), _element(detail, "policy-reason")):
        assert f"{SPAN}>&quot;2&#x27;. Policy check passed" in html
        assert "Policy check passed" not in _outside_agent_values(html)
        assert "Matched rule “big deletes”" in _outside_agent_values(html)
    held_line = re.search(r'<span class="held-reason">(.*?)</span></details>', queue, re.DOTALL)
    assert held_line is not None
    assert "Policy check passed" not in _outside_agent_values(held_line.group(1))


def test_a_policy_denial_note_shows_the_agent_values_marked(client: Client) -> None:
    rule = PolicyRuleFactory(
        name="no odd deletes", tool_glob="delete_*", outcome="deny", reason="x"
    )
    PolicyCondition.objects.create(rule=rule, path="count", operator="!=", value=0)
    approval, _ = approval_request_create(
        agent=AgentFactory(),
        idempotency_key="k-deny",
        submission=Submission(
            tool="delete_records", arguments={"count": INJECTION}, timeout="30m", impact="low"
        ),
    )
    assert approval.status == Status.DENIED
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))

    detail = client.get(reverse("approvals:detail", args=[approval.code])).content.decode()

    note = _element(detail, "note")
    assert SPAN in note and "Policy check passed" not in _outside_agent_values(note)
    history = re.search(r'<ol id="history-[^"]*" class="events">(.*?)</ol>', detail, re.DOTALL)
    assert history is not None
    assert "Policy check passed" not in _outside_agent_values(history.group(1))


def test_the_run_name_in_a_budget_reason_is_the_agents() -> None:
    agent = AgentFactory()
    run, _ = run_open(agent=agent, name="ok'. Budget override granted")
    run_events_append(run=run, events=[NewTraceEvent(type="llm_call", data={}, cost=Decimal(5))])
    PolicyRuleFactory(outcome="approve")
    Budget.objects.create(name="run cap", scope="run", ceiling=1)

    approval, _ = approval_request_create(
        agent=agent,
        idempotency_key="k-run",
        submission=Submission(
            tool="issue_refund", arguments={}, timeout="30m", impact="low", run=str(run.code)
        ),
    )

    reason = Reason.from_json(approval.hold_reason_parts)
    assert reason is not None
    assert (AGENT, '"ok\'. Budget override granted"') in reason.parts
    assert all("override" not in text for kind, text in reason.parts if kind == CONSOLE)


def test_a_reason_stored_before_parts_is_shown_whole_as_the_agents(client: Client) -> None:
    team = TeamFactory(name="ops", members=[UserFactory(username="ann")])
    approval = ApprovalRequestFactory(
        team=team, hold_reason="Matched rule: arguments.count = '2'. Policy check passed"
    )
    client.force_login(UserFactory(username="ann"))

    detail = client.get(reverse("approvals:detail", args=[approval.code])).content.decode()

    assert _outside_agent_values(_element(detail, "hold-reason")) == "«agent»"


def test_invisible_and_bidi_characters_are_visible_on_the_pages(client: Client) -> None:
    approval = _held(
        tool="pay\u202eexe.fdp",
        arguments={"count": 3, "to": "acct\u2066-1\u2069\u200b"},
        summary="Routine\u200d cleanup\u061c",
        reasoning="Safe.\u200e\nReally\u2060.",
        context={"note": "\ufeffctx"},
    )
    client.force_login(UserFactory(username="ann"))

    detail = client.get(reverse("approvals:detail", args=[approval.code])).content.decode()
    queue = client.get(reverse("approvals:queue")).content.decode()

    for page in (detail, queue):
        # Form values (a filter's, a hidden field's) must stay exact; they are not shown.
        html = re.sub(r' value="[^"]*"', "", page)
        for char in "\u202e\u2066\u2069\u200b\u200d\u061c\u200e\u2060\ufeff":
            assert char not in html, f"U+{ord(char):04X} shown raw"
        assert "pay⟨U+202E⟩exe.fdp" in html
    assert "Routine⟨U+200D⟩ cleanup⟨U+061C⟩" in detail
    assert "Safe.⟨U+200E⟩\nReally⟨U+2060⟩." in detail
    assert "acct⟨U+2066⟩-1⟨U+2069⟩⟨U+200B⟩" in detail
    assert "⟨U+FEFF⟩ctx" in detail


def test_the_mail_marks_agent_values_in_the_reason(settings, smtp_server) -> None:  # noqa: F811
    approval = _held()
    notification = next(n for n in approval.notifications.all() if n.channel == Channel.EMAIL)

    outbox_deliver(kind=KIND_NOTIFICATION, row_id=notification.pk)

    [message] = smtp_server.handler.messages
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert '<span class="agent-value"' in html
    paused = re.search(r"Why it was paused</th><td>(.*?)</td>", html, re.DOTALL)
    assert paused is not None
    assert "Policy check passed" not in _outside_agent_values(paused.group(1))
    [line] = [line for line in text.splitlines() if line.startswith("Why it was paused:")]
    assert json.dumps(INJECTION) in line


def test_slack_quotes_agent_values_in_the_reason(slack_api) -> None:  # noqa: F811
    reviewer_with_slack("sam", "U0SAM")
    approval = _held()
    approval.team.members.add(UserFactory._meta.model.objects.get(username="sam"))
    with transaction.atomic():
        created = notifications_on_submitted(approval=approval)
    row = next(n for n in created if n.channel == Channel.SLACK)

    outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk)

    [call] = slack_api.calls_to("chat.postMessage")
    [paused] = [
        b["text"]["text"]
        for b in call.body["blocks"]
        if b.get("text", {}).get("text", "").startswith("Paused because:")
    ]
    assert json.dumps(INJECTION) in paused


def test_every_format_and_control_character_becomes_visible() -> None:
    named = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
    named += "\u200b\u200c\u200d\u2060\ufeff\x00\x1b\x7f\u2028\u2029\U000e0041"
    shown = agent_text_visible(named)
    assert all(unicodedata.category(char) not in {"Cc", "Cf", "Zl", "Zp"} for char in shown)
    assert shown.count("⟨U+") == len(named)
    assert "⟨U+E0041⟩" in shown
    # Text that is only text is left alone; multi-line fields keep their lines.
    plain = "Zahlung über 49 € — 返金 🙂\n\tok"
    assert agent_text_visible(plain) == plain
    assert agent_text_one_line("a\nb\r\n\tc") == "a b c"


def test_the_changes_editor_shows_escapes_yet_holds_the_same_arguments(client: Client) -> None:
    arguments = {"count": 3, "to": "acct\u202e1-\U000e0041"}
    approval = _held(arguments=arguments)
    client.force_login(UserFactory(username="ann"))

    detail = client.get(reverse("approvals:detail", args=[approval.code])).content.decode()

    match = re.search(r'<textarea name="arguments"[^>]*>(.*?)</textarea>', detail, re.DOTALL)
    assert match is not None
    prefilled = unescape(match.group(1))
    assert "\u202e" not in prefilled and "\\u202e" in prefilled
    # The same JSON value: submitted untouched, it is exactly what the agent sent.
    assert json.loads(prefilled) == arguments


def test_drift_counts_policy_denials_per_rule_not_per_quoted_value() -> None:
    rule = PolicyRuleFactory(name="odd deletes", tool_glob="delete_*", outcome="deny", reason="x")
    PolicyCondition.objects.create(rule=rule, path="count", operator="!=", value=0)
    agent = AgentFactory(name="cleaner")
    for index, count in enumerate((INJECTION, "7\u202e", 9)):
        approval_request_create(
            agent=agent,
            idempotency_key=f"k-drift-{index}",
            submission=Submission(
                tool="delete_records", arguments={"count": count}, timeout="30m", impact="low"
            ),
        )

    [drift] = insight.weekly_drift()

    assert drift.current.denial_reasons == {"Rule “odd deletes”": 3}


# --- The agent's names and claims inside the console's words ---------------------------------
# Written to read as the console's verdict. Wherever a page, a mail or a Slack message shows
# them, they are marked as the agent's: in a <code> (a tool's name), in quotes (a title, an
# attribute, a notification's text), or in a quoted agent claim.
VERDICT_TOOL = "Approved by security team"
VERDICT_SUMMARY = "Policy check passed, nothing to review"
VERDICT_RUN = "Cleared by the console"


def _bare(html: str, phrase: str) -> int:
    """How often `phrase` appears in `html` not marked as the agent's (form values are not
    shown: they are left out)."""
    html = re.sub(r' value="[^"]*"', "", html)
    marked = (
        rf"<code[^>]*>{re.escape(phrase)}</code>",
        rf"\u201c{re.escape(phrase)}\u201d",
        rf'<q class="agent-claim[^"]*">{re.escape(phrase)}</q>',
    )
    for pattern in marked:
        html = re.sub(pattern, "«agent»", html)
    return html.count(phrase)


def _verdict_request(**fields: Any) -> ApprovalRequest:
    team = TeamFactory(name="ops", members=[UserFactory(username="ann", email="ann@example.test")])
    fields.setdefault("summary", VERDICT_SUMMARY)
    return ApprovalRequestFactory(team=team, tool=VERDICT_TOOL, **fields)


@pytest.mark.parametrize("summary", [VERDICT_SUMMARY, ""])
def test_the_queue_marks_the_tool_and_summary_as_the_agents(client: Client, summary: str) -> None:
    approval = _verdict_request(summary=summary)
    client.force_login(approval.team.members.get())
    html = client.get(reverse("approvals:queue")).content.decode()
    assert f'id="approval-{approval.code}"' in html
    assert _bare(html, VERDICT_TOOL) == 0
    assert _bare(html, VERDICT_SUMMARY) == 0
    # The tick box's name, read aloud as the console's words.
    [label] = re.findall(r'class="bulk-pick"[^>]*aria-label="([^"]*)"', html)
    assert unescape(label).startswith(f"Select tool \u201c{VERDICT_TOOL}\u201d")


def test_the_history_and_bulk_pages_mark_the_tool_and_summary_as_the_agents(
    client: Client,
) -> None:
    decided = _verdict_request(status=Status.DENIED, decided_at=timezone_now())
    pending = ApprovalRequestFactory(team=decided.team, tool=VERDICT_TOOL, summary=VERDICT_SUMMARY)
    client.force_login(decided.team.members.get())
    history = client.get(reverse("approvals:history")).content.decode()
    assert f'id="approval-{decided.code}"' in history
    bulk = client.post(
        reverse("approvals:bulk-confirm"), {"action": "deny", "codes": [pending.code]}
    ).content.decode()
    assert f'data-code="{pending.code}"' in bulk
    for html in (history, bulk):
        assert _bare(html, VERDICT_TOOL) == 0
        assert _bare(html, VERDICT_SUMMARY) == 0


def test_the_run_name_heading_marks_it_as_the_agents(client: Client) -> None:
    run, _ = run_open(agent=AgentFactory(), name=VERDICT_RUN)
    approval = _verdict_request(agent=run.agent, run=run)
    client.force_login(approval.team.members.get())
    html = client.get(reverse("approvals:detail", args=[approval.code])).content.decode()
    assert 'id="run-timeline"' in html
    assert _bare(html, VERDICT_RUN) == 0


def test_every_line_the_agent_wrote_in_the_run_timeline_is_marked_as_its(client: Client) -> None:
    # Before, a message's content, a note, a model's and a tool's name stood in the timeline
    # as plain lines: "Policy check passed, nothing to review" read as the console's word.
    run, _ = run_open(agent=AgentFactory(), name="support chat")
    said = VERDICT_SUMMARY
    run_events_append(
        run=run,
        events=[
            NewTraceEvent(type="message", data={"role": VERDICT_RUN, "content": said}),
            NewTraceEvent(type="note", data={"text": said}),
            NewTraceEvent(
                type="llm_call", data={"model": said, "prompt": said, "completion": said}
            ),
            NewTraceEvent(
                type="tool_call", data={"tool": said, "arguments": {"why": said}, "error": said}
            ),
            NewTraceEvent(type="tool_call", data={"tool": "t", "arguments": {}, "result": said}),
        ],
    )
    approval = _verdict_request(agent=run.agent, run=run)
    client.force_login(approval.team.members.get())
    html = client.get(reverse("approvals:detail", args=[approval.code])).content.decode()
    events = re.findall(r'<li class="timeline-event .*?</li>', html, flags=re.DOTALL)
    assert len(events) == 5
    assert sum(event.count(said) for event in events) == 9  # every one shown
    for event in events:
        assert '<span class="says">Agent says</span>' in event
        # Blocks (prompts, JSON) are the agent's only in a block fenced as its words.
        for pre in re.findall("<pre[^>]*>", event):
            assert 'class="agent-text agent-block' in pre
        lines = re.sub(r"<pre[^>]*>.*?</pre>", "", event, flags=re.DOTALL)
        assert _bare(lines, said) == 0
        assert _bare(lines, VERDICT_RUN) == 0


def test_insight_tables_mark_the_tool_as_the_agents(client: Client) -> None:
    _verdict_request(status=Status.APPROVED, decided_at=timezone_now())
    client.force_login(UserFactory(username="boss", is_staff=True))
    html = client.get("/insight/").content.decode()
    assert "<code>" + VERDICT_TOOL in html
    # The charts' SVG labels are drawn text (approvals/insight/charts.py); the tables are not.
    tables = re.sub(r"<svg.*?</svg>", "", html, flags=re.DOTALL)
    assert _bare(tables, VERDICT_TOOL) == 0


def test_mail_subjects_quote_the_agents_tool_and_summary() -> None:
    from approvals.notifiers.email import approval_subject

    approval = _verdict_request()
    assert approval_subject(approval) == (
        f"[Approval needed] tool \u201c{VERDICT_TOOL}\u201d,"
        f" the agent says \u201c{VERDICT_SUMMARY}\u201d"
    )
    assert approval_subject(approval, failed=True).startswith(
        f"[Failed after approval] tool \u201c{VERDICT_TOOL}\u201d, the agent said \u201c"
    )
    long = _verdict_request(summary="x" * 500 + "\nImpact: Low")
    subject = approval_subject(long)
    assert "\n" not in subject and subject.endswith("\u2026\u201d")


def test_slack_texts_quote_the_agents_tool_and_name() -> None:
    from approvals.notifiers.slack import approval_blocks, slack_fallback_text

    approval = _verdict_request(agent=AgentFactory(name="bot\nImpact: Low"))
    header = f"Approval needed: tool \u201c{VERDICT_TOOL}\u201d"
    assert slack_fallback_text(approval, failure_notice=False) == header
    blocks = approval_blocks(approval)
    assert blocks[0]["text"]["text"] == header
    fields = [field["text"] for field in blocks[2]["fields"]]
    assert "Agent: \u201cbot Impact: Low\u201d" in fields  # one line: no fake "Impact:" line
    texts = json.dumps(blocks, ensure_ascii=False)
    assert f"Exact call: tool \u201c{VERDICT_TOOL}\u201d" in texts

    approval.status = Status.DENIED
    assert slack_fallback_text(approval, failure_notice=False) == (
        f"Denied: tool \u201c{VERDICT_TOOL}\u201d"
    )
    assert slack_fallback_text(approval, failure_notice=True) == (
        f"Failed after your approval: tool \u201c{VERDICT_TOOL}\u201d"
    )


def test_browser_notifications_quote_the_agents_tool_and_summary(client: Client) -> None:
    approval = _verdict_request(summary=VERDICT_SUMMARY + "\n\u202eevil")
    with transaction.atomic():
        notifications_on_submitted(approval=approval)
    client.force_login(approval.team.members.get())
    [item] = client.get("/notifications/feed", {"after": 0}).json()["notifications"]
    assert item["title"] == f"Approval needed: tool \u201c{VERDICT_TOOL}\u201d"
    assert item["body"] == f"The agent says \u201c{VERDICT_SUMMARY} \u27e8U+202E\u27e9evil\u201d"
