"""An OpenAI Agents SDK agent whose refund tool needs the console's approval. Offline: the model is
the Agents SDK's own ScriptedModel.

Run as a script (python openai_agents_example.py URL CREDENTIAL RUNS), it prints one JSON line
per run of the agent; with `restart RUN_KEY` instead of RUNS, one line for a run saved while
paused and resolved from its restored state; with `failing`, one line for a run whose approved
tool raises (`failing-own`: a tool with its own failure_error_function); with `mcp`, one line for
a run calling an MCP server's tools (`mcp-hooks-after-resolve`: the agent's hooks assigned after
resolve). It runs in an agent
author's venv
(tests/agents/sdk/author_venv.py): the Agents SDK's top-level package is named `agents`, like
the console's Django app, so it cannot be imported beside the console; beside the installed
`approval_console` it can.
"""

import asyncio
import json
import sys
from pathlib import Path

from agents.testing import ScriptedModel, assistant_message, function_call
from approval_console import AsyncConsole, RetryPolicy
from approval_console.adapters.openai_agents import ConsoleToolApprovals

from agents import (
    Agent,
    AgentHooks,
    RunConfig,
    Runner,
    RunState,
    Tool,
    function_tool,
    set_tracing_disabled,
)

PAUSING_CALL = function_call("issue_refund", {"payment_id": "pay_7", "amount": 4900}, call_id="c1")


def refund_agent(
    gate: ConsoleToolApprovals, model: ScriptedModel, refunds: list[dict[str, object]]
) -> Agent:
    @function_tool(
        needs_approval=gate.needs_approval(
            impact="high", summary=lambda p: f"Refund {p['amount']} on {p['payment_id']}"
        )
    )
    def issue_refund(payment_id: str, amount: int) -> str:
        """Refund a payment."""
        refunds.append({"payment_id": payment_id, "amount": amount})
        return f"refunded {amount}"

    return Agent(name="refund-bot", instructions="Refund.", model=model, tools=[issue_refund])


def connect(url: str, credential: str) -> AsyncConsole:
    return AsyncConsole(url, credential, retry=RetryPolicy(attempts=3, base_delay=0.05))


async def refund_once(url: str, credential: str, run_key: str | None) -> dict[str, object]:
    """One run: pause on the refund, resolve through the console, resume."""
    set_tracing_disabled(True)
    refunds: list[dict[str, object]] = []
    console = connect(url, credential)
    gate = ConsoleToolApprovals(console, run_key=run_key)
    model = ScriptedModel([[PAUSING_CALL], [assistant_message("All done.")]])
    agent = refund_agent(gate, model, refunds)

    result = await Runner.run(agent, "Refund the duplicate charge on pay_7.")
    paused_on = [item.tool_name for item in result.interruptions]
    ran_before_decision = list(refunds)
    while result.interruptions:
        result = await Runner.run(agent, await gate.resolve(result))
    await console.aclose()

    tool_outputs = [
        item.get("output")
        for item in model.last_call.input  # type: ignore[union-attr]
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    return {
        "paused_on": paused_on,
        "ran_before_decision": ran_before_decision,
        "refunds": refunds,
        "final_output": result.final_output,
        "tool_outputs": tool_outputs,
    }


async def refund_across_a_restart(url: str, credential: str, run_key: str) -> dict[str, object]:
    """Pause and submit, save the state as a string and drop everything; then, as a new process
    would, restore the state and resolve it (twice: a retry), and resume."""
    set_tracing_disabled(True)
    refunds: list[dict[str, object]] = []

    console = connect(url, credential)
    gate = ConsoleToolApprovals(console, run_key=run_key)
    agent = refund_agent(gate, ScriptedModel([[PAUSING_CALL]]), refunds)
    result = await Runner.run(agent, "Refund the duplicate charge on pay_7.")
    submitted_first = await gate.submit(result)
    saved = result.to_state().to_string()
    await console.aclose()

    console = connect(url, credential)
    gate = ConsoleToolApprovals(console, run_key=run_key)
    agent = refund_agent(gate, ScriptedModel([[assistant_message("All done.")]]), refunds)
    submitted_again = await gate.submit(await RunState.from_string(agent, saved))
    state = await gate.resolve(await RunState.from_string(agent, saved))
    result = await Runner.run(agent, state)
    await console.aclose()
    return {
        "submitted_first": submitted_first,
        "submitted_again": submitted_again,
        "refunds": refunds,
        "final_output": result.final_output,
    }


class CardDeclined(Exception):
    pass


AGENT_TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
AGENT_SPAN_ID = 0x00F067AA0BA902B7


async def refund_declined(url: str, credential: str, own: bool) -> dict[str, object]:
    """The approved refund raises; the Agents SDK turns that into a message for the model,
    through the run's own tool_error_formatter (which the adapter must keep), or with `own`
    through the tool's own failure_error_function (which the adapter must keep too). All of it
    inside a span of the agent's (opentelemetry-api, here without an SDK): the adapter sends
    it."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    agent_span = NonRecordingSpan(
        SpanContext(AGENT_TRACE_ID, AGENT_SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    )
    with trace.use_span(agent_span):
        return await _refund_declined(url, credential, own)


def own_failure_text(context: object, error: Exception) -> str:
    return f"Declined, tell the customer: {error}"


async def _refund_declined(url: str, credential: str, own: bool) -> dict[str, object]:
    set_tracing_disabled(True)
    console = connect(url, credential)
    gate = ConsoleToolApprovals(console, run_key="ticket-declined")
    options = {"failure_error_function": own_failure_text} if own else {}

    @function_tool(needs_approval=gate.needs_approval(impact="high"), **options)
    def issue_refund(payment_id: str, amount: int) -> str:
        """Refund a payment."""
        raise CardDeclined("card_declined")

    model = ScriptedModel([[PAUSING_CALL], [assistant_message("Could not refund.")]])
    agent = Agent(name="refund-bot", instructions="Refund.", model=model, tools=[issue_refund])
    run_config = RunConfig(tool_error_formatter=lambda args: f"Refund failed: {args.error}")
    result = await Runner.run(agent, "Refund pay_7.", run_config=run_config)
    while result.interruptions:
        result = await Runner.run(agent, await gate.resolve(result), run_config=run_config)
    await console.aclose()
    tool_outputs = [
        item.get("output")
        for item in model.last_call.input  # type: ignore[union-attr]
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    return {"final_output": result.final_output, "tool_outputs": tool_outputs}


MCP_SERVER = Path(__file__).with_name("mcp_payments_server.py")


class ToolStartsSeen(AgentHooks):
    """Agent hooks of the agent's own, assigned after resolve: they replace `agent.hooks`."""

    def __init__(self) -> None:
        self.started: list[str] = []

    async def on_tool_start(self, context: object, agent: object, tool: Tool) -> None:
        self.started.append(tool.name)


async def refund_through_mcp(
    url: str, credential: str, hooks_after_resolve: bool = False
) -> dict[str, object]:
    """Two calls of an MCP server's tools, both needing approval (the server's require_approval):
    a refund that works and a void the server answers with an error result. Inside a run of the
    console's, whose trace records both. With `hooks_after_resolve`, the agent's code sets
    `agent.hooks` between resolve and the resumed run."""
    from agents.mcp import MCPServerStdio

    set_tracing_disabled(True)
    console = connect(url, credential)
    gate = ConsoleToolApprovals(console)
    payments = MCPServerStdio(
        params={"command": sys.executable, "args": [str(MCP_SERVER)]},
        name="payments",
        require_approval="always",
        cache_tools_list=False,
    )
    model = ScriptedModel(
        [
            [
                function_call(
                    "issue_refund", {"payment_id": "pay_7", "amount": 4900}, call_id="m1"
                ),
                function_call("void_charge", {"payment_id": "ch_9"}, call_id="m2"),
            ],
            [assistant_message("Refunded; the void failed.")],
        ]
    )
    async with payments, console.run("mcp-refunds") as run:
        agent = Agent(
            name="refund-bot", instructions="Refund.", model=model, mcp_servers=[payments]
        )
        result = await Runner.run(agent, "Refund pay_7 and void ch_9.")
        paused_on = sorted(item.tool_name for item in result.interruptions)
        seen = ToolStartsSeen()
        while result.interruptions:
            state = await gate.resolve(result)
            if hooks_after_resolve:
                agent.hooks = seen
            result = await Runner.run(agent, state)
    await console.aclose()
    tool_outputs = [
        item.get("output")
        for item in model.last_call.input  # type: ignore[union-attr]
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    return {
        "paused_on": paused_on,
        "final_output": result.final_output,
        # An MCP tool's output reaches the model as content blocks: their text.
        "tool_outputs": [
            "".join(block.get("text", "") for block in output)
            if isinstance(output, list)
            else output
            for output in tool_outputs
        ],
        "run": run.id,
        "hooks_saw": sorted(seen.started),
    }


if __name__ == "__main__":
    url, credential, mode = sys.argv[1:4]
    if mode in {"mcp", "mcp-hooks-after-resolve"}:
        hooks_after = mode == "mcp-hooks-after-resolve"
        print(json.dumps(asyncio.run(refund_through_mcp(url, credential, hooks_after))), flush=True)
    elif mode in {"failing", "failing-own"}:
        outcome = asyncio.run(refund_declined(url, credential, own=mode == "failing-own"))
        print(json.dumps(outcome), flush=True)
    elif mode == "restart":
        outcome = asyncio.run(refund_across_a_restart(url, credential, sys.argv[4]))
        print(json.dumps(outcome), flush=True)
    else:
        # One run key per run: the scripted model's call id is the same in every run.
        for n in range(int(mode)):
            outcome = asyncio.run(refund_once(url, credential, run_key=f"ticket-{n}"))
            print(json.dumps(outcome), flush=True)
