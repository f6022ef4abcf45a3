"""A LangGraph graph whose refund step pauses until a reviewer decides in the console.

    pip install "agent-approval-console-sdk[langgraph]"
    export APPROVAL_CONSOLE_URL=http://127.0.0.1:8000 APPROVAL_CONSOLE_CREDENTIAL=acs_…
    python langgraph_refund.py pay_7 4900

The node asks with `approval_interrupt`: while the request is pending the graph stops on an
`interrupt` (Agent Inbox's HumanInterrupt shape), and `graph.invoke` returns at once, nothing
blocked inside the node. `resume_when_decided` then long-polls the console and resumes the graph
with the decision the moment a reviewer makes it. With a durable checkpointer (Postgres, SQLite)
the resume can happen in another process, later: same thread_id, same call. `run_approved`
makes the approved call and tells the console what it did (succeeded, failed, not executed).
"""

import json
import sys
import time
from typing import Any, TypedDict

from approval_console import Console
from approval_console.adapters.langgraph import (
    approval_interrupt,
    resume_when_decided,
    run_approved,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

console = Console()  # APPROVAL_CONSOLE_URL and APPROVAL_CONSOLE_CREDENTIAL


class RefundState(TypedDict, total=False):
    payment_id: str
    amount: int
    outcome: dict[str, Any]


def issue_refund(payment_id: str, amount: int) -> dict[str, Any]:
    # A real agent calls its payment provider here; an exception is reported as `failed`.
    return {"refund_id": f"re_{payment_id}", "amount": amount}


def refund(state: RefundState) -> RefundState:
    arguments = {"payment_id": state["payment_id"], "amount": state["amount"]}
    decision = approval_interrupt(
        console,
        "issue_refund",
        arguments,
        tool_call_id=f"refund-{state['payment_id']}",  # one request per call, across re-runs
        impact="high",
        summary=f"Refund {state['amount']} on {state['payment_id']}",
        timeout="10m",
    )
    if not decision.is_usable():
        return {"outcome": {"not_run": decision.status, "note": decision.note}}
    resumed_at = time.time()  # the decision is here: what the examples' test times
    # Runs once approved, with the arguments the reviewer approved (maybe changed), and reports
    # the outcome to the console.
    receipt = run_approved(console, decision, issue_refund)
    return {
        "outcome": {
            "refunded": decision.approved_arguments,
            "receipt": receipt,
            "resumed_at": resumed_at,
        }
    }


def build_graph() -> Any:
    graph = StateGraph(RefundState)
    graph.add_node("refund", refund)
    graph.add_edge(START, "refund")
    graph.add_edge("refund", END)
    # In memory for the example; interrupts need a checkpointer, and a durable one lets another
    # process resume the thread.
    return graph.compile(checkpointer=InMemorySaver())


if __name__ == "__main__":
    graph = build_graph()
    config = {"configurable": {"thread_id": f"refund-{sys.argv[1]}"}}
    result = graph.invoke({"payment_id": sys.argv[1], "amount": int(sys.argv[2])}, config)
    paused = "__interrupt__" in result
    if paused:
        # Agent Inbox's HumanInterrupt: what the graph waits on, in a shape inbox UIs render.
        (waiting,) = result["__interrupt__"][0].value
        action = waiting["action_request"]
        print(f"paused on {action['action']} {json.dumps(action['args'])}", file=sys.stderr)
        result = resume_when_decided(console, graph, config)
    print(json.dumps({**result["outcome"], "paused": paused}), flush=True)
