"""Agents and a reviewer working against the fault cluster, and what each fault phase counts.

Native agents submit on server A and long-poll there for the decision; AAP agents submit on A
and learn of the decision from their webhook, then read it. The reviewer decides through the
reviewer API on server B, each request once its email has arrived (as a person would), in turn
approving and denying. Clients retry a 503 or a dropped connection with the same request (a
create keeps its Idempotency-Key); any other answer they did not expect fails the test.
"""

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fault_cluster import FaultCluster, wait_for, webhook_copies

RETRYABLE = {502, 503, 504}
# Every call must get through within this, outages included (they last a few seconds).
CALL_DEADLINE_SECONDS = 60
# Far longer than a decision may take to reach a parked poll, even by the Redis-down fallback.
POLL_WAIT_SECONDS = 25


@dataclass
class Calls:
    """Answers that told a client to come back: what the faults looked like from outside."""

    unavailable: int = 0  # 503 dependency_unavailable (or 502/504 from a server in trouble)
    dropped: int = 0  # connection refused or cut
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Set when the test ends: clients stop retrying, so their threads end with it.
    stopped: threading.Event = field(default_factory=threading.Event)

    def count(self, answer: httpx.Response | None) -> None:
        with self.lock:
            if answer is None:
                self.dropped += 1
            else:
                self.unavailable += 1


def call(
    client: httpx.Client, calls: Calls, method: str, url: str, *, ok: set[int], **kwargs: Any
) -> httpx.Response:
    deadline = time.monotonic() + CALL_DEADLINE_SECONDS
    while True:
        if calls.stopped.is_set():
            raise RuntimeError("the workload was stopped")
        answer: httpx.Response | None
        try:
            answer = client.request(method, url, **kwargs)
        except httpx.TransportError:
            answer = None
        if answer is not None and answer.status_code in ok:
            return answer
        if answer is not None and answer.status_code not in RETRYABLE:
            raise AssertionError(f"{method} {url}: {answer.status_code} {answer.text[:2000]}")
        calls.count(answer)
        assert time.monotonic() < deadline, f"{method} {url} did not get through"
        time.sleep(0.2)  # a client's backoff between retries, not a wait for a condition


@dataclass
class Ticket:
    """One agent's request: created (its code known), then answered (the decision it saw)."""

    kind: str  # "native" or "aap"
    created: threading.Event = field(default_factory=threading.Event)
    code: str = ""
    seen: str = ""
    done: "Future[None] | None" = None
    deciding_at: float = 0.0  # when the reviewer sent the decision (time.monotonic)
    answered_at: float = 0.0  # when the agent had it

    @property
    def latency(self) -> float:
        """From the reviewer sending the decision to the agent having it."""
        return self.answered_at - self.deciding_at


class Workload:
    def __init__(self, cluster: FaultCluster) -> None:
        self.cluster = cluster
        self.calls = Calls()
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="fault-actor")
        self.decided: dict[str, str] = {}  # code -> the status the reviewer's decision set
        self.aap_token = self._provision_aap_instance()

    def close(self) -> None:
        self.calls.stopped.set()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def client(self, base_url: str, authorization: str) -> httpx.Client:
        return httpx.Client(base_url=base_url, headers={"Authorization": authorization}, timeout=30)

    def _provision_aap_instance(self) -> str:
        provisioner = self.client(
            self.cluster.server_a, f"Bearer {self.cluster.tokens['provisioner_token']}"
        )
        with provisioner:
            answer = call(
                provisioner, self.calls, "POST", "/aap/v1/instances",
                json={"instance_name": "fault-aap", "delivery": self.cluster.webhooks.delivery()},
                headers={"Idempotency-Key": str(uuid.uuid4())}, ok={201},
            )  # fmt: skip
        return answer.json()["credential"]["token"]

    # --- agents ----------------------------------------------------------------------------

    def start(self, *, native: int, aap: int) -> list[Ticket]:
        tickets = [Ticket("native") for _ in range(native)] + [Ticket("aap") for _ in range(aap)]
        for ticket in tickets:
            run = self._native_agent if ticket.kind == "native" else self._aap_agent
            ticket.done = self.pool.submit(run, ticket)
        return tickets

    def _native_agent(self, ticket: Ticket) -> None:
        token = self.cluster.tokens["agent_token"]
        with self.client(self.cluster.server_a, f"Bearer {token}") as agent:
            created = call(
                agent, self.calls, "POST", "/api/v1/requests",
                json={"tool": "send_email", "arguments": {"to": "a@x.test"}, "timeout": "10m"},
                headers={"Idempotency-Key": str(uuid.uuid4())}, ok={200, 201},
            )  # fmt: skip
            ticket.code = created.json()["id"]
            ticket.created.set()
            while True:
                answer = call(
                    agent, self.calls, "GET", f"/api/v1/requests/{ticket.code}",
                    params={"wait": f"{POLL_WAIT_SECONDS}s"}, ok={200},
                )  # fmt: skip
                if answer.json()["status"] != "pending":
                    ticket.answered_at = time.monotonic()
                    ticket.seen = answer.json()["status"]
                    return

    def _aap_agent(self, ticket: Ticket) -> None:
        with self.client(self.cluster.server_a, f"Bearer {self.aap_token}") as agent:
            created = call(
                agent, self.calls, "POST", "/aap/v1/requests",
                json={"tool": "issue_refund", "arguments": {"amount": 4900}, "timeout": "10m"},
                headers={"Idempotency-Key": str(uuid.uuid4())}, ok={200, 201},
            )  # fmt: skip
            ticket.code = created.json()["id"]
            ticket.created.set()
            # Asynchronous mode: the agent waits for its webhook, then reads the decision.
            wait_for(
                lambda: (
                    self.calls.stopped.is_set()
                    or ticket.code in webhook_copies(self.cluster.webhooks)
                ),
                timeout=CALL_DEADLINE_SECONDS,
                what=f"the webhook about {ticket.code}",
            )
            answer = call(agent, self.calls, "GET", f"/aap/v1/requests/{ticket.code}", ok={200})
            ticket.answered_at = time.monotonic()
            ticket.seen = answer.json()["status"]

    def wait_created(self, tickets: list[Ticket], timeout: float = 30) -> list[str]:
        for ticket in tickets:
            if not ticket.created.wait(timeout):
                assert ticket.done is not None
                if ticket.done.done():
                    ticket.done.result()  # the agent's own failure says more
                raise AssertionError(f"a {ticket.kind} agent's request was not created")
        return [ticket.code for ticket in tickets]

    def wait_answered(self, tickets: list[Ticket], timeout: float = 40) -> None:
        for ticket in tickets:
            assert ticket.done is not None
            ticket.done.result(timeout=timeout)

    # --- the reviewer ----------------------------------------------------------------------

    def wait_emailed(self, tickets: list[Ticket], timeout: float = 40) -> None:
        """Until the mail server has an email about each request and its row says sent.

        A reviewer acts on the email; and a row the server has but that is not yet marked (its
        worker was killed) would be dropped, not sent again, once its request is decided."""
        codes = self.wait_created(tickets)
        wait_for(
            lambda: (
                set(codes) <= set(self.cluster.mail.copies())
                and self.cluster.emails_marked_sent(codes)
            ),
            timeout=timeout,
            what=f"emails about {len(codes)} requests, marked sent",
        )

    def decide(self, tickets: list[Ticket]) -> None:
        token = self.cluster.tokens["reviewer_token"]
        with self.client(self.cluster.server_b, f"Token {token}") as reviewer:
            self.wait_created(tickets)
            for ticket in tickets:
                code = ticket.code
                ticket.deciding_at = time.monotonic()
                approve = len(self.decided) % 2 == 0
                self.decided[code] = "approved" if approve else "denied"
                path = f"/api/v1/reviewer/requests/{code}/{'approve' if approve else 'deny'}"
                body = {"note": "fine"} if approve else {"reason": "not now"}
                answer = call(reviewer, self.calls, "POST", path, json=body, ok={200, 409})
                if answer.status_code == 409:
                    # A retry of a decision whose answer was lost to the fault: it stands.
                    now = call(
                        reviewer, self.calls, "GET", f"/api/v1/reviewer/requests/{code}", ok={200}
                    )
                    assert now.json()["status"] == self.decided[code], answer.text


class Phase:
    """One fault: its tickets and the 503s and dropped connections the clients met meanwhile."""

    def __init__(self, fault: str, workload: Workload) -> None:
        self.fault = fault
        self.workload = workload
        self.tickets: list[Ticket] = []
        self.calls_before = (workload.calls.unavailable, workload.calls.dropped)
        self.calls = (0, 0)
        self.started = time.monotonic()
        self.seconds = 0.0
        self.notes: list[str] = []  # what else the phase measured, for its line

    def start(self, *, native: int, aap: int) -> list[Ticket]:
        tickets = self.workload.start(native=native, aap=aap)
        self.tickets += tickets
        return tickets

    def end(self) -> "Phase":
        calls = self.workload.calls
        self.calls = (
            calls.unavailable - self.calls_before[0],
            calls.dropped - self.calls_before[1],
        )
        self.seconds = time.monotonic() - self.started
        return self


# --- Counting ------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one fault phase counts: each figure is requests, out of those created."""

    fault: str
    created: int = 0
    in_database: int = 0
    decisions_delivered: int = 0
    notifications_delivered: int = 0
    notifications_sent_again: int = 0
    webhooks_expected: int = 0
    webhooks_delivered: int = 0
    webhooks_sent_again: int = 0
    unavailable: int = 0
    dropped: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return (
            (self.created - self.in_database)
            + (self.created - self.decisions_delivered)
            + (self.created - self.notifications_delivered)
            + (self.webhooks_expected - self.webhooks_delivered)
        )

    def line(self) -> str:
        return (
            f"[fault] {self.fault}: created {self.created}, in database {self.in_database}, "
            f"decisions delivered {self.decisions_delivered}, "
            f"notifications delivered {self.notifications_delivered} "
            f"({self.notifications_sent_again} sent again, one Message-ID each), "
            f"webhooks delivered {self.webhooks_delivered}/{self.webhooks_expected} "
            f"({self.webhooks_sent_again} sent again, one webhook-id each), "
            f"503s {self.unavailable}, dropped connections {self.dropped}, lost {self.lost} "
            f"({'; '.join([*self.notes, f'{self.seconds:.1f} s'])})"
        )


def tally(phase: Phase, report: dict[str, Any]) -> Tally:
    """Count one phase from three sides: the agents, the receivers and the database."""
    workload = phase.workload
    mail = workload.cluster.mail.copies()
    hooks = webhook_copies(workload.cluster.webhooks)
    counts = Tally(
        phase.fault,
        unavailable=phase.calls[0],
        dropped=phase.calls[1],
        seconds=phase.seconds,
        notes=phase.notes,
    )
    for ticket in phase.tickets:
        code, decided = ticket.code, workload.decided.get(ticket.code)
        counts.created += 1
        _check(counts, report["requests"].get(code) == decided, f"{code}: database status")
        counts.in_database += report["requests"].get(code) == decided
        _check(counts, ticket.seen == decided, f"{code}: agent saw {ticket.seen!r}, not {decided}")
        counts.decisions_delivered += ticket.seen == decided
        copies = mail.get(code, Counter())
        emailed = len(copies) == 1 and report["emails"].get(code) == ["sent"]
        _check(counts, emailed, f"{code}: emails {dict(copies)}, rows {report['emails'].get(code)}")
        counts.notifications_delivered += emailed
        counts.notifications_sent_again += sum(copies.values()) - len(copies)
        if ticket.kind == "aap":
            counts.webhooks_expected += 1
            hook = hooks.get(code, Counter())
            delivered = len(hook) == 1 and report["webhooks"].get(code, {}).get("delivered")
            _check(counts, bool(delivered), f"{code}: webhooks {dict(hook)}")
            counts.webhooks_delivered += bool(delivered)
            counts.webhooks_sent_again += sum(hook.values()) - len(hook)
    return counts


def _check(counts: Tally, ok: bool, problem: str) -> None:
    if not ok:
        counts.problems.append(problem)
