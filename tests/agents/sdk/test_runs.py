"""The run context against the live console: gated calls are tied to the run and traced with
their outcomes, and the run is closed on exit, failed when the block raised."""

import asyncio
from decimal import Decimal

import pytest
from approval_console import ApprovalDenied, AsyncConsole
from asgiref.sync import sync_to_async

from agents.models import Run, TraceEvent
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_deny
from tests.agents.conftest import FAST_RETRY

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_traces_every_gated_call_and_closes_the_run(console, rita, reviewer_thread) -> None:
    @console.requires_approval(impact="high")
    def issue_refund(payment_id: str, amount: int) -> dict[str, str]:
        return {"refund": f"re_{payment_id}"}

    @console.requires_approval(impact="critical")
    def delete_records(table: str) -> None:
        raise AssertionError("must not run")

    reviewer_thread.decide(
        lambda approval: approval_request_approve(
            approval=approval, reviewer=rita, arguments={"payment_id": "pay_1", "amount": 10}
        ),
        lambda approval: approval_request_deny(approval=approval, reviewer=rita, reason="No."),
    )
    with console.run("refund-bot", external_id="ticket-7", budget=1) as run:
        run.llm_call(model="gpt-test", input_tokens=812, output_tokens=95, cost=0.25)
        assert issue_refund("pay_1", 4900) == {"refund": "re_pay_1"}
        with pytest.raises(ApprovalDenied):
            delete_records("crm_contacts")
        run.note("Told the customer.")
    reviewer_thread.join()

    stored = Run.objects.get(code=run.id)
    assert stored.status == "completed"
    assert stored.external_id == "ticket-7"
    assert stored.total_cost == Decimal("0.25")
    refund, deletion = ApprovalRequest.objects.order_by("created_at")
    assert refund.run_id == deletion.run_id == stored.pk

    events = list(TraceEvent.objects.filter(run=stored).order_by("sequence"))
    assert [event.type for event in events] == ["llm_call", "tool_call", "tool_call", "note"]
    ran, blocked = events[1].data, events[2].data
    assert ran["tool"] == "issue_refund"
    assert ran["approval"] == str(refund.code)
    assert ran["arguments"] == {"payment_id": "pay_1", "amount": 10}  # what actually ran
    assert ran["result"] == {"refund": "re_pay_1"}
    assert ran["metadata"] == {
        "approval_status": "approved",
        "arguments_changed": True,
        "ran": True,
    }
    assert blocked["approval"] == str(deletion.code)
    assert blocked["error"] == "Not run: Denied: No."
    assert blocked["metadata"]["ran"] is False


def test_it_closes_the_run_as_failed_when_the_block_raises(console) -> None:
    with (
        pytest.raises(RuntimeError, match="payment provider down"),
        console.run("refund-bot") as run,
    ):
        run.message("user", "Refund me.")
        raise RuntimeError("payment provider down")

    stored = Run.objects.get(code=run.id)
    assert stored.status == "failed"
    assert stored.close_reason == "RuntimeError: payment provider down"
    assert TraceEvent.objects.filter(run=stored).count() == 1


def test_it_records_a_gated_call_that_failed_after_approval(console, rita, reviewer_thread) -> None:
    @console.requires_approval()
    def deploy(service: str) -> None:
        raise ConnectionError("registry timeout")

    reviewer_thread.decide(
        lambda approval: approval_request_approve(approval=approval, reviewer=rita)
    )
    with pytest.raises(ConnectionError), console.run("deploy-bot") as run:
        deploy("web")
    reviewer_thread.join()

    stored = Run.objects.get(code=run.id)
    assert stored.status == "failed"
    event = TraceEvent.objects.get(run=stored)
    assert event.data["error"] == "ConnectionError: registry timeout"
    assert event.data["metadata"]["ran"] is True


def test_it_leaves_a_run_closed_early_as_it_is(console) -> None:
    with console.run("refund-bot") as run:
        run.halt("A human took over.")

    stored = Run.objects.get(code=run.id)
    assert (stored.status, stored.close_reason) == ("halted", "A human took over.")


@pytest.mark.asyncio
async def test_it_traces_gated_calls_in_an_async_run(live_console, sdk_agent, rita) -> None:
    _, token = sdk_agent
    async with AsyncConsole(live_console.url, token, retry=FAST_RETRY) as console:

        @console.requires_approval()
        async def send_email(to: str) -> str:
            return "sent"

        async def reviewer() -> None:
            for _ in range(500):
                approval = await ApprovalRequest.objects.filter(status="pending").afirst()
                if approval is not None:
                    break
                await asyncio.sleep(0.02)
            await sync_to_async(approval_request_approve)(approval=approval, reviewer=rita)

        async with console.run("mailer") as run:
            await run.note("Starting.")
            result, _ = await asyncio.gather(send_email("ada@example.test"), reviewer())

    assert result == "sent"
    stored = await Run.objects.aget(code=run.id)
    assert stored.status == "completed"
    types = [e.type async for e in TraceEvent.objects.filter(run=stored).order_by("sequence")]
    assert types == ["note", "tool_call"]
    approval = await ApprovalRequest.objects.aget()
    assert approval.run_id == stored.pk
