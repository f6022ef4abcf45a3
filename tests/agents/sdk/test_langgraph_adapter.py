"""A LangGraph agent with a scripted model: the refund tool pauses the graph on an `interrupt`
until a reviewer decides in the live console, then resumes with the decision. Offline: the model
is langchain's GenericFakeChatModel and the checkpointer is in memory. The real `langgraph`
package throughout; the `timeout` marks turn a node that blocks on a person into a failure."""

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from approval_console import AsyncConsole, Console
from approval_console.adapters.langchain import review_hitl_interrupts
from approval_console.adapters.langgraph import (
    aapproval_interrupt,
    approval_interrupt,
    arun_approved,
    decided_resume,
    pending_approvals,
    resume_when_decided,
    run_approved,
)
from asgiref.sync import sync_to_async
from django.db import connections
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, interrupt

from approvals.models import ApprovalRequest, RequestOutcome
from approvals.policies.models import Outcome
from approvals.services import approval_request_approve, approval_request_deny
from tests.agents.conftest import FAST_RETRY
from tests.factories import PolicyRuleFactory, UserFactory
from tests.waits import parked_polls, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


ONE_REFUND = [
    {"name": "issue_refund", "args": {"payment_id": "pay_7", "amount": 4900}, "id": "call_1"}
]


def _refund_agent(
    console: Console, refunds: list[dict[str, Any]], tool_calls: list[dict[str, Any]] = ONE_REFUND
):
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(content="", tool_calls=tool_calls),
                AIMessage(content="Done: I told the customer."),
            ]
        )
    )

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def tools(state: MessagesState) -> dict[str, Any]:
        calls = state["messages"][-1].tool_calls
        # Every approval first, then the calls: LangGraph re-runs the node from the top on each
        # resume, so a call made between two approvals would run again.
        decisions = [
            approval_interrupt(
                console,
                call["name"],
                call["args"],
                tool_call_id=call["id"],
                impact="high",
                summary=f"Refund {call['args']['amount']} on {call['args']['payment_id']}",
            )
            for call in calls
        ]
        replies = []
        for call, decision in zip(calls, decisions, strict=True):
            if decision.is_usable():
                refunds.append(decision.approved_arguments or {})
                content = f"refunded {decision.approved_arguments}"
            else:
                content = f"not run: {decision.status}: {decision.note}"
            replies.append(ToolMessage(content=content, tool_call_id=call["id"]))
        return {"messages": replies}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", tools)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=InMemorySaver())


def test_it_pauses_on_a_pending_approval_and_resumes_with_changed_arguments(console, rita) -> None:
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


def test_it_resumes_a_denial_without_running_the_tool(console, rita) -> None:
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


TWO_REFUNDS = [
    {"name": "issue_refund", "args": {"payment_id": "pay_7", "amount": 4900}, "id": "call_1"},
    {"name": "issue_refund", "args": {"payment_id": "pay_8", "amount": 1500}, "id": "call_2"},
]


def _pending(amount: int) -> ApprovalRequest:
    return ApprovalRequest.objects.get(status="pending", arguments__amount=amount)


@pytest.mark.timeout(60)
def test_two_approvals_in_one_node_each_resume_with_their_own_decision(console, rita) -> None:
    refunds: list[dict[str, Any]] = []
    graph = _refund_agent(console, refunds, TWO_REFUNDS)
    config = {"configurable": {"thread_id": "ticket-44"}}

    graph.invoke({"messages": [HumanMessage("Refund both charges.")]}, config)
    first = _pending(4900)
    approval_request_approve(approval=first, reviewer=rita)

    # The first decision resumes the graph; the node pauses again on the second call instead of
    # handing the first decision to it (or blocking until somebody decides it).
    paused = resume_when_decided(console, graph, config, timeout=10)

    assert "__interrupt__" in paused
    assert refunds == []  # the node has not finished: nothing ran twice or early
    second = _pending(1500)
    assert list(pending_approvals(graph, config).values()) == [str(second.code)]
    approval_request_deny(approval=second, reviewer=rita, reason="Not this one.")

    final = resume_when_decided(console, graph, config, timeout=10)

    assert refunds == [{"payment_id": "pay_7", "amount": 4900}]
    replies = {m.tool_call_id: m.content for m in final["messages"] if isinstance(m, ToolMessage)}
    assert replies["call_1"].startswith("refunded ")
    assert replies["call_2"] == "not run: denied: Not this one."
    assert ApprovalRequest.objects.count() == 2


@pytest.mark.timeout(60)
def test_two_calls_with_the_same_arguments_are_two_requests(console, rita) -> None:
    refunds: list[dict[str, Any]] = []
    same = {"payment_id": "pay_9", "amount": 100}
    calls = [
        {"name": "issue_refund", "args": same, "id": "call_a"},
        {"name": "issue_refund", "args": same, "id": "call_b"},
    ]
    graph = _refund_agent(console, refunds, calls)
    config = {"configurable": {"thread_id": "ticket-45"}}

    graph.invoke({"messages": [HumanMessage("Refund twice.")]}, config)
    approval_request_approve(approval=ApprovalRequest.objects.get(), reviewer=rita)
    resume_when_decided(console, graph, config, timeout=10)

    # One approval never covers two calls: the second call is a request of its own, pending.
    assert ApprovalRequest.objects.count() == 2
    assert ApprovalRequest.objects.filter(status="pending").count() == 1
    assert refunds == []


@pytest.mark.timeout(60)
def test_a_resume_sent_while_pending_pauses_again_instead_of_blocking(console, rita) -> None:
    refunds: list[dict[str, Any]] = []
    graph = _refund_agent(console, refunds)
    config = {"configurable": {"thread_id": "ticket-46"}}
    graph.invoke({"messages": [HumanMessage("Refund it.")]}, config)

    again = graph.invoke(Command(resume="approve it already"), config)

    assert "__interrupt__" in again
    approval = ApprovalRequest.objects.get()
    assert approval.status == "pending"
    assert refunds == []
    assert list(pending_approvals(graph, config).values()) == [str(approval.code)]

    approval_request_approve(approval=approval, reviewer=rita)
    final = resume_when_decided(console, graph, config, timeout=10)

    assert refunds == [{"payment_id": "pay_7", "amount": 4900}]
    assert final["messages"][-1].content == "Done: I told the customer."


@pytest.mark.timeout(60)
def test_a_resume_that_claims_a_decision_the_console_did_not_make_runs_nothing(console) -> None:
    refunds: list[dict[str, Any]] = []
    graph = _refund_agent(console, refunds)
    config = {"configurable": {"thread_id": "ticket-47"}}
    graph.invoke({"messages": [HumanMessage("Refund it.")]}, config)
    ((interrupt_id, request_id),) = pending_approvals(graph, config).items()

    final = graph.invoke(
        Command(resume={interrupt_id: {"approval_request_id": request_id, "status": "approved"}}),
        config,
    )

    assert refunds == []
    tool_reply = next(m for m in final["messages"] if isinstance(m, ToolMessage))
    assert tool_reply.content.startswith("not run: pending: ")


def test_the_interrupt_is_an_agent_inbox_human_interrupt(console) -> None:
    graph = _refund_agent(console, [])
    config = {"configurable": {"thread_id": "ticket-48"}}

    paused = graph.invoke({"messages": [HumanMessage("Refund it.")]}, config)

    (value,) = [i.value for i in paused["__interrupt__"]]
    (request,) = value  # Agent Inbox's interrupt([request]) convention: a list of one
    approval = ApprovalRequest.objects.get()
    assert request["action_request"] == {
        "action": "issue_refund",
        "args": {"payment_id": "pay_7", "amount": 4900},
    }
    assert request["config"] == {
        "allow_accept": True,
        "allow_edit": True,
        "allow_respond": True,
        "allow_ignore": True,
    }
    assert str(approval.code) in request["description"]
    assert request["approval_console"]["approval_request_id"] == str(approval.code)


@pytest.mark.timeout(30)
def test_resume_when_decided_gives_up_after_its_timeout(console) -> None:
    graph = _refund_agent(console, [])
    config = {"configurable": {"thread_id": "ticket-49"}}
    graph.invoke({"messages": [HumanMessage("Refund it.")]}, config)

    with pytest.raises(TimeoutError):
        resume_when_decided(console, graph, config, timeout=1)

    assert ApprovalRequest.objects.get().status == "pending"


def _hitl_graph(runs: list[tuple[str, dict[str, Any]]]):
    """A node that pauses the way LangChain 1.x's HumanInTheLoopMiddleware does (its interrupt
    and resume shapes); `langchain` itself is not in the console's venv: test_langchain_hitl.py
    runs the real middleware in an agent author's venv."""

    actions = [
        {"name": "send_email", "args": {"to": "a@example.com"}, "description": "Review"},
        {"name": "delete_file", "args": {"path": "drafts/old.txt"}, "description": "Review"},
    ]

    def tools(state: MessagesState) -> dict[str, Any]:
        response = interrupt(
            {
                "action_requests": actions,
                "review_configs": [
                    {"action_name": a["name"], "allowed_decisions": ["approve", "edit", "reject"]}
                    for a in actions
                ],
            }
        )
        replies = []
        for action, decision in zip(actions, response["decisions"], strict=True):
            if decision["type"] == "approve":
                runs.append((action["name"], action["args"]))
            elif decision["type"] == "edit":
                runs.append((action["name"], decision["edited_action"]["args"]))
            replies.append(HumanMessage(f"{action['name']}: {decision['type']}"))
        return {"messages": replies}

    graph = StateGraph(MessagesState)
    graph.add_node("tools", tools)
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    return graph.compile(checkpointer=InMemorySaver())


@pytest.mark.timeout(60)
def test_the_console_decides_for_the_human_in_the_loop_middleware(console, reviewer_thread) -> None:
    runs: list[tuple[str, dict[str, Any]]] = []
    graph = _hitl_graph(runs)
    config = {"configurable": {"thread_id": "hitl-1"}}
    graph.invoke({"messages": [HumanMessage("Tidy up.")]}, config)
    reviewer = UserFactory(username="rhea")
    reviewer_thread.decide(
        lambda a: approval_request_approve(
            approval=a, reviewer=reviewer, arguments={"to": "b@example.com"}
        ),
        lambda a: approval_request_deny(approval=a, reviewer=reviewer, reason="Keep it."),
    )

    final = review_hitl_interrupts(console, graph, config, timeout=30)
    reviewer_thread.join()

    assert runs == [("send_email", {"to": "b@example.com"})]
    assert [m.content for m in final["messages"][-2:]] == [
        "send_email: edit",
        "delete_file: reject",
    ]
    assert ApprovalRequest.objects.count() == 2


def test_a_call_the_policy_approves_runs_without_pausing(console) -> None:
    PolicyRuleFactory(
        name="small refunds", position=1, tool_glob="issue_refund", outcome=Outcome.APPROVE
    )
    refunds: list[dict[str, Any]] = []
    graph = _refund_agent(console, refunds, TWO_REFUNDS)
    config = {"configurable": {"thread_id": "ticket-50"}}

    final = graph.invoke({"messages": [HumanMessage("Refund both.")]}, config)

    assert "__interrupt__" not in final
    assert [r["payment_id"] for r in refunds] == ["pay_7", "pay_8"]
    assert pending_approvals(graph, config) == {}


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_an_async_node_takes_two_approvals_without_blocking(
    live_console, sdk_agent, console, rita
) -> None:
    _, token = sdk_agent
    refunds: list[str] = []
    async with AsyncConsole(live_console.url, token, retry=FAST_RETRY) as aconsole:

        async def tools(state: MessagesState) -> dict[str, Any]:
            decisions = [
                await aapproval_interrupt(
                    aconsole, call["name"], call["args"], tool_call_id=call["id"]
                )
                for call in TWO_REFUNDS
            ]
            refunds.extend(
                call["args"]["payment_id"]
                for call, decision in zip(TWO_REFUNDS, decisions, strict=True)
                if decision.is_usable()
            )
            return {"messages": [HumanMessage("done")]}

        builder = StateGraph(MessagesState)
        builder.add_node("tools", tools)
        builder.add_edge(START, "tools")
        builder.add_edge("tools", END)
        graph = builder.compile(checkpointer=InMemorySaver())
        config: RunnableConfig = {"configurable": {"thread_id": "async-1"}}

        async def decide_next(action: Any) -> Any:
            approval = await sync_to_async(ApprovalRequest.objects.get)(status="pending")
            await sync_to_async(action)(approval=approval, reviewer=rita)
            return await sync_to_async(decided_resume)(console, graph, config)

        await graph.ainvoke({"messages": [HumanMessage("Refund both.")]}, config)
        paused = await graph.ainvoke(await decide_next(approval_request_approve), config)
        assert "__interrupt__" in paused
        assert refunds == []
        final = await graph.ainvoke(
            await decide_next(lambda **kw: approval_request_deny(**kw, reason="No.")),
            config,
        )

    assert "__interrupt__" not in final
    assert refunds == ["pay_7"]


class _DecideWhen(threading.Thread):
    """A reviewer in another thread: `decide()` once the agent's long polls are `parked()`."""

    def __init__(self, parked: Callable[[], bool], decide: Callable[[], object]) -> None:
        super().__init__()
        self.parked, self.decide = parked, decide
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            wait_until(self.parked, what="the agent's long polls parking")
            self.decide()
        except BaseException as error:
            self.error = error
        finally:
            connections.close_all()

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error


class _Recorded(httpx.HTTPTransport):
    """The console's HTTP exchanges, as (method, path) in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        return super().handle_request(request)


@pytest.mark.timeout(60)
def test_the_resumed_node_asks_the_console_nothing_more(live_console, sdk_agent, rita) -> None:
    # The decision reaches the node without a round trip after the long poll's answer: the
    # re-run neither files its request again nor reads the decision again (latency, issue 20).
    _, token = sdk_agent
    recorded = _Recorded()
    with Console(live_console.url, token, retry=FAST_RETRY, transport=recorded) as console:
        refunds: list[dict[str, Any]] = []
        graph = _refund_agent(console, refunds)
        config = {"configurable": {"thread_id": "ticket-51"}}
        graph.invoke({"messages": [HumanMessage("Refund it.")]}, config)
        approval = ApprovalRequest.objects.get()
        del recorded.calls[:]
        deciding = _DecideWhen(
            lambda: parked_polls(approval.code) == 1,
            lambda: approval_request_approve(approval=approval, reviewer=rita),
        )

        resume_when_decided(console, graph, config, timeout=30)
        deciding.join()

    assert refunds == [{"payment_id": "pay_7", "amount": 4900}]
    path = f"/api/v1/requests/{approval.code}"
    # A read (still pending), the long poll that the decision ends; then nothing.
    assert recorded.calls == [("GET", path), ("GET", path)]


def _two_branches(console: Console, refunds: list[str]):
    """Two nodes that run in parallel, each pausing on its own approval: two pending at once."""

    def refund(payment_id: str):
        def node(state: MessagesState) -> dict[str, Any]:
            call = {"payment_id": payment_id, "amount": 100}
            decision = approval_interrupt(
                console, "issue_refund", call, tool_call_id=f"call-{payment_id}"
            )
            if decision.is_usable():
                refunds.append(payment_id)
            return {"messages": [HumanMessage(f"{payment_id}: {decision.status}")]}

        return node

    builder = StateGraph(MessagesState)
    builder.add_node("refund_a", refund("pay_a"))
    builder.add_node("refund_b", refund("pay_b"))
    builder.add_edge(START, "refund_a")
    builder.add_edge(START, "refund_b")
    builder.add_edge("refund_a", END)
    builder.add_edge("refund_b", END)
    return builder.compile(checkpointer=InMemorySaver())


@pytest.mark.timeout(60)
def test_a_decision_on_any_pending_request_wakes_the_resume(console, rita) -> None:
    # Every pending request is long-polled at once: a decision on the second one ends the wait
    # the moment it is made, not when a poll on the first runs out.
    refunds: list[str] = []
    graph = _two_branches(console, refunds)
    config = {"configurable": {"thread_id": "ticket-52"}}
    graph.invoke({"messages": [HumanMessage("Refund both.")]}, config)
    assert len(set(pending_approvals(graph, config).values())) == 2
    second = ApprovalRequest.objects.get(arguments__payment_id="pay_b")
    first = ApprovalRequest.objects.get(arguments__payment_id="pay_a")

    deciding = _DecideWhen(
        lambda: parked_polls(first.code) == 1 and parked_polls(second.code) == 1,
        lambda: approval_request_approve(approval=second, reviewer=rita),
    )
    paused = resume_when_decided(console, graph, config, timeout=20)
    deciding.join()

    assert refunds == ["pay_b"]
    assert "__interrupt__" in paused  # still paused on the first, undecided
    assert list(pending_approvals(graph, config).values()) == [str(first.code)]


# --- outcomes: the node runs the approved tool with run_approved, which reports what it did ---


class CardDeclined(Exception):
    pass


def _charging_agent(console: Console, charged: list[str]):
    """Two refunds in one node: pay_8's card is declined. Every approval first, then the calls,
    each through run_approved; a failure becomes the tool's reply."""

    def issue_refund(payment_id: str, amount: int) -> dict[str, Any]:
        if payment_id == "pay_8":
            raise CardDeclined("card_declined")
        charged.append(payment_id)
        return {"refund": f"re_{payment_id}", "amount": amount}

    def tools(state: MessagesState) -> dict[str, Any]:
        decisions = [
            approval_interrupt(console, call["name"], call["args"], tool_call_id=call["id"])
            for call in TWO_REFUNDS
        ]
        replies = []
        for call, decision in zip(TWO_REFUNDS, decisions, strict=True):
            try:
                content = str(run_approved(console, decision, issue_refund))
            except Exception as error:
                content = f"not done: {error!r}"
            replies.append(ToolMessage(content=content, tool_call_id=call["id"]))
        return {"messages": replies}

    graph = StateGraph(MessagesState)
    graph.add_node("tools", tools)
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    return graph.compile(checkpointer=InMemorySaver())


def _outcomes() -> dict[str, RequestOutcome]:
    return {
        outcome.approval.arguments["payment_id"]: outcome
        for outcome in RequestOutcome.objects.select_related("approval")
    }


@pytest.mark.timeout(60)
def test_run_approved_reports_what_each_approved_tool_did(console, rita) -> None:
    charged: list[str] = []
    graph = _charging_agent(console, charged)
    config = {"configurable": {"thread_id": "outcomes-1"}}
    graph.invoke({"messages": [HumanMessage("Refund both.")]}, config)
    approval_request_approve(approval=_pending(4900), reviewer=rita)
    resume_when_decided(console, graph, config, timeout=10)
    approval_request_approve(approval=_pending(1500), reviewer=rita)

    final = resume_when_decided(console, graph, config, timeout=10)

    assert charged == ["pay_7"]
    replies = [m.content for m in final["messages"] if isinstance(m, ToolMessage)]
    assert replies[1] == "not done: CardDeclined('card_declined')"
    outcomes = _outcomes()
    assert (outcomes["pay_7"].status, outcomes["pay_7"].source) == ("succeeded", "agent")
    assert outcomes["pay_7"].result == {"refund": "re_pay_7", "amount": 4900}
    assert outcomes["pay_7"].duration_ms is not None
    assert (outcomes["pay_8"].status, outcomes["pay_8"].error) == (
        "failed",
        "CardDeclined: card_declined",
    )


def test_run_approved_reports_an_approval_that_lapsed_as_not_executed(console, settings) -> None:
    settings.APPROVAL_VALIDITY_SECONDS = 0
    PolicyRuleFactory(name="refunds", position=1, tool_glob="issue_refund", outcome=Outcome.APPROVE)
    charged: list[str] = []
    graph = _charging_agent(console, charged)

    final = graph.invoke(
        {"messages": [HumanMessage("Refund both.")]}, {"configurable": {"thread_id": "o-2"}}
    )

    assert charged == []
    replies = [m.content for m in final["messages"] if isinstance(m, ToolMessage)]
    assert all(reply.startswith("not done: ApprovalExpired(") for reply in replies)
    outcomes = _outcomes()
    assert {o.status for o in outcomes.values()} == {"not_executed"}
    assert "expired before the call started" in outcomes["pay_7"].error


def test_run_approved_reports_nothing_for_a_denial(console, rita) -> None:
    graph = _charging_agent(console, [])
    config = {"configurable": {"thread_id": "o-3"}}
    graph.invoke({"messages": [HumanMessage("Refund both.")]}, config)
    approval_request_deny(approval=_pending(4900), reviewer=rita, reason="No.")
    resume_when_decided(console, graph, config, timeout=10)
    approval_request_deny(approval=_pending(1500), reviewer=rita, reason="No.")

    final = resume_when_decided(console, graph, config, timeout=10)

    replies = [m.content for m in final["messages"] if isinstance(m, ToolMessage)]
    assert all(reply.startswith("not done: ApprovalDenied(") for reply in replies)
    assert RequestOutcome.objects.count() == 0


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_arun_approved_reports_from_an_async_node(live_console, sdk_agent) -> None:
    _, token = sdk_agent
    await sync_to_async(PolicyRuleFactory)(
        name="refunds", position=1, tool_glob="issue_refund", outcome=Outcome.APPROVE
    )

    async def issue_refund(payment_id: str, amount: int) -> str:
        if payment_id == "pay_8":
            raise CardDeclined("card_declined")
        return f"refunded {amount}"

    async with AsyncConsole(live_console.url, token, retry=FAST_RETRY) as aconsole:

        async def tools(state: MessagesState) -> dict[str, Any]:
            for call in TWO_REFUNDS:
                decision = await aapproval_interrupt(
                    aconsole, call["name"], call["args"], tool_call_id=call["id"]
                )
                with contextlib.suppress(CardDeclined):
                    await arun_approved(aconsole, decision, issue_refund)
            return {"messages": [HumanMessage("done")]}

        builder = StateGraph(MessagesState)
        builder.add_node("tools", tools)
        builder.add_edge(START, "tools")
        builder.add_edge("tools", END)
        graph = builder.compile(checkpointer=InMemorySaver())
        await graph.ainvoke(
            {"messages": [HumanMessage("Refund both.")]}, {"configurable": {"thread_id": "a-9"}}
        )

    outcomes = await sync_to_async(_outcomes)()
    assert (outcomes["pay_7"].status, outcomes["pay_7"].result) == ("succeeded", "refunded 4900")
    assert (outcomes["pay_8"].status, outcomes["pay_8"].error) == (
        "failed",
        "CardDeclined: card_declined",
    )
