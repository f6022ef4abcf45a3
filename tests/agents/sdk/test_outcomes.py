"""The SDK's decorator reports what the gated call did, against the live console: a return is
`succeeded`, a raise is `failed` (and re-raised), an approval that lapsed before the call is
`not_executed`. A report the console refuses never masks the function's own answer."""

import asyncio
import logging

import pytest
from approval_console import ApprovalExpired, AsyncConsole, run_approved
from asgiref.sync import sync_to_async

from approvals.models import ApprovalRequest, RequestOutcome
from approvals.services import approval_request_approve
from tests.agents.conftest import FAST_RETRY
from tests.agents.sdk.test_async import _next_pending
from tests.waits import async_wait_until, parked_polls

pytestmark = pytest.mark.django_db(transaction=True)


class CardDeclined(Exception):
    pass


def _approve(rita):
    return lambda approval: approval_request_approve(approval=approval, reviewer=rita)


def test_it_reports_a_raising_tool_as_failed_and_reraises(console, rita, reviewer_thread) -> None:
    @console.requires_approval()
    def charge(card: str) -> None:
        raise CardDeclined("card_declined")

    reviewer_thread.decide(_approve(rita))
    with pytest.raises(CardDeclined):
        charge("4242")
    reviewer_thread.join()

    outcome = RequestOutcome.objects.get()
    assert (outcome.status, outcome.source) == ("failed", "agent")
    assert outcome.error == "CardDeclined: card_declined"
    assert outcome.duration_ms is not None and outcome.duration_ms >= 0


def test_it_reports_a_return_as_succeeded_with_a_short_result(
    console, rita, reviewer_thread
) -> None:
    @console.requires_approval()
    def refund(payment_id: str) -> dict[str, object]:
        return {"refund": "re_1", "blob": "x" * 5000}

    reviewer_thread.decide(_approve(rita))
    assert refund("pay_1")["refund"] == "re_1"
    reviewer_thread.join()

    outcome = RequestOutcome.objects.get()
    assert outcome.status == "succeeded"
    # Too long to keep whole: a truncated text of it.
    assert isinstance(outcome.result, str) and outcome.result.startswith('{"refund": "re_1"')
    assert len(outcome.result) == 2000
    read = console.get(str(outcome.approval.code))
    assert read.outcome is not None and read.outcome["status"] == "succeeded"


def test_it_reports_not_executed_when_the_approval_lapsed_before_the_call(
    console, rita, reviewer_thread, settings
) -> None:
    settings.APPROVAL_VALIDITY_SECONDS = 0
    calls: list[str] = []

    @console.requires_approval()
    def deploy(service: str) -> None:
        calls.append(service)

    reviewer_thread.decide(_approve(rita))
    with pytest.raises(ApprovalExpired):
        deploy("web")
    reviewer_thread.join()

    assert calls == []
    outcome = RequestOutcome.objects.get()
    assert outcome.status == "not_executed" and "expired" in outcome.error


def test_a_refused_report_never_masks_the_functions_result(
    console, rita, reviewer_thread, caplog
) -> None:
    # The SDK's own level: a Celery test worker earlier in the run leaves the root logger at ERROR.
    caplog.set_level(logging.WARNING, logger="approval_console")

    @console.requires_approval()
    def refund(payment_id: str) -> str:
        # Someone already said otherwise: the console will refuse the decorator's report.
        approval = ApprovalRequest.objects.get(status="approved")
        console.report_outcome(str(approval.code), "failed", error="reported elsewhere")
        return "refunded"

    reviewer_thread.decide(_approve(rita))
    assert refund("pay_1") == "refunded"
    reviewer_thread.join()

    assert RequestOutcome.objects.get().error == "reported elsewhere"
    assert "Could not report the outcome" in caplog.text


def test_run_approved_logs_a_refused_report_where_the_docs_say(
    console, rita, reviewer_thread, caplog
) -> None:
    # docs/outcomes.md names one logger for an undelivered report, whichever way the call ran:
    # run_approved used to log on its own module's.
    caplog.set_level(logging.WARNING, logger="approval_console")
    reviewer_thread.decide(_approve(rita))
    decision = console.request_approval("refund", {"payment_id": "pay_1"})
    reviewer_thread.join()
    console.report_outcome(decision.request_id, "failed", error="reported elsewhere")

    assert run_approved(console, decision, lambda payment_id: "refunded") == "refunded"

    refused = [r for r in caplog.records if "Could not report the outcome" in r.getMessage()]
    assert [record.name for record in refused] == ["approval_console.client"]


@pytest.mark.asyncio
async def test_the_async_console_reports_a_raising_tool_as_failed(
    live_console, sdk_agent, rita
) -> None:
    agent, token = sdk_agent
    async with AsyncConsole(live_console.url, token, retry=FAST_RETRY) as console:

        @console.requires_approval()
        async def charge(card: str) -> None:
            raise CardDeclined("card_declined")

        async def reviewer() -> None:
            approval = await _next_pending(agent)
            await async_wait_until(
                lambda: parked_polls(approval.code) >= 1, what="the agent's long poll parking"
            )
            await sync_to_async(approval_request_approve)(approval=approval, reviewer=rita)

        results = await asyncio.gather(charge("4242"), reviewer(), return_exceptions=True)

    assert isinstance(results[0], CardDeclined)
    outcome = await RequestOutcome.objects.aget()
    assert (outcome.status, outcome.error) == ("failed", "CardDeclined: card_declined")
