"""An OpenAI Agents SDK agent whose refund tool needs the console's approval. Offline: the model is
the Agents SDK's own ScriptedModel.

Run as a script (python openai_agents_example.py URL CREDENTIAL RUNS), it prints one JSON line
per run of the agent. The Agents SDK's top-level
package is named `agents`, like this project's Django app, so the example runs in its own process
with the console SDK loaded under the name an agent author would install it as.
"""

import asyncio
import importlib.util
import json
import sys
from pathlib import Path

SDK_DIR = Path(__file__).resolve().parents[3] / "agents" / "sdk"


def _load_console_sdk() -> None:
    spec = importlib.util.spec_from_file_location(
        "approval_console_sdk", SDK_DIR / "__init__.py", submodule_search_locations=[str(SDK_DIR)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["approval_console_sdk"] = module
    spec.loader.exec_module(module)


async def refund_once(url: str, credential: str) -> dict[str, object]:
    from agents.testing import ScriptedModel, assistant_message, function_call
    from approval_console_sdk import AsyncConsole, RetryPolicy
    from approval_console_sdk.adapters.openai_agents import ConsoleToolApprovals

    from agents import Agent, Runner, function_tool, set_tracing_disabled

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
    _load_console_sdk()
    for _ in range(int(sys.argv[3])):
        print(json.dumps(asyncio.run(refund_once(sys.argv[1], sys.argv[2]))), flush=True)
