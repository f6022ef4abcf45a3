"""The decision page in real Chromium: the decision always in view, the outcome at once when
someone else decides, keys that never approve by accident, the tool's name typed to confirm high
impact, and an edit in progress kept when it can no longer be sent. Screenshots go to
test-artifacts/."""

import re
import sys
import time
import unicodedata
from decimal import Decimal
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from agents.services import NewTraceEvent, run_events_append, run_open
from approvals import realtime
from approvals.models import ApprovalRequest, Impact, ReviewerPresence, Status
from approvals.reviews import (
    check_approval_request_approve,
    check_approval_request_comment,
    check_approval_request_deny,
)
from approvals.services import approval_confirmation_typed
from tests.browser.live import axe_serious, log_in, off_loop, submit
from tests.factories import AgentFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}

REFUND_SCHEMA = {
    "type": "object",
    "properties": {
        "amount": {"type": "integer", "x-money": {"currency_field": "currency", "minor_units": 2}},
        "currency": {"type": "string"},
        "receipt_url": {"type": "string", "format": "uri"},
    },
}


def _refund(team, **fields):
    return submit(
        team=team,
        tool=fields.pop("tool", "issue_refund"),
        impact=fields.pop("impact", Impact.CRITICAL),
        summary="Refund 1,200.00 EUR to Dana Whitfield for order 88121, charged twice on 3 Dec.",
        reasoning="The payment provider shows two captures of the same order within a minute.",
        arguments={
            "payment_id": "pay_88121",
            "amount": 120000,
            "currency": "EUR",
            "receipt_url": "https://payments.example.test/receipts/88121",
            "metadata": {"order": {"id": 88121, "lines": [{"sku": "TEA-1", "qty": 3}]}},
        },
        arguments_schema=REFUND_SCHEMA,
        hold_reason="critical refunds always need a person",
        **fields,
    )


def _run_so_far():
    def record():
        run, _ = run_open(agent=AgentFactory(name="refund-bot"), name="order 88121 support chat")
        events = [
            ("message", None, {"role": "user", "content": "I was charged twice for order 88121."}),
            ("llm_call", "0.02", {"model": "gpt-5", "input_tokens": 900, "output_tokens": 40}),
            (
                "tool_call",
                None,
                {
                    "tool": "lookup_payment",
                    "arguments": {"order": 88121},
                    "result": {"captures": 2, "amount": 120000},
                },
            ),
        ]
        run_events_append(
            run=run,
            events=[
                NewTraceEvent(type=kind, data=data, cost=Decimal(cost) if cost else None)
                for kind, cost, data in events
            ],
        )
        return run

    return off_loop(record)


def _in_first_viewport(page: Page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], (box, size)
    assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], (box, size)


def test_it_shows_approve_in_the_first_viewport_at_desktop_and_phone_width(
    live_console, page: Page, phone_page: Page, team, artifacts
) -> None:
    run = _run_so_far()
    approval = _refund(team, run=run, agent=run.agent)
    page.set_viewport_size(DESKTOP)
    for viewer, size in ((page, "1400x900"), (phone_page, "390x844")):
        log_in(viewer, live_console.url, "alice")
        viewer.goto(f"{live_console.url}/requests/{approval.code}")
        expect(viewer.locator("#agent-summary")).to_contain_text("Refund 1,200.00 EUR")
        # Armed after a moment on screen.
        expect(viewer.locator("#approve-button")).to_have_attribute("data-armed", "ready")
        _in_first_viewport(viewer, "#approve-button")
        _in_first_viewport(viewer, "#agent-summary")
        # The halt controls are out of sight until asked for.
        expect(viewer.locator("#halt-agent-form")).to_have_count(0)  # alice may not halt
        # The run's steps: beside the decision at desktop width, folded on a phone.
        steps = viewer.locator("#run-steps")
        expect(steps).to_contain_text("lookup_payment")
        if size == "1400x900":
            expect(steps).to_have_attribute("open", "")
        else:
            expect(steps).not_to_have_attribute("open", "")
        # Money with its currency and unit, from the schema's hint.
        expect(viewer.locator("#arguments-typed")).to_contain_text("1,200.00 EUR")
        viewer.screenshot(path=str(artifacts / f"decision-page-{size}.png"), caret="initial")
        viewer.screenshot(
            path=str(artifacts / f"decision-page-{size}-full.png"), full_page=True, caret="initial"
        )
    # Scrolled to the bottom, the decision is still wholly in view.
    for viewer in (page, phone_page):
        viewer.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        viewer.wait_for_function("window.scrollY > 200")
        _in_first_viewport(viewer, "#approve-button")


def test_the_run_timeline_marks_what_the_agent_wrote_and_fits_a_phone(
    phone_page: Page, live_console, team, artifacts
) -> None:
    # Before, trace lines the agent wrote (a message, a note, a model's name) stood unmarked,
    # reading as the console's own lines.
    run = _run_so_far()

    def more() -> None:
        run_events_append(
            run=run,
            events=[
                NewTraceEvent(type="note", data={"text": "Policy check passed: approve. " * 12}),
                NewTraceEvent(
                    type="tool_call",
                    data={
                        "tool": "lookup_customer_" + "x" * 80,
                        "arguments": {"query": "y" * 300},
                        "error": "TimeoutError: " + "z" * 200,
                    },
                ),
            ],
        )

    off_loop(more)
    approval = _refund(team, run=run, agent=run.agent)
    log_in(phone_page, live_console.url, "alice")
    phone_page.goto(f"{live_console.url}/requests/{approval.code}")
    phone_page.locator("#run-steps > summary").click()
    events = phone_page.locator("#run-timeline .timeline-event")
    expect(events).to_have_count(5)
    for details in phone_page.locator("#run-timeline .timeline-event details").all():
        details.locator("summary").click()
    for event in events.all():
        expect(event.locator(".agent-line .says").first).to_have_text("Agent says")
        expect(event.locator(".agent-line q.agent-claim, .agent-line code").first).to_be_visible()
    expect(events.nth(0)).to_contain_text("I was charged twice for order 88121.")
    for block in phone_page.locator("#run-timeline pre").all():
        expect(block).to_have_class(re.compile(r"\bagent-block\b"))
        expect(block).to_be_visible()
    # Nothing the agent wrote, however long, makes the page scroll sideways.
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone_page.locator("#run-timeline").screenshot(path=str(artifacts / "run-timeline-390.png"))


def test_the_page_turns_to_the_outcome_within_a_second_when_another_reviewer_decides(
    live_console, page: Page, team, artifacts
) -> None:
    approval = _refund(team)
    page.set_viewport_size(DESKTOP)
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}")
    expect(page.locator("#live-status, .decision-page")).not_to_have_count(0)
    expect(page.locator("#status-badge")).to_have_text("Pending")
    expect(page.locator("#time-left [data-deadline]")).to_have_count(1)
    page.wait_for_function("document.querySelector('[ws-connect]') && window.htmx")
    # Wait until the socket is open: presence shows alice is looking.
    expect(page.locator(f"#presence-{approval.code}")).to_contain_text("alice")

    bob = team.members.get(username="bob")
    off_loop(
        check_approval_request_deny,
        approval=ApprovalRequest.objects.get(pk=approval.pk),
        reviewer=bob,
        reason="Second capture was already voided.",
    )

    expect(page.locator("#status-badge")).to_have_text("Denied", timeout=1000)
    expect(page.locator(".decision-page")).to_have_attribute("data-status", "denied", timeout=1000)
    expect(page.locator("#time-left [data-deadline]")).to_have_count(0)
    expect(page.locator("#time-left")).to_contain_text("Denied")
    expect(page.locator("#approve-button")).to_have_count(0)
    outcome = page.locator(f"#decision-panel-{approval.code} .outcome")
    expect(outcome).to_contain_text("Denied by bob")
    expect(page.locator(f"#decision-panel-{approval.code}")).to_contain_text(
        "Second capture was already voided."
    )
    _in_first_viewport(page, f"#decision-panel-{approval.code} .outcome")
    page.screenshot(path=str(artifacts / "decision-page-decided-elsewhere.png"))


def test_nobody_is_shown_looking_once_the_request_is_decided(
    live_console, page: Page, team
) -> None:
    # Before, "Looking now: alice" stayed under the outcome, and came back on a reload.
    approval = _refund(team)
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}")
    presence = page.locator(f"#presence-{approval.code}")
    expect(presence).to_have_text("Looking now: alice")
    # The page's heartbeat keeps its "looking now" alive while the request waits, and stops
    # with the decision (console.js pings only while the page carries this mark).
    root = page.locator(".decision-page")
    expect(root).to_have_attribute("data-heartbeat-seconds", re.compile(r"^\d+$"))

    off_loop(
        check_approval_request_deny,
        approval=ApprovalRequest.objects.get(pk=approval.pk),
        reviewer=team.members.get(username="bob"),
        reason="Second capture was already voided.",
    )

    expect(page.locator("#status-badge")).to_have_text("Denied")
    expect(presence).to_be_empty()
    expect(root).not_to_have_attribute("data-heartbeat-seconds", re.compile(".*"))

    presences = ReviewerPresence.objects.filter(approval=approval)
    sockets_before = set(off_loop(lambda: set(presences.values_list("channel_name", flat=True))))
    page.reload()
    expect(page.locator("#status-badge")).to_have_text("Denied")
    expect(presence).to_be_empty()
    expect(root).not_to_have_attribute("data-heartbeat-seconds", re.compile(".*"))
    # The reloaded page's socket still enters its presence: once it has, a push of who is
    # looking reaches the page, then a comment's push, which comes after it on the same socket.
    deadline = time.monotonic() + 10
    while not off_loop(lambda: presences.exclude(channel_name__in=sockets_before).exists()):
        assert time.monotonic() < deadline, "the reloaded page's socket never connected"
        page.wait_for_timeout(50)
    off_loop(realtime.publish_presence, approval_id=approval.pk)
    off_loop(
        check_approval_request_comment,
        approval=ApprovalRequest.objects.get(pk=approval.pk),
        reviewer=team.members.get(username="bob"),
        note="Voided on 3 Dec.",
    )
    expect(page.locator(f"#history-{approval.code}")).to_contain_text("Voided on 3 Dec.")
    expect(presence).to_be_empty()


def test_the_title_keeps_a_tool_named_like_a_verdict_as_a_name_when_the_outcome_arrives(
    live_console, page: Page, team
) -> None:
    # Before, the script took a leading "Approved · " for the old status: a tool named so was
    # dropped from the title when the request was denied.
    approval = _refund(team, tool="Approved", impact=Impact.LOW)
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}")
    expect(page).to_have_title("Pending · tool \u201cApproved\u201d · Approval console")
    expect(page.locator(f"#presence-{approval.code}")).to_contain_text("alice")

    off_loop(
        check_approval_request_deny,
        approval=ApprovalRequest.objects.get(pk=approval.pk),
        reviewer=team.members.get(username="bob"),
        reason="Not this one.",
    )

    expect(page.locator("#status-badge")).to_have_text("Denied", timeout=1000)
    expect(page).to_have_title("Denied · tool \u201cApproved\u201d · Approval console")


def test_a_then_enter_from_the_queue_never_approves(live_console, page: Page, team) -> None:
    approval = _refund(team)
    page.set_viewport_size(DESKTOP)
    log_in(page, live_console.url, "alice")
    expect(page.locator(f"#approval-{approval.code}")).to_be_visible()
    page.keyboard.press("j")
    page.keyboard.press("a")
    expect(page.locator("#agent-summary")).to_be_visible()
    for _ in range(3):
        page.keyboard.press("Enter")
    # Well past the moment the approve button arms: Enter still did nothing.
    expect(page.locator("#approve-button")).to_have_attribute("data-armed", "ready")
    page.keyboard.press("Enter")
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    # `a` on the page focuses Approve; Enter then asks for the confirmation, still no decision.
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-approve")).to_contain_text("issue_refund")
    expect(page.locator("#confirm-approve")).to_contain_text("1,200.00 EUR")
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_a_critical_approval_needs_the_tools_name_typed(
    live_console, page: Page, team, artifacts
) -> None:
    approval = _refund(team)
    page.set_viewport_size(DESKTOP)
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}")
    # A click the moment the page shows does nothing: the reviewer has not read it yet.
    page.locator("#approve-button").dispatch_event("click")
    expect(page.locator("#approve-button")).to_have_attribute("data-armed", "ready")
    expect(page.locator("#confirm-approve")).to_have_count(0)
    page.get_by_label("Note for the agent").fill("Two captures, checked with the provider.")
    page.get_by_role("button", name="Approve…").click()

    # The second step says what approving does, names the tool as the agent's value, and asks
    # for its name typed into a labelled field (focused); the button waits for it.
    confirm = page.locator("#confirm-approve")
    expect(confirm).to_contain_text("Critical impact: confirm.")
    expect(confirm).to_contain_text("Approving lets the agent run this tool for")
    expect(confirm.locator("code.agent-value.confirm-name")).to_have_text("issue_refund")
    expect(confirm.locator("#confirm-approve-arguments")).to_contain_text('"amount": 120000')
    typed = page.get_by_label("Type the tool's name to confirm")
    expect(typed).to_be_focused()
    button = page.get_by_role("button", name="Confirm and approve")
    expect(button).to_be_disabled()
    _shoot(page, artifacts, "approve-step-desktop")
    assert axe_serious(Axe().run(page)) == []

    page.keyboard.type("Issue_Refund")  # letter case counts
    expect(button).to_be_disabled()
    expect(page.locator("#confirm-approve-status")).to_have_text("Not the tool's name yet.")
    page.keyboard.press("Enter")  # a disabled button: Enter sends nothing
    # Had it been sent anyway (no script), the server refuses it and says why, keeping the note.
    button.evaluate("button => { button.disabled = false; }")
    button.click()
    error = page.locator("#confirm-approve-error")
    expect(error).to_contain_text("Not approved. What you typed is not the tool's name.")
    expect(error).to_have_attribute("role", "alert")
    described = "confirm-approve-help confirm-approve-error"
    expect(typed).to_have_attribute("aria-describedby", described)
    expect(typed).to_have_value("Issue_Refund")
    expect(page.get_by_label("Note for the agent")).to_have_value(
        "Two captures, checked with the provider."
    )
    expect(button).to_be_disabled()
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    _shoot(page, artifacts, "approve-step-error-desktop")
    assert axe_serious(Axe().run(page)) == []

    typed.fill("  issue_refund ")  # surrounding whitespace does not count
    expect(button).to_be_enabled()
    expect(error).to_be_hidden()  # it was about the name sent before
    expect(page.locator("#confirm-approve-status")).to_have_text(
        "The name matches: you can confirm."
    )
    page.set_viewport_size(PHONE)
    _shoot(page, artifacts, "approve-step-phone")
    _fits_the_width(page)
    page.set_viewport_size(DESKTOP)
    button.click()
    expect(page.locator("#status-badge")).to_have_text("Approved")
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED
    assert approval.decision.note == "Two captures, checked with the provider."


def test_a_long_lookalike_tool_name_is_shown_whole_and_copyable(
    live_console, page: Page, team, artifacts
) -> None:
    # A Cyrillic "a" (U+0430) in a long name: it reads like the Latin one.
    tool = "delete_all_customer_records_in_the_production_datab\u0430se_" + "x" * 120
    approval = _refund(team, tool=tool)
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}")
    expect(page.locator("#approve-button")).to_have_attribute("data-armed", "ready")
    page.get_by_role("button", name="Approve…").click()
    name = page.locator("#confirm-approve .confirm-name")
    expect(name).to_have_text(tool)
    expect(page.locator("#confirm-approve-unusual")).to_contain_text(
        "U+0430 CYRILLIC SMALL LETTER A"
    )
    assert name.evaluate("el => getComputedStyle(el).userSelect") == "all"
    assert "monospace" in name.evaluate("el => getComputedStyle(el).fontFamily")
    page.get_by_label("Type the tool's name to confirm").fill(tool.replace("\u0430", "a"))
    expect(page.get_by_role("button", name="Confirm and approve")).to_be_disabled()
    for viewport, shot in ((PHONE, "long-name-phone"), (DESKTOP, "long-name-desktop")):
        page.set_viewport_size(viewport)
        _shoot(page, artifacts, shot)
        _fits_the_width(page)
    page.get_by_label("Type the tool's name to confirm").fill(tool)
    expect(page.get_by_role("button", name="Confirm and approve")).to_be_enabled()


def test_the_name_to_type_is_the_name_seen_not_the_raw_one(live_console, page: Page, team) -> None:
    # A zero-width space, a right-to-left override and a run of spaces: the page shows each.
    tool = "issue\u200b_refund\u202e  now"
    approval = _refund(team, tool=tool)
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}")
    expect(page.locator("#approve-button")).to_have_attribute("data-armed", "ready")
    page.get_by_role("button", name="Approve…").click()
    seen = page.locator("#confirm-approve .confirm-name").inner_text()
    assert seen == "issue⟨U+200B⟩_refund⟨U+202E⟩ now"
    typed = page.get_by_label("Type the tool's name to confirm")
    button = page.get_by_role("button", name="Confirm and approve")

    typed.fill(tool)  # the raw name, pasted from somewhere else: not what the reviewer read
    expect(button).to_be_disabled()
    # Sent anyway (no script): the server refuses it too.
    button.evaluate("button => { button.disabled = false; }")
    button.click()
    expect(page.locator("#confirm-approve-error")).to_contain_text(
        "Not approved. What you typed is not the tool's name."
    )
    approval.refresh_from_db()
    assert approval.status == Status.PENDING

    typed.fill(seen)
    expect(button).to_be_enabled()
    button.click()
    expect(page.locator("#status-badge")).to_have_text("Approved")
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED


# Every character either side could take for whitespace: the controls, format characters and
# separators (Cc, Cf, Z*), where Python's str.isspace, JavaScript's trim and \s all find theirs.
# Around the tool's name, in the field: the browser's value (an <input> drops line breaks itself)
# and the button's state.
MAYBE_WHITESPACE = [
    code
    for code in range(sys.maxunicode + 1)
    if unicodedata.category(chr(code)) in {"Cc", "Cf", "Zs", "Zl", "Zp"}
]
TYPE_AROUND = """([field, codes]) => {
  const button = document.getElementById(field.dataset.confirmButton);
  return codes.map(code => {
    const around = String.fromCodePoint(code);
    field.value = around + "issue_refund" + around;
    field.dispatchEvent(new Event("input", { bubbles: true }));
    return [code, field.value, !button.disabled];
  });
}"""


def test_the_script_trims_exactly_what_the_server_trims(live_console, page: Page, team) -> None:
    approval = _refund(team)
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}")
    expect(page.locator("#approve-button")).to_have_attribute("data-armed", "ready")
    page.get_by_role("button", name="Approve…").click()
    field = page.get_by_label("Type the tool's name to confirm")
    expect(field).to_be_focused()

    seen = page.evaluate(TYPE_AROUND, [field.element_handle(), MAYBE_WHITESPACE])

    # The server is authoritative: the button is enabled for exactly what it would accept.
    disagree = [
        f"U+{code:04X}: the button {'enabled' if enabled else 'disabled'}"
        for code, value, enabled in seen
        if enabled != (approval_confirmation_typed(approval=approval, typed=value) == approval.tool)
    ]
    assert disagree == []
    # Not vacuous: some characters around the name are whitespace (the button works), most not.
    assert 20 < sum(enabled for _, _, enabled in seen) < len(seen) / 2


LONG_LOOKALIKE = "delete_all_customer_records_in_the_production_datab\u0430se_" + "x" * 120


@pytest.mark.parametrize(
    ("tool", "typed", "label"),
    [
        ("issue_refund", "issue_refund", "Type the tool's name to confirm"),
        (LONG_LOOKALIKE, LONG_LOOKALIKE, "Type the tool's name to confirm"),
        ("   ", "approve", "Type approve to confirm"),
    ],
    ids=["name", "long-lookalike-name", "whitespace-name"],
)
def test_on_a_phone_the_confirmation_step_shows_its_field_and_button_without_errors(
    live_console, phone_page: Page, team, artifacts, tool, typed, label
) -> None:
    page = phone_page
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    approval = _refund(team, tool=tool)
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}")
    expect(page.locator("#approve-button")).to_have_attribute("data-armed", "ready")
    with page.expect_response(lambda response: response.url.endswith("/approve")) as asked:
        page.get_by_role("button", name="Approve…").click()
    # The step is a question, not an error: no failed request in the browser's console.
    assert asked.value.status == 200
    field = page.get_by_label(label)
    expect(field).to_be_focused()
    button = page.get_by_role("button", name="Confirm and approve")
    expect(button).to_be_disabled()
    # The field and the button in view together, without scrolling the bar by hand.
    _in_first_viewport(page, "#confirm-approve-typed")
    _in_first_viewport(page, "#approve-button")
    if tool == "issue_refund":  # a short name: the whole step fits, the bar does not scroll
        bar = page.locator(".decision-bar")
        assert bar.evaluate("bar => bar.scrollHeight <= bar.clientHeight + 1")
    _fits_the_width(page)
    _shoot(page, artifacts, f"phone-step-{len(tool)}")
    field.fill(f" {typed} ")
    expect(button).to_be_enabled()
    matched = "The name matches" if tool.strip() else "The word matches"
    expect(page.locator("#confirm-approve-status")).to_have_text(f"{matched}: you can confirm.")
    assert axe_serious(Axe().run(page)) == []
    button.click()
    expect(page.locator("#status-badge")).to_have_text("Approved")
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED
    assert errors == []


def _shoot(page: Page, artifacts: Path, name: str) -> None:
    # caret="initial": see tests/browser/test_reviewer_flow.py (htmx would copy style="").
    page.screenshot(path=str(artifacts / f"confirm-{name}.png"), caret="initial")


def _fits_the_width(page: Page) -> None:
    """Nothing of the page sticks out sideways, and the page never scrolls sideways (code scrolls
    in its own box; the policy's reason is cut with an ellipsis on purpose)."""
    wide = page.evaluate(
        """() => [...document.querySelectorAll("body *")].filter(el => {
                const r = el.getBoundingClientRect();
                return r.width > 0 && r.right > window.innerWidth + 1
                    && !el.closest("pre, .arguments, [hidden], #hold-reason");
            }).map(el => el.tagName + "#" + el.id + "." + el.className).slice(0, 8)"""
    )
    assert wide == [], wide
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_an_edit_in_progress_is_kept_with_the_reason_it_can_no_longer_be_sent(
    live_console, page: Page, team
) -> None:
    approval = _refund(team, impact=Impact.HIGH)
    page.set_viewport_size(DESKTOP)
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{approval.code}")
    expect(page.locator(f"#presence-{approval.code}")).to_contain_text("alice")
    page.get_by_text("Approve with changes…").click()
    page.get_by_label("amount").fill("60000")
    expect(page.locator("#id_arguments")).to_have_value(re.compile("60000"))

    bob = team.members.get(username="bob")
    off_loop(
        check_approval_request_approve,
        approval=ApprovalRequest.objects.get(pk=approval.pk),
        reviewer=bob,
        note="Checked with the customer.",
        confirmed="issue_refund",  # high impact: bob confirmed it on his page
    )

    kept = page.locator(f"#kept-edit-{approval.code}")
    expect(kept).to_be_visible(timeout=1000)
    expect(kept).to_contain_text("This request is now Approved by bob")
    expect(kept).to_contain_text("can no longer be sent")
    expect(kept.locator("textarea")).to_have_value(re.compile("60000"))
    for button in kept.locator("button").all():
        expect(button).to_be_disabled()
    expect(page.locator("#status-badge")).to_have_text("Approved")


def test_j_and_k_move_between_requests_and_the_next_opens_after_a_decision(
    live_console, page: Page, team
) -> None:
    first = _refund(team)
    second = submit(
        team=team,
        tool="send_email",
        impact=Impact.LOW,
        summary="Say hello.",
        arguments={"to": "dana@example.test", "subject": "Hi", "body": "Hello\nDana"},
    )
    page.set_viewport_size(DESKTOP)
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{first.code}")
    expect(page.locator("#agent-summary")).to_contain_text("Refund")
    page.keyboard.press("j")
    expect(page.locator("#agent-summary")).to_contain_text("Say hello.")
    # The email is previewed with its line breaks.
    expect(page.locator(".email-preview")).to_contain_text("dana@example.test")
    assert page.locator(".email-body").inner_text() == "Hello\nDana"
    page.keyboard.press("k")
    expect(page.locator("#agent-summary")).to_contain_text("Refund")
    page.keyboard.press("j")
    expect(page.locator("#agent-summary")).to_contain_text("Say hello.")
    page.get_by_role("button", name="Approve", exact=True).click()
    # Low impact: no confirmation; the outcome, then the next request (the refund) opens.
    expect(page.locator("#status-badge")).to_have_text("Approved")
    expect(page.locator("#agent-summary")).to_contain_text("Refund", timeout=5000)
    second.refresh_from_db()
    assert second.status == Status.APPROVED
