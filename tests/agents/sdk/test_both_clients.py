"""The protocol, once per client: Console and AsyncConsole must behave alike on the wire.

Every test here runs twice, against the live console: with Console, and with AsyncConsole driven
to completion from plain test code (`Blocking`). Retries, timeouts, error mapping, the long-poll
wait and idempotency keys are what the two clients share, so a change that keeps one of them
right and breaks the other fails here.
"""

import asyncio
import contextvars
import functools
import inspect
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from approval_console import (
    AsyncConsole,
    Console,
    ConsoleApiError,
    ConsoleUnreachable,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_span_id, format_trace_id

from agents.models import Run, TraceEvent
from approvals.models import ApprovalRequest, RequestOutcome
from approvals.services import approval_request_approve, approval_request_deny
from tests.agents.conftest import FAST_RETRY
from tests.agents.sdk.proxy import FlakyProxy

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = {"type": "object", "properties": {"region": {"type": "string"}}}


class Blocking:
    """An AsyncConsole called from plain code: each coroutine method runs to its end on one event
    loop the client keeps (its connection pool belongs to that loop), in the caller's context."""

    def __init__(self, console: AsyncConsole) -> None:
        self.console = console
        self.runner = asyncio.Runner()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.console, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        @functools.wraps(attribute)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self.drive(attribute(*args, **kwargs))

        return blocking

    def drive(self, awaitable: Any) -> Any:
        # The caller's context, as an awaiting coroutine would have it (a current span, a run).
        return self.runner.run(awaitable, context=contextvars.copy_context())

    def close(self) -> None:
        self.runner.run(self.console.aclose())
        self.runner.close()


Opener = Callable[..., Any]


@pytest.fixture(params=["Console", "AsyncConsole"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_client(kind: str) -> Iterator[Opener]:
    """open_client(url, token, **options): a Console, or an AsyncConsole behind Blocking."""
    opened: list[Any] = []

    def open_(url: str, token: str, **options: Any) -> Any:
        options.setdefault("retry", FAST_RETRY)
        client = (
            Console(url, token, **options)
            if kind == "Console"
            else Blocking(AsyncConsole(url, token, **options))
        )
        opened.append(client)
        return client

    yield open_
    for client in opened:
        client.close()


@pytest.fixture
def client(open_client: Opener, live_console, sdk_agent) -> Any:
    _, token = sdk_agent
    return open_client(live_console.url, token)


@pytest.fixture
def proxy(live_console) -> Iterator[FlakyProxy]:
    with FlakyProxy(live_console.url) as flaky:
        yield flaky


@pytest.fixture
def proxied(open_client: Opener, proxy: FlakyProxy, sdk_agent) -> Any:
    _, token = sdk_agent
    return open_client(proxy.url, token)


def _posts(proxy: FlakyProxy) -> list[tuple[str, str, str | None]]:
    return [seen for seen in proxy.seen if seen[0] == "POST"]


# --- Retries and idempotency ---------------------------------------------------------------


@pytest.mark.parametrize(
    "submit",
    [
        lambda client: client.submit("send_email", {"to": "a@example.test"}, timeout="5m"),
        lambda client: client.submit_question("Which region?", answer_schema=SCHEMA),
    ],
    ids=["submit", "submit_question"],
)
def test_a_lost_response_is_retried_with_the_same_idempotency_key(proxy, proxied, submit) -> None:
    proxy.drop_next = 1
    approval = submit(proxied)

    posts = _posts(proxy)
    assert len(posts) == 2  # the console acted on the first; its answer was lost
    assert posts[0][2] and posts[0][2] == posts[1][2]
    assert ApprovalRequest.objects.count() == 1
    assert str(ApprovalRequest.objects.get().code) == approval.id


def test_each_call_gets_a_key_of_its_own_and_a_given_key_is_sent_as_is(proxy, proxied) -> None:
    first = proxied.submit("send_email", {"to": "a@example.test"})
    second = proxied.submit("send_email", {"to": "a@example.test"})
    again = proxied.submit("send_email", {"to": "a@example.test"}, idempotency_key="mine-1")
    replayed = proxied.submit("send_email", {"to": "a@example.test"}, idempotency_key="mine-1")

    keys = [key for _, _, key in _posts(proxy)]
    assert keys[0] != keys[1] and str(uuid.UUID(keys[0] or "")) == keys[0]
    assert keys[2:] == ["mine-1", "mine-1"]
    assert first.id != second.id
    assert again.id == replayed.id
    assert ApprovalRequest.objects.count() == 3


def test_it_honours_retry_after_on_503(proxy, proxied) -> None:
    proxy.unavailable_next = 2
    approval = proxied.submit("send_email", {"to": "a@example.test"})

    assert len(proxy.seen) == 3
    assert approval.is_pending
    assert ApprovalRequest.objects.count() == 1


def test_it_waits_as_long_as_a_429_asks(proxy, proxied) -> None:
    proxy.unavailable_next, proxy.unavailable_status, proxy.retry_after = 1, 429, "1"
    started = time.monotonic()
    proxied.submit("send_email", {"to": "a@example.test"})

    assert time.monotonic() - started >= 1.0  # FAST_RETRY alone: at most 0.05 s
    assert len(proxy.seen) == 2
    assert ApprovalRequest.objects.count() == 1


def test_it_gives_up_with_console_unreachable_when_retries_run_out(proxy, proxied) -> None:
    proxy.unavailable_next = 100
    with pytest.raises(ConsoleUnreachable) as unreachable:
        proxied.submit("send_email", {"to": "a@example.test"})

    assert str(unreachable.value) == (
        f"POST {proxy.url}/api/v1/requests failed {FAST_RETRY.attempts} times; last: HTTP 503"
    )
    assert len(proxy.seen) == FAST_RETRY.attempts
    assert ApprovalRequest.objects.count() == 0


def test_it_raises_unreachable_when_nothing_listens(open_client) -> None:
    client = open_client("http://127.0.0.1:9", "aac_nothing")
    with pytest.raises(ConsoleUnreachable, match=r"failed 4 times; last: ConnectError"):
        client.get("anything")


def test_it_does_not_retry_a_refusal_and_maps_it_to_console_api_error(proxy, proxied) -> None:
    with pytest.raises(ConsoleApiError) as refused:
        proxied.submit("send_email", {"to": "a@example.test"}, confidence=7)

    assert (refused.value.status_code, refused.value.param) == (400, "confidence")
    assert refused.value.code and refused.value.message
    assert len(proxy.seen) == 1
    assert ApprovalRequest.objects.count() == 0


def test_a_bodyless_error_is_named_by_its_status(proxy, proxied) -> None:
    # A 500 with no JSON body (a proxy's own answer): not retried, its status is the code.
    proxy.unavailable_next, proxy.unavailable_status = 1, 500
    with pytest.raises(ConsoleApiError) as failed:
        proxied.submit("send_email", {"to": "a@example.test"})

    assert (failed.value.status_code, failed.value.code) == (500, "http_500")
    assert len(proxy.seen) == 1


# --- Timeouts ------------------------------------------------------------------------------


def test_a_call_held_past_http_timeout_is_retried_then_unreachable(
    open_client, proxy, sdk_agent
) -> None:
    _, token = sdk_agent
    client = open_client(proxy.url, token, http_timeout=0.2)
    proxy.hold_next, proxy.hold_seconds = 100, 1.0
    with pytest.raises(ConsoleUnreachable, match="last: ReadTimeout"):
        client.submit("send_email", {"to": "a@example.test"})

    assert len(proxy.seen) == FAST_RETRY.attempts
    assert ApprovalRequest.objects.count() == 0


def test_a_long_poll_may_outlast_http_timeout(open_client, live_console, sdk_agent) -> None:
    _, token = sdk_agent
    client = open_client(live_console.url, token, http_timeout=1, long_poll_seconds=2)
    approval = client.submit("send_email", {"to": "a@example.test"})

    started = time.monotonic()
    again = client.get(approval.id, wait=2)

    assert time.monotonic() - started >= 1.5  # held by the console, not cut at 1 s
    assert again.is_pending


def test_it_stops_waiting_at_its_own_timeout(client) -> None:
    approval = client.submit("send_email", {"to": "a@example.test"})

    with pytest.raises(TimeoutError, match=f"Approval request {approval.id} is still pending"):
        client.wait(approval.id, timeout=1)

    assert client.get(approval.id).is_pending


# --- The long-poll wait --------------------------------------------------------------------


def test_wait_returns_at_once_for_a_decided_approval_and_polls_for_an_id(
    client, proxy, proxied, rita
) -> None:
    approval = client.submit("send_email", {"to": "a@example.test"})
    approval_request_deny(
        approval=ApprovalRequest.objects.get(code=approval.id), reviewer=rita, reason="No."
    )

    decided = proxied.get(approval.id)
    assert proxied.wait(decided).note == "No."  # decided already: nothing asked
    by_id = proxied.wait(approval.id)

    assert (by_id.status, by_id.note) == ("denied", "No.")
    paths = [path for _, path, _ in proxy.seen]
    assert paths == [
        f"/api/v1/requests/{approval.id}",
        f"/api/v1/requests/{approval.id}?wait=30s",  # the default long_poll_seconds
    ]


@pytest.mark.parametrize("status", [503, 500])
def test_wait_reconnects_through_an_outage(client, proxy, proxied, rita, status) -> None:
    approval = client.submit("send_email", {"to": "a@example.test"})
    approval_request_approve(approval=ApprovalRequest.objects.get(code=approval.id), reviewer=rita)
    # 503s: retried inside one call until it gives up; a 500: a failed call. Both are outages.
    proxy.unavailable_next, proxy.unavailable_status = FAST_RETRY.attempts + 1, status

    decision = proxied.wait(approval.id)

    assert decision.status == "approved"
    assert len(proxy.seen) == FAST_RETRY.attempts + 2


@pytest.mark.parametrize("status", [503, 500])
def test_wait_gives_up_as_unreachable_after_give_up_after(client, proxy, proxied, status) -> None:
    approval = client.submit("send_email", {"to": "a@example.test"})
    proxy.unavailable_next, proxy.unavailable_status = 10_000, status

    started = time.monotonic()
    with pytest.raises(ConsoleUnreachable) as unreachable:
        proxied.wait(approval.id)

    assert FAST_RETRY.give_up_after <= time.monotonic() - started < 15
    if status == 500:
        assert str(unreachable.value).startswith("The console kept failing while waiting: ")
        assert isinstance(unreachable.value.__cause__, ConsoleApiError)
    else:
        assert "last: HTTP 503" in str(unreachable.value)


def test_wait_raises_a_refusal_at_once(client) -> None:
    started = time.monotonic()
    with pytest.raises(ConsoleApiError) as missing:
        client.wait(str(uuid.uuid4()))

    assert (missing.value.status_code, missing.value.code) == (404, "not_found")
    assert time.monotonic() - started < FAST_RETRY.give_up_after


def test_request_approval_returns_an_expiry(client) -> None:
    decision = client.request_approval("deploy", {"service": "web"}, timeout="1s")

    assert decision.status == "expired"
    assert decision.is_usable() is False


def test_ask_returns_the_answer(client, rita, reviewer_thread) -> None:
    from approvals.services import approval_request_answer

    reviewer_thread.decide(
        lambda question: approval_request_answer(
            approval=question, reviewer=rita, answer={"region": "eu"}
        )
    )
    answer = client.ask("Which region?", answer_schema=SCHEMA, timeout="10m", tool="deploy")
    reviewer_thread.join()

    assert answer == {"region": "eu"}
    assert ApprovalRequest.objects.get().tool == "deploy"


# --- Cancel and outcomes -------------------------------------------------------------------


def test_cancel_withdraws_a_pending_request(client) -> None:
    approval = client.submit("send_email", {"to": "a@example.test"})

    after = client.cancel(approval.id)

    assert after.status == "cancelled"
    assert ApprovalRequest.objects.get().status == "cancelled"


def test_cancel_returns_a_decided_request_unchanged(client, rita) -> None:
    approval = client.submit("send_email", {"to": "a@example.test"})
    approval_request_deny(
        approval=ApprovalRequest.objects.get(code=approval.id), reviewer=rita, reason="No."
    )

    after = client.cancel(approval.id)

    assert after.status == "denied"
    assert after.decision is not None and after.decision.note == "No."


def test_cancel_raises_for_an_unknown_request(client) -> None:
    with pytest.raises(ConsoleApiError) as missing:
        client.cancel(str(uuid.uuid4()))
    assert missing.value.status_code == 404


def test_report_outcome_is_idempotent_and_refuses_a_different_second_report(client, rita) -> None:
    approval = client.submit("send_email", {"to": "a@example.test"})
    approval_request_approve(approval=ApprovalRequest.objects.get(code=approval.id), reviewer=rita)

    first = client.report_outcome(approval.id, "succeeded", result={"id": 7}, duration_ms=12)
    again = client.report_outcome(approval.id, "succeeded", result={"id": 7}, duration_ms=12)
    with pytest.raises(ConsoleApiError) as refused:
        client.report_outcome(approval.id, "failed", error="boom")

    assert first.id == again.id == approval.id
    assert (refused.value.status_code, refused.value.code) == (409, "outcome_already_reported")
    assert RequestOutcome.objects.get().status == "succeeded"


# --- What every call carries ---------------------------------------------------------------

_tracer = TracerProvider().get_tracer("agent")


def test_it_sends_the_current_span_and_nothing_outside_one(client) -> None:
    with _tracer.start_as_current_span("refund step") as span:
        inside = client.submit("issue_refund", {"payment_id": "pay_1"})
    outside = client.submit("issue_refund", {"payment_id": "pay_2"})

    context = span.get_span_context()
    traceparent = (
        f"00-{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}-"
        f"{int(context.trace_flags):02x}"
    )
    assert ApprovalRequest.objects.get(code=inside.id).traceparent == traceparent
    assert ApprovalRequest.objects.get(code=outside.id).traceparent == ""


def test_the_client_names_its_url_and_never_its_credential(open_client, kind) -> None:
    client = open_client("http://console.example/", "aac_secret")
    console = client if kind == "Console" else client.console

    assert console.url == "http://console.example"
    assert repr(console) == f"{kind}('http://console.example')"
    assert console.retry is FAST_RETRY
    assert console.long_poll_seconds == 30


def test_it_takes_its_settings_from_the_environment(open_client, monkeypatch) -> None:
    monkeypatch.setenv("APPROVAL_CONSOLE_URL", "http://env.example/")
    monkeypatch.setenv("APPROVAL_CONSOLE_CREDENTIAL", "aac_env")
    assert open_client(None, None).url == "http://env.example"
    monkeypatch.delenv("APPROVAL_CONSOLE_CREDENTIAL")
    with pytest.raises(ValueError, match="needs a url and a credential"):
        open_client(None, None)


# --- Runs ----------------------------------------------------------------------------------


def test_a_run_keeps_events_the_console_could_not_take_and_sends_them_later(
    kind, proxy, proxied
) -> None:
    if kind == "Console":
        with proxied.run("refund-bot") as run:
            proxy.unavailable_next = FAST_RETRY.attempts  # the whole first append fails
            run.note("first")
            assert TraceEvent.objects.count() == 0
            run.note("second")
    else:

        async def agent() -> Any:
            async with proxied.console.run("refund-bot") as run:
                proxy.unavailable_next = FAST_RETRY.attempts
                await run.note("first")
                await run.note("second")
            return run

        run = proxied.drive(agent())

    stored = Run.objects.get(code=run.id)
    texts = [e.data["text"] for e in TraceEvent.objects.filter(run=stored).order_by("sequence")]
    assert texts == ["first", "second"]
    assert stored.status == "completed"
    appends = [key for _, path, key in _posts(proxy) if path.endswith("/events")]
    # The failed batch was resent with its own key, then the second batch with another.
    assert appends[0] == appends[FAST_RETRY.attempts] != appends[-1]


# --- What may be customised (docs/sdk.md, "Customising the clients") ------------------------


class _Recording(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        return super().handle_request(request)


class _AsyncRecording(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        return await super().handle_async_request(request)


def test_the_transport_sees_the_requests_the_client_makes_for_itself(
    open_client, kind, live_console, sdk_agent, rita
) -> None:
    # The documented way to watch or change what a client sends: a transport. The calls a client
    # makes inside its own methods (wait's long polls, cancel's re-read of a decided request)
    # pass through it, though they do not go through the public methods a subclass could override.
    _, token = sdk_agent
    recording = _Recording() if kind == "Console" else _AsyncRecording()
    client = open_client(live_console.url, token, transport=recording, long_poll_seconds=5)
    approval = client.submit("send_email", {"to": "a@example.test"})
    approval_request_deny(
        approval=ApprovalRequest.objects.get(code=approval.id), reviewer=rita, reason="No."
    )

    assert client.wait(approval.id).status == "denied"
    assert client.cancel(approval.id).status == "denied"

    path = f"/api/v1/requests/{approval.id}"
    assert recording.seen[1:] == [f"GET {path}?wait=5s", f"POST {path}/cancel?", f"GET {path}?"]


def test_leaving_the_block_closes_through_the_overridable_method(live_console, sdk_agent) -> None:
    _, token = sdk_agent
    closed: list[str] = []

    class ClosingConsole(Console):
        def close(self) -> None:
            closed.append("close")
            super().close()

    class ClosingAsyncConsole(AsyncConsole):
        async def aclose(self) -> None:
            closed.append("aclose")
            await super().aclose()

    async def leave_async_block() -> None:
        async with ClosingAsyncConsole(live_console.url, token):
            pass

    with ClosingConsole(live_console.url, token):
        pass
    asyncio.run(leave_async_block())

    assert closed == ["close", "aclose"]
