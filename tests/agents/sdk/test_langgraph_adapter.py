"""A LangGraph agent with a scripted model: the refund tool pauses the graph on an `interrupt`
until a reviewer decides in the live console, then resumes with the decision. Offline: the model
is langchain's GenericFakeChatModel and the checkpointer is in memory."""

from typing import Any

import pytest
from approval_console import Console
from approval_console.adapters.langgraph import (
    approval_interrupt,
    pending_approvals,
    resume_when_decided,
)
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_deny

pytestmark = pytest.mark.django_db(transaction=True)


def _refund_agent(console: Console, refunds: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        {
                            "name": "issue_refund",
                            "args": {"payment_id": "pay_7", "amount": 4900},
                            "id": "call_1",
                        }
                    ],
                ),
                AIMessage(content="Done: I told the customer."),
            ]
        )
    )

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def tools(state: MessagesState) -> dict[str, Any]:
        replies = []
        for call in state["messages"][-1].tool_calls:  # type: ignore[union-attr]
            decision = approval_interrupt(
                console,
                call["name"],
                call["args"],
                impact="high",
                summary=f"Refund {call['args']['amount']} on {call['args']['payment_id']}",
            )
            if decision.is_usable():
                refunds.append(decision.approved_arguments or {})
                content = f"refunded {decision.approved_arguments}"
            else:
                content = f"not run: {decision.status}: {decision.note}"
            replies.append(ToolMessage(content=content, tool_call_id=call["id"]))
        return {"messages": replies}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END  # type: ignore[union-attr]

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", tools)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=InMemorySaver())


def test_it_pauses_on_a_pending_approval_and_resumes_with_changed_arguments(console, rita) -> None:  # type: ignore[no-untyped-def]
    refunds: list[dict[str, Any]] = []
    graph = _refund_agent(console, refunds)
    config = {"configurable": {"thread_id": "ticket-42"}}

    paused = graph.invoke({"messages": [HumanMessage("Refund the duplicate charge.")]}, config)

    assert "__interrupt__" in paused
    assert refunds == []  # nothing ran while pending
    (request_id,) = pending_approvals(graph, config).values()
    approval = ApprovalRequest.objects.get(code=request_id)
    assert approval.status == "pending"
    assert approval.summary == "Refund 4900 on pay_7"

    approval_request_approve(
        approval=approval, reviewer=rita, arguments={"payment_id": "pay_7", "amount": 2000}
    )
    final = resume_when_decided(console, graph, config)

    assert refunds == [{"payment_id": "pay_7", "amount": 2000}]
    assert final["messages"][-1].content == "Done: I told the customer."
    # Re-running the node on resume replayed the request instead of asking twice.
    assert ApprovalRequest.objects.count() == 1


def test_it_resumes_a_denial_without_running_the_tool(console, rita) -> None:  # type: ignore[no-untyped-def]
    refunds: list[dict[str, Any]] = []
    graph = _refund_agent(console, refunds)
    config = {"configurable": {"thread_id": "ticket-43"}}
    graph.invoke({"messages": [HumanMessage("Refund it.")]}, config)
    approval = ApprovalRequest.objects.get()

    approval_request_deny(approval=approval, reviewer=rita, reason="Already refunded by hand.")
    final = resume_when_decided(console, graph, config)

    assert refunds == []
    tool_reply = next(m for m in final["messages"] if isinstance(m, ToolMessage))
    assert tool_reply.content == "not run: denied: Already refunded by hand."
