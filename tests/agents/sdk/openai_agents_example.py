"""An OpenAI Agents SDK agent whose refund tool needs the console's approval. Offline: the model is
the Agents SDK's own ScriptedModel.

Run as a script (python openai_agents_example.py URL CREDENTIAL RUNS), it prints one JSON line
per run of the agent. It runs in an agent author's venv (tests/agents/sdk/author_venv.py): the
Agents SDK's top-level package is named `agents`, like the console's Django app, so it cannot be
imported beside the console; beside the installed `approval_console` it can.
"""

import asyncio
import json
import sys

from agents.testing import ScriptedModel, assistant_message, function_call
from approval_console import AsyncConsole, RetryPolicy
from approval_console.adapters.openai_agents import ConsoleToolApprovals

from agents import Agent, Runner, function_tool, set_tracing_disabled


async def refund_once(url: str, credential: str) -> dict[str, object]:
    set_tracing_disabled(True)
    refunds: list[dict[str, object]] = []
    console = AsyncConsole(url, credential, retry=RetryPolicy(attempts=3, base_delay=0.05))
    gate = ConsoleToolApprovals(console)

    @function_tool(
        needs_approval=gate.needs_approval(
            impact="high", summary=lambda p: f"Refund {p['amount']} on {p['payment_id']}"
        )
    )
    def issue_refund(payment_id: str, amount: int) -> str:
        """Refund a payment."""
        refunds.append({"payment_id": payment_id, "amount": amount})
        return f"refunded {amount}"

    model = ScriptedModel(
        [
            [function_call("issue_refund", {"payment_id": "pay_7", "amount": 4900}, call_id="c1")],
            [assistant_message("All done.")],
        ]
    )
    agent = Agent(name="refund-bot", instructions="Refund.", model=model, tools=[issue_refund])

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


if __name__ == "__main__":
    for _ in range(int(sys.argv[3])):
        print(json.dumps(asyncio.run(refund_once(sys.argv[1], sys.argv[2]))), flush=True)
