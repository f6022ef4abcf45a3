"""console.ask(): a typed question to a person, through the live console, sync and async."""

import asyncio

import pytest
from approval_console import ApprovalDenied, ApprovalExpired, AsyncConsole
from asgiref.sync import sync_to_async

from approvals.models import ApprovalRequest, Kind
from approvals.services import approval_request_answer
from tests.agents.conftest import FAST_RETRY
from tests.agents.sdk.api_reviewer import deny
from tests.waits import async_wait_until, parked_polls

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "enum": ["eu-west-1", "us-east-1"]},
        "replicas": {"type": "integer", "minimum": 1},
    },
    "required": ["region", "replicas"],
}


def test_it_returns_the_answer_a_reviewer_gave(console, api_reviewer) -> None:
    api_reviewer.decide(
        lambda _request: ("answer", {"answer": {"region": "eu-west-1", "replicas": 3}})
    )
    answer = console.ask(
        "Which region for the new cluster?", answer_schema=SCHEMA, timeout="10m", impact="high"
    )
    (decided,) = api_reviewer.join()

    assert answer == {"region": "eu-west-1", "replicas": 3}
    assert decided.request["kind"] == "question"
    stored = ApprovalRequest.objects.get()
    assert (stored.kind, stored.summary, stored.impact, stored.answer_schema) == (
        Kind.QUESTION,
        "Which region for the new cluster?",
        "high",
        SCHEMA,
    )


def test_it_raises_with_the_reason_when_the_reviewer_declines(console, api_reviewer) -> None:
    api_reviewer.decide(deny("Ask the platform team, not me."))
    with pytest.raises(ApprovalDenied) as refused:
        console.ask("Which region?", answer_schema=SCHEMA, timeout="10m")
    api_reviewer.join()
    assert refused.value.reason == "Ask the platform team, not me."
    assert refused.value.decision.answer is None


def test_it_raises_when_nobody_answers_in_time(console) -> None:
    with pytest.raises(ApprovalExpired):
        console.ask("Which region?", answer_schema=SCHEMA, timeout="2s")
    assert ApprovalRequest.objects.get().status == "expired"


@pytest.mark.asyncio
async def test_it_asks_from_async_code(live_console, sdk_agent, rita) -> None:
    agent, token = sdk_agent

    async def reviewer() -> None:
        for _ in range(500):
            question = await ApprovalRequest.objects.filter(agent=agent).afirst()
            if question is not None:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("no question appeared")
        await async_wait_until(
            lambda: parked_polls(question.code) >= 1, what="the agent's long poll parking"
        )
        await sync_to_async(approval_request_answer)(
            approval=question, reviewer=rita, answer={"region": "us-east-1", "replicas": 1}
        )

    async with AsyncConsole(live_console.url, token, retry=FAST_RETRY) as console:
        answer, _ = await asyncio.gather(
            console.ask("Which region?", answer_schema=SCHEMA, timeout="10m"), reviewer()
        )
    assert answer == {"region": "us-east-1", "replicas": 1}
