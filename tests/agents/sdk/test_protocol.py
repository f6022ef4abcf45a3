"""The protocol core without I/O: a plan says what to send and when to pause, and is handed the
answers. No server, no clock: what the clients only carry out, read step by step."""

from dataclasses import dataclass, field

import httpx
import pytest
from approval_console import ConsoleApiError, ConsoleUnreachable, RetryPolicy
from approval_console._protocol import LONG_POLL_SECONDS, Running, Send, Sleep, get, send


@dataclass
class Settings:
    url: str = "http://console.test"
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(attempts=3, base_delay=0.1, max_delay=0.4)
    )
    long_poll_seconds: int = LONG_POLL_SECONDS


def test_a_retry_resends_the_same_request_after_the_pause_the_console_asked_for() -> None:
    plan = send(Settings(), "POST", "/api/v1/requests", json={}, headers={"Idempotency-Key": "k"})

    first = next(plan)
    assert isinstance(first, Send) and first.headers["Idempotency-Key"] == "k"
    assert plan.send(httpx.Response(503, headers={"Retry-After": "2"})) == Sleep(2.0)
    assert plan.send(None) == first
    with pytest.raises(StopIteration) as done:
        plan.send(httpx.Response(201, json={"id": "r1"}))
    assert done.value.value == {"id": "r1"}


def test_a_transport_error_thrown_in_is_retried_then_unreachable() -> None:
    running = Running(send(Settings(), "GET", "/api/v1/requests/r1"))
    steps = []
    with pytest.raises(ConsoleUnreachable, match="failed 3 times; last: ConnectError: refused"):
        while (step := running.next_step()) is not None:
            steps.append(step)
            if isinstance(step, Send):
                running.fail(httpx.ConnectError("refused"))
    assert [type(step) for step in steps] == [Send, Sleep, Send, Sleep, Send]


def test_a_refusal_is_raised_at_once_with_the_consoles_error() -> None:
    plan = send(Settings(), "POST", "/api/v1/requests", json={"confidence": 7})
    next(plan)
    body = {"error": {"code": "invalid", "message": "No.", "param": "confidence"}}
    with pytest.raises(ConsoleApiError) as refused:
        plan.send(httpx.Response(400, json=body))
    assert (refused.value.status_code, refused.value.param) == (400, "confidence")


def test_a_long_poll_says_so() -> None:
    step = next(get(Settings(), "r1", wait=5))
    assert step == Send("GET", "/api/v1/requests/r1", params={"wait": "5s"}, long_poll=True)
