"""Fixtures for SDK and compatibility tests: an agent with a credential, a Console pointed at the
live server, and a "reviewer" thread that decides the next pending request the way a person
would, while the agent code under test blocks waiting for it."""

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from approval_console import Console, RetryPolicy
from django.db import connection

from approvals.models import ApprovalRequest, Status
from tests.factories import UserFactory, agent_with_token
from tests.waits import parked_polls, wait_until

# Quick retries so outage tests take seconds, not minutes.
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2, give_up_after=2.0)


@pytest.fixture
def sdk_agent(transactional_db):
    return agent_with_token(name="refund-bot")


@pytest.fixture
def console(live_console, sdk_agent) -> Iterator[Console]:
    _, token = sdk_agent
    with Console(live_console.url, token, retry=FAST_RETRY) as client:
        yield client


@pytest.fixture
def rita(transactional_db):
    return UserFactory(username="rita")


class Reviewer:
    """Decides the next pending request of one agent from another thread."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.thread: threading.Thread | None = None
        self.errors: list[BaseException] = []
        self.decided: ApprovalRequest | None = None

    def next_pending(self, timeout: float = 60.0) -> ApprovalRequest:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # The oldest: the model's default order is newest first, and an agent that files
            # several before waiting (LangChain's middleware) had them decided in reverse.
            approval = (
                ApprovalRequest.objects.filter(agent=self.agent, status=Status.PENDING)
                .order_by("created_at", "pk")
                .first()
            )
            if approval is not None:
                return approval
            time.sleep(0.02)
        raise AssertionError("no pending request appeared")

    def agent_is_waiting(self) -> bool:
        """Whether the agent holds a long poll parked on one of its pending requests."""
        pending = ApprovalRequest.objects.filter(agent=self.agent, status=Status.PENDING)
        return any(parked_polls(code) for code in pending.values_list("code", flat=True))

    def decide(self, *actions: Callable[[ApprovalRequest], Any], long_polls: bool = True) -> None:
        """Run each action on the next pending request in turn, once the agent is waiting.

        `long_polls=False` for clients that ask again and again instead (HumanLayer's): they
        are never parked, so the decision comes as soon as the request exists.
        """

        def run() -> None:
            try:
                for action in actions:
                    approval = self.next_pending()
                    if long_polls:
                        wait_until(self.agent_is_waiting, what="the agent's long poll parking")
                    self.decided = action(approval)
            except BaseException as error:
                self.errors.append(error)
            finally:
                connection.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(timeout=40)
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def reviewer_thread(sdk_agent) -> Reviewer:
    agent, _ = sdk_agent
    return Reviewer(agent)
