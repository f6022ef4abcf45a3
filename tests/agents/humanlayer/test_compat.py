"""The real `humanlayer` 0.7 SDK, pointed at the console with HUMANLAYER_API_BASE, keeps working."""

import time

import pytest
from humanlayer import HumanLayer

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_deny

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hl(live_console, sdk_agent, monkeypatch) -> HumanLayer:
    _, token = sdk_agent
    monkeypatch.setenv("HUMANLAYER_API_BASE", f"{live_console.url}/humanlayer/v1")
    monkeypatch.setenv("HUMANLAYER_API_KEY", token)
    # The SDK polls every 3 s through its injectable sleep; a test need not wait that long.
    return HumanLayer(run_id="refund-run-1", sleep=lambda _: time.sleep(0.05))


def test_it_runs_a_function_call_a_reviewer_approved(hl, reviewer_session, reviewer_thread) -> None:
    calls: list[tuple[str, int]] = []

    @hl.require_approval()
    def issue_refund(payment_id: str, amount: int) -> str:
        calls.append((payment_id, amount))
        return f"refunded {amount}"

    reviewer_thread.decide(
        lambda approval: reviewer_session.post(
            f"/requests/{approval.code}/approve", {"note": "ok"}
        ),
        long_polls=False,
    )
    result = issue_refund(payment_id="pay_1", amount=4900)
    reviewer_thread.join()

    assert result == "refunded 4900"
    assert calls == [("pay_1", 4900)]
    stored = ApprovalRequest.objects.get()
    assert stored.tool == "issue_refund"
    assert stored.arguments == {"payment_id": "pay_1", "amount": 4900}
    assert stored.context["humanlayer"]["run_id"] == "refund-run-1"


def test_it_tells_the_agent_a_reviewer_denied(hl, rita, reviewer_thread) -> None:
    calls: list[str] = []

    @hl.require_approval()
    def delete_records(table: str) -> None:
        calls.append(table)

    reviewer_thread.decide(
        lambda approval: approval_request_deny(
            approval=approval, reviewer=rita, reason="Legal hold."
        ),
        long_polls=False,
    )
    result = delete_records(table="crm_contacts")
    reviewer_thread.join()

    assert result == "User denied delete_records with message: Legal hold."
    assert calls == []


def test_it_does_not_run_an_approval_with_changes_it_cannot_apply(
    hl, rita, reviewer_thread
) -> None:
    calls: list[int] = []

    @hl.require_approval()
    def issue_refund(amount: int) -> None:
        calls.append(amount)

    reviewer_thread.decide(
        lambda approval: approval_request_approve(
            approval=approval, reviewer=rita, arguments={"amount": 100}
        ),
        long_polls=False,
    )
    result = issue_refund(amount=4900)
    reviewer_thread.join()

    assert calls == []
    assert result.startswith("User denied issue_refund with message: A reviewer approved")
    assert '{"amount": 100}' in result


def test_it_reports_an_expired_call_as_not_approved(hl, settings) -> None:
    from humanlayer import FunctionCallSpec

    settings.APPROVAL_DEFAULT_TIMEOUT_SECONDS = 1
    completed = hl.fetch_approval(FunctionCallSpec(fn="deploy", kwargs={"service": "web"}))

    assert completed.call.status.approved is False
    assert completed.as_completed().comment == "No decision before the deadline."


def test_it_returns_a_reviewers_answer_to_a_human_contact(hl, rita, reviewer_thread) -> None:
    contact_human = hl.human_as_tool()

    reviewer_thread.decide(
        lambda approval: approval_request_approve(
            approval=approval, reviewer=rita, note="Up to 500 EUR without asking."
        ),
        long_polls=False,
    )
    answer = contact_human("What refund can I give without asking?")
    reviewer_thread.join()

    assert answer == "Up to 500 EUR without asking."
    stored = ApprovalRequest.objects.get()
    assert stored.tool == "contact_human"
    assert stored.arguments["msg"] == "What refund can I give without asking?"


def test_it_replays_a_call_id_and_keeps_calls_private(hl, live_console) -> None:
    from humanlayer import FunctionCallSpec
    from humanlayer.core.protocol import HumanLayerException

    from tests.factories import agent_with_token

    spec = FunctionCallSpec(fn="send_email", kwargs={"to": "a@example.test"})
    first = hl.create_function_call(spec, call_id="call-fixed")
    again = hl.create_function_call(spec, call_id="call-fixed")
    assert first.call_id == again.call_id == "call-fixed"
    assert ApprovalRequest.objects.count() == 1
    assert hl.get_function_call("call-fixed").status.approved is None

    _, other_token = agent_with_token(name="other-bot")
    outsider = HumanLayer(
        api_key=other_token, api_base_url=f"{live_console.url}/humanlayer/v1", run_id="x"
    )
    with pytest.raises(HumanLayerException, match="404"):
        outsider.get_function_call("call-fixed")


def test_it_refuses_bad_input_naming_the_field(live_console, sdk_agent) -> None:
    import httpx

    _, token = sdk_agent
    response = httpx.post(
        f"{live_console.url}/humanlayer/v1/function_calls",
        json={"run_id": "r", "call_id": "c", "spec": {"fn": "x", "kwargs": []}},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 400
    assert "kwargs" in response.text
    assert ApprovalRequest.objects.count() == 0


@pytest.mark.asyncio
async def test_it_works_with_the_async_client(
    live_console, sdk_agent, rita, reviewer_thread
) -> None:
    import asyncio

    from humanlayer import AsyncHumanLayer

    _, token = sdk_agent
    hl = AsyncHumanLayer(
        api_key=token,
        api_base_url=f"{live_console.url}/humanlayer/v1",
        run_id="async-run",
        sleep=lambda _: asyncio.sleep(0.05),
    )
    calls: list[str] = []

    @hl.require_approval()
    async def send_email(to: str) -> str:
        calls.append(to)
        return "sent"

    reviewer_thread.decide(
        lambda approval: approval_request_approve(approval=approval, reviewer=rita),
        long_polls=False,
    )
    result = await send_email(to="ada@example.test")
    await asyncio.to_thread(reviewer_thread.join)

    assert result == "sent"
    assert calls == ["ada@example.test"]


WARNING_ID = 'id="humanlayer-no-arguments"'


def test_a_positional_call_arrives_without_arguments_and_the_page_warns(
    hl, reviewer_session, reviewer_thread
) -> None:
    pages: list[str] = []

    @hl.require_approval()
    def issue_refund(payment_id: str, amount: int) -> None:
        raise AssertionError("a denied call must not run")

    def look_then_deny(approval: ApprovalRequest) -> None:
        pages.append(reviewer_session.client.get(f"/requests/{approval.code}/").text)
        reviewer_session.post(f"/requests/{approval.code}/deny", {"reason": "No values shown."})

    reviewer_thread.decide(look_then_deny, long_polls=False)
    # HumanLayer's client sends only keyword arguments: these two never reach the console.
    issue_refund("pay_1", 4900)
    reviewer_thread.join()

    assert ApprovalRequest.objects.get().arguments == {}
    (page,) = pages
    assert WARNING_ID in page
    warning = page[page.index(WARNING_ID) :].split("</p>", 1)[0]
    assert "Warning from the console:" in warning  # the console's voice, not the agent's
    assert "agent-text" not in warning
    assert "positional arguments" in warning


def test_a_keyword_call_or_a_native_request_gets_no_such_warning(
    hl, reviewer_session, console
) -> None:
    from humanlayer import FunctionCallSpec

    hl.create_function_call(FunctionCallSpec(fn="issue_refund", kwargs={"amount": 1}))
    console.submit("ping", {})  # a native request may have no arguments: nothing is lost
    pages = [
        reviewer_session.client.get(f"/requests/{approval.code}/").text
        for approval in ApprovalRequest.objects.all()
    ]

    assert len(pages) == 2
    assert all(WARNING_ID not in page for page in pages)
