"""Transient failures: retries never duplicate a request, and a console that goes away mid-wait
ends in ConsoleUnreachable without the gated function ever running."""

import threading
import time

import pytest
import uvicorn
from approval_console import Console, ConsoleApiError, ConsoleUnreachable

from approvals.models import ApprovalRequest
from tests.agents.conftest import FAST_RETRY
from tests.agents.sdk.proxy import FlakyProxy

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_retries_a_lost_response_without_a_second_request(live_console, sdk_agent) -> None:
    _, token = sdk_agent
    with (
        FlakyProxy(live_console.url) as proxy,
        Console(proxy.url, token, retry=FAST_RETRY) as console,
    ):
        proxy.drop_next = 1
        approval = console.submit("send_email", {"to": "a@example.test"}, timeout="5m")

    posts = [seen for seen in proxy.seen if seen[0] == "POST"]
    assert len(posts) == 2  # the console acted on the first; its answer was lost
    assert posts[0][2] and posts[0][2] == posts[1][2]  # one idempotency key across the retry
    assert ApprovalRequest.objects.count() == 1
    assert str(ApprovalRequest.objects.get().code) == approval.id


def test_it_honours_retry_after_on_503(live_console, sdk_agent) -> None:
    _, token = sdk_agent
    with (
        FlakyProxy(live_console.url) as proxy,
        Console(proxy.url, token, retry=FAST_RETRY) as console,
    ):
        proxy.unavailable_next = 2
        approval = console.submit("send_email", {"to": "a@example.test"})

    assert len(proxy.seen) == 3
    assert approval.is_pending
    assert ApprovalRequest.objects.count() == 1


def test_it_waits_as_long_as_a_429_asks(live_console, sdk_agent) -> None:
    _, token = sdk_agent
    with (
        FlakyProxy(live_console.url) as proxy,
        Console(proxy.url, token, retry=FAST_RETRY) as console,
    ):
        proxy.unavailable_next, proxy.unavailable_status, proxy.retry_after = 1, 429, "1"
        started = time.monotonic()
        console.submit("send_email", {"to": "a@example.test"})
        elapsed = time.monotonic() - started

    # FAST_RETRY alone would have retried after at most 0.05 s.
    assert elapsed >= 1.0
    assert len(proxy.seen) == 2
    assert ApprovalRequest.objects.count() == 1


def test_it_stops_waiting_at_its_own_timeout(console) -> None:
    approval = console.submit("send_email", {"to": "a@example.test"})

    with pytest.raises(TimeoutError):
        console.wait(approval.id, timeout=1)

    assert console.get(approval.id).is_pending


def test_it_gives_up_with_console_unreachable_when_retries_run_out(live_console, sdk_agent) -> None:
    _, token = sdk_agent
    with (
        FlakyProxy(live_console.url) as proxy,
        Console(proxy.url, token, retry=FAST_RETRY) as console,
    ):
        proxy.unavailable_next = 100
        with pytest.raises(ConsoleUnreachable, match="HTTP 503"):
            console.submit("send_email", {"to": "a@example.test"})

    assert len(proxy.seen) == FAST_RETRY.attempts
    assert ApprovalRequest.objects.count() == 0


def test_it_does_not_retry_a_refusal(console) -> None:
    with pytest.raises(ConsoleApiError) as refused:
        console.submit("send_email", {"to": "a@example.test"}, confidence=7)

    assert refused.value.status_code == 400
    assert refused.value.param == "confidence"
    assert ApprovalRequest.objects.count() == 0


def _start_server() -> tuple[uvicorn.Server, threading.Thread, str]:
    from console.asgi import application
    from tests.conftest import _free_port

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host="127.0.0.1",
            port=port,
            log_level="error",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def test_it_raises_unreachable_when_the_console_goes_away_mid_wait(
    sdk_agent, reviewer_thread, live_console
) -> None:
    _, token = sdk_agent
    server, thread, url = _start_server()
    calls: list[str] = []
    console = Console(url, token, retry=FAST_RETRY)

    @console.requires_approval(impact="critical")
    def deploy(service: str) -> None:
        calls.append(service)

    def stop(approval: ApprovalRequest) -> None:
        server.should_exit = True
        thread.join(timeout=10)

    reviewer_thread.decide(stop)
    started = time.monotonic()
    with pytest.raises(ConsoleUnreachable):
        deploy("billing-api")
    reviewer_thread.join()
    console.close()

    assert calls == []
    # The request still pending on the console: nobody decided, so nothing ran.
    assert ApprovalRequest.objects.get().status == "pending"
    assert time.monotonic() - started < 20  # gave up after give_up_after, not the 30 s poll
