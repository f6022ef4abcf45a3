"""A reviewer who decides through the reviewer REST API (/api/v1/reviewer/), from a thread, while
an example runs in a subprocess: the way a team's own tool, or a person's click, reaches the
console. It keeps the console's `decided_at` of each decision, so a test can measure how long the
example took to resume after it."""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from tests.waits import parked_polls, wait_until

# An action gets the pending request (the API's JSON) and returns (verb, body) to POST.
Action = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]


def approve(note: str = "") -> Action:
    # `confirm` names the tool, as a person who read the request confirms it: the API refuses a
    # high- or critical-impact approval without it.
    return lambda request: (
        "approve",
        {"confirm": request["tool"], **({"note": note} if note else {})},
    )


def approve_with(arguments: dict[str, Any], note: str = "") -> Action:
    return lambda request: (
        "approve",
        {"arguments": arguments, "note": note, "confirm": request["tool"]},
    )


def deny(reason: str) -> Action:
    return lambda _request: ("deny", {"reason": reason})


def by_tool(actions: dict[str, Action]) -> Action:
    """The action for the request's tool: for agents that file several requests at once, whose
    order in the reviewer's queue the test does not fix."""
    return lambda request: actions[request["tool"]](request)


@dataclass(frozen=True)
class Decided:
    request: dict[str, Any]  # the request as the API answered the decision
    decided_at: float  # the console's own timestamp, seconds since the epoch

    @property
    def status(self) -> str:
        return str(self.request["status"])


class ApiReviewer:
    def __init__(self, console_url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=f"{console_url}/api/v1/reviewer",
            headers={"Authorization": f"Token {token}"},
            timeout=30,
        )
        self.decided: list[Decided] = []
        self.errors: list[BaseException] = []
        self.thread: threading.Thread | None = None

    def next_pending(self, seen: set[str], timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.http.get("/requests", params={"state": "pending"})
            response.raise_for_status()
            fresh = [item for item in response.json()["data"] if item["id"] not in seen]
            if fresh:
                return fresh[0]
            time.sleep(0.02)
        raise AssertionError("no pending request appeared in the reviewer API")

    def pending_ids(self) -> list[str]:
        response = self.http.get("/requests", params={"state": "pending"})
        response.raise_for_status()
        return [item["id"] for item in response.json()["data"]]

    def until_agent_waits(self) -> None:
        """Until the agent holds a long poll parked on one of the pending requests, in the live
        console (which runs in this process: its parked polls can be counted, no API call)."""
        pending = self.pending_ids()
        # Generous: the first example of a session starts a fresh interpreter that imports its
        # framework before it asks.
        wait_until(
            lambda: any(parked_polls(code) for code in pending),
            timeout=90,
            what="the agent's long poll parking",
        )

    def decide(self, *actions: Action, long_polls: bool = True, after: float = 0.3) -> None:
        """Run each action on the next new pending request in turn, once the agent waits: from
        the moment one of its long polls is parked, so what a test measures from the decision
        is how fast the decision reaches the agent, not how long the agent took to start
        waiting. `long_polls=False` for a client that polls instead (HumanLayer's): decide
        `after` seconds."""

        def run() -> None:
            seen: set[str] = set()
            try:
                for action in actions:
                    request = self.next_pending(seen)
                    seen.add(request["id"])
                    if long_polls:
                        self.until_agent_waits()
                    else:
                        time.sleep(after)
                    verb, body = action(request)
                    response = self.http.post(f"/requests/{request['id']}/{verb}", json=body)
                    assert response.status_code == 200, response.text
                    decided = response.json()
                    decided_at = datetime.fromisoformat(decided["decision"]["decided_at"])
                    self.decided.append(Decided(decided, decided_at.timestamp()))
            except BaseException as error:
                self.errors.append(error)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self, timeout: float = 120) -> list[Decided]:
        assert self.thread is not None
        self.thread.join(timeout=timeout)
        self.http.close()
        if self.errors:
            raise self.errors[0]
        return self.decided
