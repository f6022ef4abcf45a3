"""OpenAI Agents SDK: pause a run on a tool approval, save it, exit; resume when a reviewer decides.

    pip install "agent-approval-console-sdk[openai-agents]"
    export APPROVAL_CONSOLE_URL=http://127.0.0.1:8000 APPROVAL_CONSOLE_CREDENTIAL=acs_…
    python openai_agents_durable.py start  run.json   # runs until the refund needs approval
    python openai_agents_durable.py resume run.json   # any time later, in any process

`start` files the approval request in the console, writes the paused run (`RunState`) to a file
and exits: nothing waits in memory while a person decides. `resume` restores the run, waits for
the decision (a long poll, which returns the moment a reviewer decides; run it from a cron job, a
queue worker, or the console's webhook), approves or rejects the paused call and finishes the run.
Both steps name the run with the same `run_key`, so resuming, or resuming again after a crash,
finds the request `start` filed and never files a second one.

The model here is the Agents SDK's ScriptedModel, so the example runs offline: it asks for one
refund, then says it is done. Put your own model in `refund_agent`.
"""

import asyncio
import json
import sys
import time
from pathlib import Path

from agents.testing import ScriptedModel, assistant_message, function_call
from approval_console import AsyncConsole
from approval_console.adapters.openai_agents import ConsoleToolApprovals

from agents import Agent, Runner, RunState, function_tool, set_tracing_disabled

set_tracing_disabled(True)  # the example needs no OpenAI account


def refund_agent(gate: ConsoleToolApprovals, model: ScriptedModel) -> Agent:
    @function_tool(
        needs_approval=gate.needs_approval(
            impact="high",
            timeout="10m",
            summary=lambda call: f"Refund {call['amount']} on {call['payment_id']}",
        )
    )
    def issue_refund(payment_id: str, amount: int) -> str:
        """Refund a payment."""
        return f"refunded {amount} on {payment_id}"

    return Agent(name="refund-bot", instructions="Refund.", model=model, tools=[issue_refund])


async def start(saved: Path, run_key: str) -> None:
    async with AsyncConsole() as console:  # APPROVAL_CONSOLE_URL, APPROVAL_CONSOLE_CREDENTIAL
        gate = ConsoleToolApprovals(console, run_key=run_key)
        model = ScriptedModel(
            [
                [
                    function_call(
                        "issue_refund", {"payment_id": "pay_7", "amount": 4900}, call_id="call_1"
                    )
                ]
            ]
        )
        result = await Runner.run(refund_agent(gate, model), "Refund the duplicate on pay_7.")
        if not result.interruptions:
            print(json.dumps({"final_output": result.final_output}))
            return
        requests = await gate.submit(result)  # filed in the console; nothing waits here
        saved.write_text(json.dumps({"run_key": run_key, "state": result.to_state().to_string()}))
        print(json.dumps({"paused": True, "requests": requests}), flush=True)


async def resume(saved: Path) -> None:
    run = json.loads(saved.read_text())
    async with AsyncConsole() as console:
        gate = ConsoleToolApprovals(console, run_key=run["run_key"])
        model = ScriptedModel([[assistant_message("All done.")]])
        agent = refund_agent(gate, model)
        state = await RunState.from_string(agent, run["state"])
        print(json.dumps({"waiting": run["run_key"]}), flush=True)
        state = await gate.resolve(state)  # returns the moment the reviewers have decided
        resumed_at = time.time()  # the decision is in: the run goes on
        result = await Runner.run(agent, state)
        outputs = [
            item.get("output")
            for item in model.last_call.input  # type: ignore[union-attr]
            if isinstance(item, dict) and item.get("type") == "function_call_output"
        ]
        print(
            json.dumps(
                {
                    "final_output": result.final_output,
                    "tool_outputs": outputs,
                    "resumed_at": resumed_at,
                }
            ),
            flush=True,
        )
    saved.unlink()


if __name__ == "__main__":
    step, saved = sys.argv[1], Path(sys.argv[2])
    if step == "start":
        # The run's name in idempotency keys: a ticket, a conversation, a job id.
        run_key = sys.argv[3] if len(sys.argv) > 3 else f"refund-{time.time_ns()}"
        asyncio.run(start(saved, run_key))
    else:
        asyncio.run(resume(saved))
