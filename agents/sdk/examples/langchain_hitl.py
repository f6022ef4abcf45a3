"""LangChain 1.x: an agent's risky tools wait for the console, through HumanInTheLoopMiddleware.

    pip install "agent-approval-console-sdk[langchain]"
    export APPROVAL_CONSOLE_URL=http://127.0.0.1:8000 APPROVAL_CONSOLE_CREDENTIAL=acs_…
    python langchain_hitl.py pay_7 4900             # "... pay_7 4900 per_call": per-call mode

The agent is LangChain's `create_agent`, with the middleware pausing `issue_refund` and
`send_email`. While it is paused, `hitl_review` files one console request per paused call, waits
for the reviewers' decisions (long polls: they return the moment a reviewer decides) and builds
the `Command` that resumes the middleware with them: approved calls run, with the reviewer's
arguments if they changed them; refused ones reach the model as rejections with the reviewer's
note. Once the agent ran them, `review.report_outcomes()` tells the console what each approved
call did, from its ToolMessage (or the exception, if a tool raised). (`review_hitl_interrupts`
does all of it in one call.)

The model is scripted (langchain_core's fake chat model), so the example runs offline: it asks
for a refund and an email in one turn, then says it is done. Put your own model in
`create_agent` ("openai:gpt-5", ...).
"""

import json
import sys
import time
from typing import Any

from approval_console import Console
from approval_console.adapters.langchain import hitl_review
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

console = Console()  # APPROVAL_CONSOLE_URL and APPROVAL_CONSOLE_CREDENTIAL


@tool
def issue_refund(payment_id: str, amount: int) -> str:
    """Refund a payment."""
    return f"refunded {amount} on {payment_id}"


@tool
def send_email(to: str, body: str) -> str:
    """Send an email to a customer."""
    return f"emailed {to}"


class ScriptedModel(GenericFakeChatModel):
    """Answers from a script, offline. A real chat model binds the tools instead."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedModel":
        return self


def build_agent(payment_id: str, amount: int, mode: str) -> Any:
    model = ScriptedModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        {
                            "name": "issue_refund",
                            "args": {"payment_id": payment_id, "amount": amount},
                            "id": "call_refund",
                        },
                        {
                            "name": "send_email",
                            "args": {"to": "customer@example.com", "body": "Refunded."},
                            "id": "call_email",
                        },
                    ],
                ),
                AIMessage(content="Done."),
            ]
        )
    )
    every_decision = {"allowed_decisions": ["approve", "edit", "reject"]}
    return create_agent(
        model,
        tools=[issue_refund, send_email],
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on={
                    # The description is what reviewers see as the agent's summary.
                    "issue_refund": {**every_decision, "description": f"Refund {amount}"},
                    "send_email": every_decision,
                },
                interrupt_mode=mode,
            )
        ],
        # The middleware pauses with `interrupt`, which needs a checkpointer; a durable one
        # (Postgres, SQLite) lets another process resume the thread.
        checkpointer=InMemorySaver(),
    )


if __name__ == "__main__":
    payment_id, amount = sys.argv[1], int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "batched"
    agent = build_agent(payment_id, amount, mode)
    config = {"configurable": {"thread_id": f"refund-{payment_id}"}}
    result = agent.invoke({"messages": [{"role": "user", "content": "Refund it."}]}, config)
    resumed_at = None
    while "__interrupt__" in result:
        review = hitl_review(console, agent, config, impact="high", timeout=600)
        assert review is not None  # paused on the middleware: its interrupt is the only one
        resumed_at = resumed_at or time.time()  # the decisions are here: the agent goes on
        try:
            result = agent.invoke(review.command, config)
        except Exception as error:
            review.report_outcomes(error)  # the failed call's outcome, before re-raising
            raise
        review.report_outcomes()  # succeeded (the ToolMessage), or failed (status="error")
    replies = {m.name: m.content for m in result["messages"] if isinstance(m, ToolMessage)}
    print(
        json.dumps(
            {"tools": replies, "final": result["messages"][-1].content, "resumed_at": resumed_at}
        ),
        flush=True,
    )
