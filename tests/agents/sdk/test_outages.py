"""A console that goes away mid-wait ends in ConsoleUnreachable without the gated function ever
running. (Retries, Retry-After, refusals and the wait's own timeout, for both clients:
test_both_clients.py.)"""

import threading
import time

import pytest
import uvicorn
from approval_console import Console, ConsoleUnreachable

from approvals.models import ApprovalRequest
from tests.agents.conftest import FAST_RETRY

pytestmark = pytest.mark.django_db(transaction=True)


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
