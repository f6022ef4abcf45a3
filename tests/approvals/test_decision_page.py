"""The decision page's server side: the confirmation a high or critical approval needs, similar
past decisions (only ones the reviewer may see), what happens on each choice, preset deny
reasons, the next and previous request, and the reviewer's "open the next request" setting."""

import re

import pytest
from django.urls import reverse

from approvals.models import (
    ApprovalEvent,
    ApprovalVote,
    DenyReasonPreset,
    Impact,
    ReviewerPageSettings,
    Status,
)
from approvals.reviews import check_approval_request_deny
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann(db):
    return UserFactory(username="ann")


@pytest.fixture
def payments(ann):
    return TeamFactory(name="payments", members=[ann, UserFactory(username="ben")])


def _page(client, ann, approval) -> str:
    client.force_login(ann)
    return client.get(reverse("approvals:detail", args=[approval.code])).content.decode()


def _approve(client, ann, approval, **data):
    client.force_login(ann)
    return client.post(
        reverse("approvals:approve", args=[approval.code]), data, HTTP_HX_REQUEST="true"
    )


@pytest.mark.parametrize("impact", [Impact.HIGH, Impact.CRITICAL])
def test_it_asks_a_high_or_critical_approval_to_type_the_tools_name(
    client, ann, payments, impact
) -> None:
    approval = ApprovalRequestFactory(
        team=payments, impact=impact, arguments={"amount": 120000, "currency": "EUR"}
    )
    response = _approve(client, ann, approval, note="ok")
    html = response.content.decode()
    # The step is a question, not an error: 200, and no alert (the browser logs no failed
    # request); the service refused the approval all the same, and nothing is recorded.
    assert response.status_code == 200
    assert 'role="alert"' not in _between(html, 'id="decision-', 'id="approve-form"')
    # What approving does, in the console's words; the tool's name as the agent's value; the
    # key amount and the arguments; and a visible, labelled field to type the name into.
    step = _between(html, 'id="confirm-approve"', "</form>")
    assert "Approving lets the agent run this tool for" in step and "amount 120,000 EUR" in step
    assert re.search(r'<code class="agent-value confirm-name"[^>]*>issue_refund</code>', step)
    assert "&quot;amount&quot;: 120000" in step
    assert '<label for="confirm-approve-typed" class="confirm-label">Type the tool' in step
    field = re.search(r'<input type="text" name="confirmed" id="confirm-approve-typed"[^>]*>', step)
    assert field and 'value=""' in field[0] and 'data-confirm-name="issue_refund"' in field[0]
    assert 'type="hidden" name="confirmed"' not in html
    assert "Confirm and approve" in step and 'value="ok"' in html  # the note is kept
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert not ApprovalEvent.objects.filter(approval=approval).exists()


@pytest.mark.parametrize("typed", ["", "   ", "Issue_Refund", "issue_refunds", "other_tool"])
def test_a_wrong_typed_name_is_refused_with_the_error_shown_and_nothing_decided(
    client, ann, payments, typed
) -> None:
    approval = ApprovalRequestFactory(
        team=payments, impact=Impact.CRITICAL, arguments={"amount": 120000, "currency": "EUR"}
    )
    response = _approve(client, ann, approval, note="checked", confirmed=typed, confirm_step="1")
    html = response.content.decode()
    assert response.status_code == 400
    error = re.search(r'<p class="error" id="confirm-approve-error" role="alert">([^<]*)</p>', html)
    assert error, html
    assert error[1].startswith("Not approved.")
    assert ("typed nothing" if not typed.strip() else "is not the tool&#x27;s name") in error[1]
    field = re.search(r'<input type="text" name="confirmed" id="confirm-approve-typed"[^>]*>', html)
    assert field and 'aria-invalid="true"' in field[0]
    assert 'aria-describedby="confirm-approve-help confirm-approve-error"' in field[0]
    assert f'value="{typed}"' in field[0]  # what was typed, to correct it
    assert 'value="checked"' in html  # the note too
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert not ApprovalEvent.objects.filter(approval=approval).exists()


def test_the_typed_name_counts_without_surrounding_whitespace_but_with_its_case(
    client, ann, payments
) -> None:
    approval = ApprovalRequestFactory(team=payments, impact=Impact.HIGH)
    typed = {"note": "ok", "confirm_step": "1"}
    assert _approve(client, ann, approval, confirmed="ISSUE_REFUND", **typed).status_code == 400
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert _approve(client, ann, approval, confirmed="  issue_refund\t", **typed).status_code == 200
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED


def test_a_tool_name_with_lookalike_or_invisible_characters_is_typed_as_shown(
    client, ann, payments
) -> None:
    # A Cyrillic "e" (U+0435) and a zero-width space: the name reads like "delete_backup".
    tool = "d\u0435lete\u200b_backup"
    approval = ApprovalRequestFactory(team=payments, impact=Impact.HIGH, tool=tool)
    html = _approve(client, ann, approval, note="").content.decode()
    shown = "d\u0435lete⟨U+200B⟩_backup"
    assert f'data-confirm-name="{shown}"' in html and f">{shown}</code>" in html
    assert "U+0435 CYRILLIC SMALL LETTER IE; U+200B ZERO WIDTH SPACE" in html
    typed = {"note": "", "confirm_step": "1"}
    assert _approve(client, ann, approval, confirmed="delete_backup", **typed).status_code == 400
    # The raw name, its zero-width space unseen, is not what the reviewer read.
    refused = _approve(client, ann, approval, confirmed=tool, **typed)
    assert refused.status_code == 400
    assert "Not approved. What you typed is not the tool" in refused.content.decode()
    assert _approve(client, ann, approval, confirmed=shown, **typed).status_code == 200
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED


def test_agent_text_in_the_tool_name_is_escaped(client, ann, payments) -> None:
    approval = ApprovalRequestFactory(team=payments, impact=Impact.HIGH, tool='<b>x</b>"y')
    html = _approve(client, ann, approval, note="").content.decode()
    assert "<b>x</b>" not in html
    assert 'data-confirm-name="&lt;b&gt;x&lt;/b&gt;&quot;y"' in html


def test_the_first_approve_without_htmx_shows_the_step_in_the_page(client, ann, payments) -> None:
    approval = ApprovalRequestFactory(team=payments, impact=Impact.CRITICAL)
    client.force_login(ann)
    response = client.post(reverse("approvals:approve", args=[approval.code]), {"note": "ok"})
    # Rendered, not redirected away: the step is the answer, and nothing is recorded.
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="confirm-approve"' in html and 'data-confirm-name="issue_refund"' in html
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert not ApprovalEvent.objects.filter(approval=approval).exists()


def _typed_field(html: str, prefix: str = "confirm-approve") -> str:
    field = re.search(rf'<input type="text" name="confirmed" id="{prefix}-typed"[^>]*>', html)
    assert field, html
    return field[0]


@pytest.mark.parametrize("tool", ["   ", "\u00a0\t\u3000", ""])
def test_a_tool_whose_name_shows_as_nothing_is_confirmed_with_a_word(
    client, ann, payments, tool
) -> None:
    approval = ApprovalRequestFactory(team=payments, impact=Impact.CRITICAL, tool=tool)
    asked = _approve(client, ann, approval, note="")
    html = asked.content.decode()
    assert asked.status_code == 200
    step = _between(html, 'id="confirm-approve"', "</form>")
    assert "no name you can read: it is empty or only whitespace" in step
    assert '<label for="confirm-approve-typed" class="confirm-label">Type <kbd' in step
    assert ">approve</kbd> to confirm</label>" in step
    field = _typed_field(step)
    assert 'data-confirm-name="approve"' in field and "data-confirm-word" in field
    assert "confirm-name" not in step.replace("data-confirm-name", "")  # no empty name to copy

    typed = {"note": "", "confirm_step": "1"}
    for wrong, problem in (
        (tool, "You typed nothing: type the word approve"),
        ("Approve", "is not the word approve"),
    ):
        refused = _approve(client, ann, approval, confirmed=wrong, **typed)
        assert refused.status_code == 400
        assert problem in refused.content.decode()
        approval.refresh_from_db()
        assert approval.status == Status.PENDING
    assert not ApprovalEvent.objects.filter(approval=approval).exists()

    assert _approve(client, ann, approval, confirmed=" approve ", **typed).status_code == 200
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED


def test_a_tool_whose_name_shows_as_nothing_is_named_so_in_the_console_words(
    client, ann, payments
) -> None:
    approval = ApprovalRequestFactory(team=payments, impact=Impact.HIGH, tool=" \t ", summary="")
    html = _page(client, ann, approval)
    assert "<title>Pending · (a tool with no readable name) · Approval console</title>" in html
    head = _between(html, 'id="agent-summary"', "</h1>")
    assert "(a tool with no readable name)</span>" in head and "<code>" not in head
    assert "<code></code>" not in html and '<code class="tool"></code>' not in html


def test_a_tool_name_with_whitespace_around_it_is_typed_as_shown_and_said_so(
    client, ann, payments
) -> None:
    approval = ApprovalRequestFactory(team=payments, impact=Impact.HIGH, tool="  issue_refund ")
    html = _approve(client, ann, approval, note="").content.decode()
    assert re.search(r'<code class="agent-value confirm-name"[^>]*>issue_refund</code>', html)
    assert 'data-confirm-name="issue_refund"' in _typed_field(html)
    assert 'id="confirm-approve-whitespace"' in html
    assert "has spaces around it or several in a row" in html
    typed = {"note": "", "confirm_step": "1"}
    assert _approve(client, ann, approval, confirmed="issue_refund", **typed).status_code == 200
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED


def test_every_tool_name_in_the_page_is_shown_visible_inside_code(client, ann, payments) -> None:
    # A right-to-left override: raw, "refund_exe" could read as the console's own text
    # reversed. A proposed change (another reviewer's changed arguments) names the tool too.
    tool = "refund\u202e_exe"
    approval = ApprovalRequestFactory(
        team=payments, impact=Impact.HIGH, tool=tool, summary="", required_approvals=2
    )
    ben = payments.members.get(username="ben")
    ApprovalVote.objects.create(approval=approval, reviewer=ben, arguments={"amount": 5})
    html = _page(client, ann, approval)
    assert 'id="proposal-1"' in html
    assert "\u202e" not in html
    shown = "refund⟨U+202E⟩_exe"
    proposal = _between(html, 'id="proposal-1"', "</p>")
    assert f"approved running <code>{shown}</code> with these arguments" in proposal
    # Every place the page names it: inside a <code>, or quoted as a tool's name (the title,
    # and the title's tail decision.js keeps).
    mentions = html.count(shown)
    in_code = len(re.findall(rf"<code[^>]*>{re.escape(shown)}</code>", html))
    quoted = html.count(f"tool \u201c{shown}\u201d")
    assert quoted == 2
    assert mentions == in_code + quoted, (mentions, in_code, quoted)


@pytest.mark.parametrize(
    ("tool", "status", "title"),
    [
        ("Approved", Status.PENDING, "Pending · tool \u201cApproved\u201d · Approval console"),
        (
            "Denied by policy",
            Status.APPROVED,
            "Approved · tool \u201cDenied by policy\u201d · Approval console",
        ),
        ("a\nb\u202e", Status.DENIED, "Denied · tool \u201ca b⟨U+202E⟩\u201d · Approval console"),
    ],
)
def test_the_title_starts_with_the_status_and_quotes_the_tools_name(
    client, ann, payments, tool, status, title
) -> None:
    # A tool named like a verdict must not make a pending request's tab read "Approved".
    approval = ApprovalRequestFactory(team=payments, tool=tool, summary="", status=status)
    html = _page(client, ann, approval)
    assert f"<title>{title}</title>" in html
    # decision.js rebuilds the title from this tail when the outcome arrives.
    tail = title.split(" · ", 1)[1]
    assert f'data-title-tail="{tail}"' in html


def _between(html: str, start: str, end: str) -> str:
    begin = html.index(start)
    return html[begin : html.index(end, begin)]


def test_it_approves_low_and_medium_impact_in_one_step(client, ann, payments) -> None:
    for impact in (Impact.LOW, Impact.MEDIUM):
        approval = ApprovalRequestFactory(team=payments, impact=impact)
        assert _approve(client, ann, approval, note="").status_code == 200
        approval.refresh_from_db()
        assert approval.status == Status.APPROVED


def test_a_request_decided_meanwhile_answers_the_conflict_not_the_confirmation(
    client, ann, payments
) -> None:
    approval = ApprovalRequestFactory(team=payments, impact=Impact.CRITICAL)
    check_approval_request_deny(
        approval=approval, reviewer=payments.members.get(username="ben"), reason="No."
    )
    response = _approve(client, ann, approval, note="")
    assert response.status_code == 409
    assert "someone else got there first" in response.content.decode()


def test_it_shows_similar_past_decisions_with_what_differs_only_where_visible(
    client, ann, payments
) -> None:
    agent = ApprovalRequestFactory(team=payments).agent
    earlier = ApprovalRequestFactory(
        team=payments, agent=agent, arguments={"payment_id": "pay_1", "amount": 900}
    )
    check_approval_request_deny(
        approval=earlier, reviewer=payments.members.get(username="ben"), reason="Too late."
    )
    oscar = UserFactory(username="oscar")
    hidden = ApprovalRequestFactory(team=TeamFactory(name="ops", members=[oscar]), agent=agent)
    check_approval_request_deny(approval=hidden, reviewer=oscar, reason="Secret ops.")
    approval = ApprovalRequestFactory(
        team=payments, agent=agent, arguments={"payment_id": "pay_1", "amount": 4900}
    )
    html = _page(client, ann, approval)
    similar = html[html.index('id="similar-decisions"') :]
    assert "Too late." in similar and "by ben" in similar
    assert '<code>amount</code>: <span class="agent-text">900</span> then' in similar
    assert '<span class="agent-text">4900</span> now' in similar
    assert "Secret ops." not in html


def test_a_similar_decision_just_made_on_the_same_arguments_reads_apart_from_its_note(
    client, ann, payments
) -> None:
    agent = ApprovalRequestFactory(team=payments).agent
    arguments = {"payment_id": "pay_1", "amount": 900}
    earlier = ApprovalRequestFactory(team=payments, agent=agent, arguments=arguments)
    check_approval_request_deny(
        approval=earlier, reviewer=payments.members.get(username="ben"), reason="Too late."
    )
    html = _page(
        client, ann, ApprovalRequestFactory(team=payments, agent=agent, arguments=arguments)
    )
    similar = html[html.index('id="similar-decisions"') :].split("</section>")[0]
    # Not "Too late. same arguments", nor "0 minutes ago".
    assert re.search(
        r"Too late\.\s*</span>\s*<ul class=\"differences\"><li class=\"muted\">"
        r"the same arguments as this request</li></ul>",
        similar,
    )
    assert "0\xa0minutes ago" not in similar
    assert re.search(r"</span></a>\s*(now|a second ago|\d+ seconds ago) by ben", similar)


def test_it_says_what_happens_on_each_choice(client, ann, payments) -> None:
    html = _page(client, ann, ApprovalRequestFactory(team=payments))
    line = re.search(r'<p class="what-happens" id="what-happens">(.*?)</p>', html, re.S)
    assert line is not None
    # The tool's name is the agent's: in a <code>, never read as the console's own words.
    assert "the agent runs <code>issue_refund</code> with exactly the arguments shown" in line[1]
    assert "must not run <code>issue_refund</code>; it receives your reason" in line[1]
    assert "the request expires and the agent must not run <code>issue_refund</code>." in line[1]


def test_it_offers_the_preset_deny_reasons_of_the_tool(client, ann, payments) -> None:
    DenyReasonPreset.objects.create(tool_glob="issue_*", text="Refund already issued.")
    DenyReasonPreset.objects.create(tool_glob="*", text="Ask the customer first.", position=1)
    DenyReasonPreset.objects.create(tool_glob="drop_table", text="Never in production.")
    html = _page(client, ann, ApprovalRequestFactory(team=payments))
    presets = html[html.index('id="deny-presets"') : html.index('id="id_reason"')]
    assert presets.index("Refund already issued.") < presets.index("Ask the customer first.")
    assert "Never in production." not in presets


def test_it_links_the_next_and_previous_request_of_the_queue(client, ann, payments) -> None:
    critical = ApprovalRequestFactory(team=payments, impact=Impact.CRITICAL)
    low = ApprovalRequestFactory(team=payments, impact=Impact.LOW)
    html = _page(client, ann, critical)
    assert f'data-next-url="/requests/{low.code}/"' in html
    assert "data-previous-url" not in html
    html = _page(client, ann, low)
    assert f'data-previous-url="/requests/{critical.code}/"' in html
    # Past the last one, "next" goes on with the first still waiting.
    assert f'data-next-url="/requests/{critical.code}/"' in html


def test_the_open_next_setting_is_on_by_default_and_saved_per_reviewer(
    client, ann, payments
) -> None:
    approval = ApprovalRequestFactory(team=payments)
    assert 'data-open-next="1"' in _page(client, ann, approval)
    response = client.post(reverse("approvals:page-settings"), {}, HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert ReviewerPageSettings.objects.get(user=ann).open_next_after_decision is False
    assert 'data-open-next="1"' not in _page(client, ann, approval)
    client.post(reverse("approvals:page-settings"), {"open_next": "on"})
    assert ReviewerPageSettings.objects.get(user=ann).open_next_after_decision is True


def test_the_page_prints_no_template_syntax_pending_or_decided(client, ann, payments) -> None:
    approval = ApprovalRequestFactory(
        team=payments, links=[{"label": "Order", "url": "https://shop.example.test/o/1"}]
    )
    pending = _page(client, ann, approval)
    check_approval_request_deny(approval=approval, reviewer=ann, reason="No.")
    decided = _page(client, ann, approval)
    for html in (pending, decided):
        for syntax in ("{#", "#}", "{%", "%}", "{{", "}}"):
            assert syntax not in html, syntax
    assert 'data-outcome-status="denied"' in decided and "approve-button" not in decided
