"""The SDK sends the agent's current trace context (W3C traceparent) with its calls, when
opentelemetry-api is importable, so the console's spans join the agent's trace: from the clients
(test_both_clients.py), and from the adapters, which ask through them. Outside any span nothing
is sent."""

from typing import Any

import pytest
from approval_console.adapters.langgraph import approval_interrupt
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_span_id, format_trace_id

from approvals.models import ApprovalRequest
from approvals.policies.models import Outcome
from tests.factories import PolicyRuleFactory

pytestmark = pytest.mark.django_db(transaction=True)

_tracer = TracerProvider().get_tracer("agent")


def _traceparent_of(span: Any) -> str:
    context = span.get_span_context()
    trace_id, span_id = format_trace_id(context.trace_id), format_span_id(context.span_id)
    return f"00-{trace_id}-{span_id}-{int(context.trace_flags):02x}"


def test_a_langgraph_node_sends_the_span_it_runs_in(console) -> None:
    PolicyRuleFactory(name="ok", position=1, tool_glob="issue_refund", outcome=Outcome.APPROVE)

    def tools(state: MessagesState) -> dict[str, Any]:
        approval_interrupt(console, "issue_refund", {"payment_id": "pay_3"}, tool_call_id="c1")
        return {"messages": [HumanMessage("done")]}

    builder = StateGraph(MessagesState)
    builder.add_node("tools", tools)
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    with _tracer.start_as_current_span("graph") as span:
        graph.invoke({"messages": []}, {"configurable": {"thread_id": "t-1"}})

    assert ApprovalRequest.objects.get().traceparent == _traceparent_of(span)
