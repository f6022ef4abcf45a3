"""A LangChain 1.x agent (`create_agent`) whose refund tool is gated by the real
HumanInTheLoopMiddleware, decided in the console through approval_console.adapters.langchain.
Offline: the model is a scripted fake chat model from langchain_core.

Run in an agent author's venv (tests/agents/sdk/author_venv.py; `langchain` is not in the
console's own venv) as `python langchain_hitl_agent.py URL CREDENTIAL SCENARIO`; it prints one
JSON line: the tools that ran, the tool messages the model got, and what the scenario adds.

Scenarios:
- `no-edit`: the refund's review allows approve and reject only.
- `approve-only`: the refund's review allows approve only.
- `retry`: a first resume that gives up at once (timeout=0), then a second that waits.
- `async`: areview_hitl_interrupts with an AsyncConsole.
- `outcomes`: batched, a turn with a refund that works and a card check whose ToolException
  becomes an error message, then a turn with an email that raises through `invoke`; inside a
  run of the console's (`console.run`), whose id it prints as `run`.
- `outcomes-async`: the same in per_call mode with an AsyncConsole (areview_hitl_interrupts).
- `own-config`: `outcomes`, resumed by hand (hitl_review) with the agent's own config, not
  `review.invoke_config`, in a thread of its own.
- `own-config-async`: `outcomes-async`, resumed by hand (ahitl_review, `agent.ainvoke`) with the
  agent's own config.
"""

import asyncio
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

from approval_console import AsyncConsole, Console
from approval_console.adapters.langchain import (
    ahitl_review,
    areview_hitl_interrupts,
    hitl_resume,
    hitl_review,
    review_hitl_interrupts,
)
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import ToolException, tool
from langgraph.checkpoint.memory import InMemorySaver

RAN: list[dict[str, Any]] = []


@tool
def issue_refund(payment_id: str, amount: int) -> str:
    """Refund a payment."""
    RAN.append({"payment_id": payment_id, "amount": amount})
    return f"refunded {amount} on {payment_id}"


@tool
def check_card(payment_id: str) -> str:
    """Check the card behind a payment."""
    raise ToolException(f"card behind {payment_id} declined")


check_card.handle_tool_error = True  # the model gets the error as a ToolMessage(status="error")


@tool
def send_email(to: str, body: str) -> str:
    """Email a customer."""
    raise RuntimeError("mail server down")


class ScriptedModel(GenericFakeChatModel):
    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedModel":
        return self


def refund_agent(allowed: list[str]) -> Any:
    call = {"name": "issue_refund", "args": {"payment_id": "pay_7", "amount": 4900}, "id": "c1"}
    model = ScriptedModel(
        messages=iter([AIMessage(content="", tool_calls=[call]), AIMessage(content="Done.")])
    )
    return create_agent(
        model,
        tools=[issue_refund],
        middleware=[
            HumanInTheLoopMiddleware(interrupt_on={"issue_refund": {"allowed_decisions": allowed}})
        ],
        checkpointer=InMemorySaver(),
    )


def outcomes_agent(mode: str) -> Any:
    # The email comes in a turn of its own: a tool that raises stops its turn's other calls,
    # and LangGraph may drop what the finished ones wrote (their outcome is then unknown).
    refund = {"name": "issue_refund", "args": {"payment_id": "pay_7", "amount": 4900}, "id": "c1"}
    check = {"name": "check_card", "args": {"payment_id": "pay_7"}, "id": "c2"}
    email = {"name": "send_email", "args": {"to": "ann@example.com", "body": "Done"}, "id": "c3"}
    turns = [[refund, check], [email]]
    model = ScriptedModel(
        messages=iter(
            [*(AIMessage(content="", tool_calls=calls) for calls in turns), AIMessage("Done.")]
        )
    )
    gated = {"allowed_decisions": ["approve", "edit", "reject"]}
    return create_agent(
        model,
        tools=[issue_refund, check_card, send_email],
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on=dict.fromkeys(["issue_refund", "check_card", "send_email"], gated),
                interrupt_mode=mode,
            )
        ],
        checkpointer=InMemorySaver(),
    )


def report(result: Any, **more: Any) -> None:
    messages = [m.content for m in result["messages"] if isinstance(m, ToolMessage)]
    print(json.dumps({"ran": RAN, "tool_messages": messages, **more}), flush=True)


def run(url: str, credential: str, scenario: str) -> None:
    allowed = {"no-edit": ["approve", "reject"], "approve-only": ["approve"]}.get(
        scenario, ["approve", "edit", "reject"]
    )
    if scenario.startswith(("outcomes", "own-config")):
        agent = outcomes_agent("per_call" if scenario.endswith("-async") else "batched")
    else:
        agent = refund_agent(allowed)
    config = {"configurable": {"thread_id": f"hitl-{scenario}"}}
    paused = agent.invoke({"messages": [{"role": "user", "content": "Refund it."}]}, config)
    assert "__interrupt__" in paused
    if scenario in {"async", "outcomes-async"}:
        asyncio.run(run_async(url, credential, agent, config))
        return
    if scenario == "own-config":
        resume_by_hand(url, credential, agent, config)
        return
    if scenario == "own-config-async":
        asyncio.run(aresume_by_hand(url, credential, agent, config))
        return
    with Console(url, credential) as console:
        timed_out = False
        if scenario == "retry":
            try:
                hitl_resume(console, agent, config, impact="high", timeout=0)
            except TimeoutError:
                timed_out = True
            print(json.dumps({"timed_out": timed_out}), flush=True)
        traced = console.run(f"hitl-{scenario}") if scenario == "outcomes" else nullcontext()
        with traced as trace:
            try:
                result = review_hitl_interrupts(console, agent, config, impact="high", timeout=60)
                while "__interrupt__" in result:  # the agent's next turn paused again
                    result = review_hitl_interrupts(console, agent, config, timeout=60)
            except ValueError as error:
                still_paused = bool(agent.get_state(config).tasks)
                print(json.dumps({"ran": RAN, "error": str(error), "paused": still_paused}))
                return
            except RuntimeError as error:  # a tool's exception, through graph.invoke
                print(json.dumps({"ran": RAN, "raised": str(error), "run": trace and trace.id}))
                return
    report(result, timed_out=timed_out)


async def run_async(url: str, credential: str, agent: Any, config: Any) -> None:
    async with AsyncConsole(url, credential) as console, console.run("hitl-async") as trace:
        try:
            result = await areview_hitl_interrupts(console, agent, config, timeout=60)
            while "__interrupt__" in result:
                result = await areview_hitl_interrupts(console, agent, config, timeout=60)
        except RuntimeError as error:
            print(json.dumps({"ran": RAN, "raised": str(error), "run": trace.id}))
            return
    report(result)


def resume_by_hand(url: str, credential: str, agent: Any, config: Any) -> None:
    """Each turn: the console's decisions, then the agent resumed with its own config in a
    worker thread (which starts with a context of its own), then the outcomes reported."""
    with Console(url, credential) as console, console.run("hitl-own-config") as trace:
        result: Any = {"__interrupt__": True}
        while "__interrupt__" in result:
            review = hitl_review(console, agent, config, impact="high", timeout=60)
            assert review is not None
            with ThreadPoolExecutor(1) as worker:
                try:
                    result = worker.submit(agent.invoke, review.command, config).result()
                except RuntimeError as error:
                    review.report_outcomes(error)
                    print(json.dumps({"ran": RAN, "raised": str(error), "run": trace.id}))
                    return
            review.report_outcomes()
    report(result)


async def aresume_by_hand(url: str, credential: str, agent: Any, config: Any) -> None:
    async with AsyncConsole(url, credential) as console, console.run("hitl-own-async") as trace:
        result: Any = {"__interrupt__": True}
        while "__interrupt__" in result:
            review = await ahitl_review(console, agent, config, timeout=60)
            assert review is not None
            try:
                result = await agent.ainvoke(review.command, config)
            except RuntimeError as error:
                await review.areport_outcomes(error)
                print(json.dumps({"ran": RAN, "raised": str(error), "run": trace.id}))
                return
            await review.areport_outcomes()
    report(result)


if __name__ == "__main__":
    run(*sys.argv[1:4])
