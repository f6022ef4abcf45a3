"""AsyncConsole and gated async functions against the live console."""

import asyncio

import pytest
from approval_console import ApprovalDenied, AsyncConsole, ConsoleUnreachable
from asgiref.sync import sync_to_async

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve
from tests.agents.conftest import FAST_RETRY
from tests.waits import async_wait_until, parked_polls

pytestmark = pytest.mark.django_db(transaction=True)


async def _next_pending(agent):
    for _ in range(500):
        approval = await ApprovalRequest.objects.filter(agent=agent, status="pending").afirst()
        if approval is not None:
            return approval
        await asyncio.sleep(0.02)
    raise AssertionError("no pending request appeared")


@pytest.mark.asyncio
async def test_it_gates_an_async_function_and_runs_the_approved_arguments(
    live_console, sdk_agent, rita
) -> None:
    agent, token = sdk_agent
    calls: list[tuple[str, int]] = []
    async with AsyncConsole(live_console.url, token, retry=FAST_RETRY) as console:

        @console.requires_approval(impact="high", summary="Refund.")
        async def issue_refund(payment_id: str, amount: int) -> str:
            calls.append((payment_id, amount))
            return "done"

        async def reviewer() -> None:
            approval = await _next_pending(agent)
            await async_wait_until(
                lambda: parked_polls(approval.code) >= 1, what="the agent's long poll parking"
            )
            await sync_to_async(approval_request_approve)(
                approval=approval, reviewer=rita, arguments={"payment_id": "pay_2", "amount": 100}
            )

        result, _ = await asyncio.gather(issue_refund("pay_2", 9000), reviewer())

    assert result == "done"
    assert calls == [("pay_2", 100)]


@pytest.mark.asyncio
async def test_the_summary_callable_gets_the_bound_arguments_with_defaults(
    live_console, sdk_agent, rita
) -> None:
    # Issue 20: a default the caller left out must reach the summary callable too.
    agent, token = sdk_agent
    async with AsyncConsole(live_console.url, token, retry=FAST_RETRY) as console:

        @console.requires_approval(summary=lambda payment_id, amount: f"Refund {amount}")
        async def issue_refund(payment_id: str, amount: int = 500) -> int:
            return amount

        async def reviewer() -> ApprovalRequest:
            approval = await _next_pending(agent)
            await sync_to_async(approval_request_approve)(approval=approval, reviewer=rita)
            return approval

        result, approval = await asyncio.gather(issue_refund("pay_2"), reviewer())

    assert result == 500
    assert approval.summary == "Refund 500"


@pytest.mark.asyncio
async def test_it_raises_denied_for_an_async_function(live_console, sdk_agent, rita) -> None:
    agent, token = sdk_agent
    calls: list[str] = []
    async with AsyncConsole(live_console.url, token, retry=FAST_RETRY) as console:

        @console.requires_approval()
        async def send_email(to: str) -> None:
            calls.append(to)

        async def reviewer() -> None:
            from approvals.services import approval_request_deny

            approval = await _next_pending(agent)
            await sync_to_async(approval_request_deny)(
                approval=approval, reviewer=rita, reason="Wrong customer."
            )

        results = await asyncio.gather(
            send_email("x@example.test"), reviewer(), return_exceptions=True
        )

    assert isinstance(results[0], ApprovalDenied)
    assert results[0].reason == "Wrong customer."
    assert calls == []


@pytest.mark.asyncio
async def test_it_gates_an_async_function_with_the_sync_console(
    live_console, sdk_agent, rita
) -> None:
    from approval_console import Console

    agent, token = sdk_agent
    calls: list[str] = []
    console = Console(live_console.url, token, retry=FAST_RETRY)

    @console.requires_approval()
    async def deploy(service: str) -> None:
        calls.append(service)

    async def reviewer() -> None:
        approval = await _next_pending(agent)
        await sync_to_async(approval_request_approve)(approval=approval, reviewer=rita)

    await asyncio.gather(deploy("web"), reviewer())
    console.close()

    assert calls == ["web"]


@pytest.mark.asyncio
async def test_it_raises_unreachable_when_nothing_listens() -> None:
    calls: list[str] = []
    async with AsyncConsole("http://127.0.0.1:9", "aac_nothing", retry=FAST_RETRY) as console:

        @console.requires_approval()
        async def deploy(service: str) -> None:
            calls.append(service)

        with pytest.raises(ConsoleUnreachable):
            await deploy("web")

    assert calls == []


def test_it_refuses_to_gate_a_plain_function_with_the_async_console() -> None:
    console = AsyncConsole("http://127.0.0.1:9", "aac_nothing")
    with pytest.raises(TypeError, match="async functions"):

        @console.requires_approval()
        def deploy(service: str) -> None: ...
