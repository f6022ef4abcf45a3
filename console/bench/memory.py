"""Memory: one server process's RSS while it holds N idle long polls, then N idle reviewer sockets.

`python -m console.bench.memory` (or the memory section of `python -m console.bench`). For each kind
and count: a fresh console with ONE uvicorn process (PostgreSQL, Redis, a Celery worker, as the
bench runner starts it); a warm-up through the same path; the server's RSS once it is quiet; N
connections opened from a separate load process (this module with `--hold`, bounded concurrency);
the server's RSS again once it is quiet with all N parked; the connections closed. The RSS is read
from outside, in /proc/<pid>/status, so nothing in the server measures itself.

Long polls wait on N seeded pending requests of their own agent, with the server's long-poll cap
raised so that none of them answers while it is measured (a parked poll costs the same whether
it would wait 30 s or 30 min). `--trace` runs the server under tracemalloc (slower, and bigger)
and prints where the added bytes were allocated.
"""

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import websockets
from websockets.typing import Origin

from console.bench import aligned

# Per size: how many idle connections of each kind one server process holds.
COUNTS = {"tiny": [20], "default": [1000], "full": [1000, 10000]}
KINDS = ("long_polls", "websockets")
# The server's long-poll cap while measuring, and what the polls ask for: far beyond a run.
PARKED_SECONDS = 1800
# Pending requests are reused by later runs while this much of their deadline is left.
SEED_TIMEOUT = "6h"
SEED_REUSE_SECONDS = 2 * 3600
OPEN_CONCURRENCY = 100  # connections being opened at once
CONNECTIONS_PER_CLIENT = 250  # httpx's pool scans its connections: many small pools, not one
WARM_UP_CONNECTIONS = 10
MEMORY_AGENT = "bench-memory-agent"


@dataclass(frozen=True)
class ProcessMemory:
    rss_kb: int
    threads: int


def parse_status(text: str) -> ProcessMemory:
    """The resident set size and thread count from a /proc/<pid>/status text."""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return ProcessMemory(
        rss_kb=int(fields["VmRSS"].split()[0]), threads=int(fields["Threads"].split()[0])
    )


def parse_cpu_ticks(stat: str) -> int:
    """User plus system CPU time, in clock ticks, from a /proc/<pid>/stat line."""
    # The command name (field 2) may hold spaces and parentheses: count from its closing one.
    after_name = stat[stat.rindex(")") + 2 :].split()
    return int(after_name[11]) + int(after_name[12])  # fields 14 (utime) and 15 (stime)


def process_cpu_ticks(pid: int) -> int:
    return parse_cpu_ticks(Path(f"/proc/{pid}/stat").read_text())


def process_memory(pid: int) -> ProcessMemory:
    return parse_status(Path(f"/proc/{pid}/status").read_text())


def wait_until_quiet(pid: int, *, timeout_s: float, busy_share: float = 0.05) -> bool:
    """Wait until the process uses under `busy_share` of a core over two 1 s windows in a row."""
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + timeout_s
    quiet_windows = 0
    while time.monotonic() < deadline:
        before = process_cpu_ticks(pid)
        time.sleep(1.0)
        used_s = (process_cpu_ticks(pid) - before) / ticks_per_s
        quiet_windows = quiet_windows + 1 if used_s < busy_share else 0
        if quiet_windows == 2:
            return True
    return False


def seed_pending(count: int) -> tuple[str, list[str]]:
    """An agent credential and `count` pending requests of that agent, reused across runs.

    One request goes through the service layer; the rest are bulk copies of it (new code and
    idempotency key): the server only reads them, and 10,000 creations would take minutes here.
    """
    from datetime import timedelta

    from django.utils import timezone

    from agents.models import Agent
    from agents.services import agent_create, credential_issue
    from approvals.models import ApprovalRequest, Status
    from approvals.services import Submission, approval_request_create

    agent = Agent.objects.filter(name=MEMORY_AGENT).first() or agent_create(name=MEMORY_AGENT)
    reusable = ApprovalRequest.objects.filter(
        agent=agent,
        status=Status.PENDING,
        deadline_at__gt=timezone.now() + timedelta(seconds=SEED_REUSE_SECONDS),
    )
    if not reusable.exists():
        submission = Submission(
            tool="send_email", arguments={"to": "a@example.test"}, timeout=SEED_TIMEOUT
        )
        approval_request_create(
            agent=agent, idempotency_key=str(uuid.uuid4()), submission=submission
        )
    template = reusable.first()
    if template is None:
        raise RuntimeError("the seeded request was not held for a reviewer")
    fields = {
        field.attname: getattr(template, field.attname)
        for field in ApprovalRequest._meta.concrete_fields
        if not field.primary_key
    }
    copies = [
        ApprovalRequest(**{**fields, "code": uuid.uuid4(), "idempotency_key": str(uuid.uuid4())})
        for _ in range(count - reusable.count())
    ]
    ApprovalRequest.objects.bulk_create(copies, batch_size=1000)
    codes = [str(code) for code in reusable.values_list("code", flat=True)[:count]]
    return credential_issue(agent=agent, label="bench-memory").plaintext, codes


def _tell(load: subprocess.Popen[str], line: str) -> None:
    assert load.stdin is not None
    load.stdin.write(line + "\n")
    load.stdin.flush()


def _hear(load: subprocess.Popen[str]) -> Any:
    assert load.stdout is not None
    line = load.stdout.readline()
    if not line:
        raise RuntimeError(f"the memory load process ended early (exit {load.wait()})")
    return json.loads(line)


def _heap_snapshot(url: str, name: str) -> tracemalloc.Snapshot:
    answer = httpx.get(f"{url}/bench/process", params={"snapshot": name}, timeout=300).json()
    return tracemalloc.Snapshot.load(answer["snapshot"])


def heap_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int) -> list[str]:
    """The source lines whose allocations grew most between two snapshots."""
    return [str(stat) for stat in after.compare_to(before, "lineno")[:top]]


def measure(
    *, kind: str, count: int, env: dict[str, str], plan: dict[str, Any], trace: bool
) -> dict[str, Any]:
    from console.bench.__main__ import BASE_DIR, _console

    server_env = {**env, "APPROVAL_LONG_POLL_MAX_SECONDS": str(PARKED_SECONDS)}
    if trace:
        server_env["PYTHONTRACEMALLOC"] = "1"
    quiet_timeout_s = 60 + count / 50
    snapshot = f"{kind.replace('_', '-')}-{count}"  # names the heap snapshots when tracing
    log_dir = BASE_DIR / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    with _console(server_env, servers=1, log_dir=log_dir) as urls:
        url = urls[0]
        pid = httpx.get(f"{url}/bench/process", timeout=10).json()["pid"]
        load = subprocess.Popen(
            [sys.executable, "-m", "console.bench.memory", "--hold"],
            cwd=BASE_DIR, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            _tell(load, json.dumps({**plan, "kind": kind, "count": count, "server": url}))
            warm_up = _hear(load)
            quiet_before = wait_until_quiet(pid, timeout_s=quiet_timeout_s)
            before = process_memory(pid)
            heap_before = _heap_snapshot(url, f"{snapshot}-before") if trace else None
            _tell(load, "open")
            opened = _hear(load)
            quiet_after = wait_until_quiet(pid, timeout_s=quiet_timeout_s)
            after = process_memory(pid)
            heap_after = _heap_snapshot(url, f"{snapshot}-after") if trace else None
            _tell(load, "close")
            closed = _hear(load)
        finally:
            if load.poll() is None:
                load.kill()
            load.wait()
    parked = opened["opened"] - closed["ended_early"]
    result = {
        "count": float(count),
        "parked": float(parked),
        "errors": float(count - parked),
        "rss_before_mb": before.rss_kb / 1024,
        "rss_after_mb": after.rss_kb / 1024,
        "kb_per_connection": (after.rss_kb - before.rss_kb) / parked if parked else 0.0,
        "threads_before": float(before.threads),
        "threads_after": float(after.threads),
        "open_s": opened["seconds"],
        "quiet": quiet_before and quiet_after,
        "load_rss_mb": closed["load_rss_kb"] / 1024,
        "warm_up_errors": float(warm_up["errors"]),
        "errors_by_cause": closed["why"],
    }
    if heap_before is not None and heap_after is not None:
        result["heap_growth"] = heap_growth(heap_before, heap_after, top=25)
    return result


def run(
    *,
    env: dict[str, str],
    credentials: dict[str, str],
    counts: list[int],
    kinds: tuple[str, ...] = KINDS,
    trace: bool = False,
) -> dict[str, dict[str, dict[str, Any]]]:
    """The memory section: {kind: {count: figures}}. Django must be set up (the runner seeds)."""
    agent_token, codes = seed_pending(max(counts))
    plan = {
        "agent_token": agent_token,
        "codes": codes,
        "reviewer_username": credentials["reviewer_username"],
        "reviewer_password": credentials["reviewer_password"],
    }
    return {
        kind: {
            str(count): measure(kind=kind, count=count, env=env, plan=plan, trace=trace)
            for count in counts
        }
        for kind in kinds
    }


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    rows = [("one server process holding", "RSS before MB", "after MB", "KB/conn", "errors")]
    for kind, by_count in results.items():
        for count, numbers in by_count.items():
            rows.append(
                (f"{int(count):,} idle {kind.replace('_', ' ')}",
                 f"{numbers['rss_before_mb']:.0f}", f"{numbers['rss_after_mb']:.0f}",
                 f"{numbers['kb_per_connection']:.1f}", f"{numbers['errors']:.0f}")
            )  # fmt: skip
    return "\n".join(aligned(rows))


# --- The load side: its own process, holding the connections the runner measures. ------------


class Holder:
    """Opens `count` idle connections of one kind, keeps them open, closes them on request."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.server: str = plan["server"]
        self.count: int = plan["count"]
        self.clients: list[httpx.AsyncClient] = []
        self.polls: list[asyncio.Task[None]] = []
        self.sockets: list[Any] = []
        self.ended_early = 0
        self.why: Counter[str] = Counter()  # failures and early ends, by cause

    def _client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(
            max_connections=CONNECTIONS_PER_CLIENT, max_keepalive_connections=CONNECTIONS_PER_CLIENT
        )
        client = httpx.AsyncClient(timeout=PARKED_SECONDS + 60, limits=limits)
        self.clients.append(client)
        return client

    async def warm_up(self) -> int:
        """The same path a few times first, so lazy imports and caches are in the baseline."""
        errors = 0
        if self.plan["kind"] == "long_polls":
            client = self._client()
            for code in self.plan["codes"][:WARM_UP_CONNECTIONS]:
                response = await client.get(
                    f"{self.server}/api/v1/requests/{code}",
                    params={"wait": "1s"},
                    headers={"Authorization": f"Bearer {self.plan['agent_token']}"},
                )
                errors += response.status_code != 200
        else:
            self.cookie = await self._login()
            for _ in range(WARM_UP_CONNECTIONS):
                socket = await self._connect()
                await socket.close()
        return errors

    async def _login(self) -> str:
        from console.bench.load import Load

        # The bench's own login, as the fan-out section does it.
        load = Load({**self.plan, "servers": [self.server], "reviewer_token": ""})
        try:
            return await load.reviewer_cookie()
        finally:
            await load.http.aclose()

    async def _connect(self) -> Any:
        # Like a browser: no client pings (only the server's own keepalive runs).
        return await websockets.connect(
            self.server.replace("http://", "ws://") + "/ws/queue/",
            additional_headers={"Cookie": self.cookie},
            origin=Origin(self.server),
            ping_interval=None,
            max_size=None,
        )

    async def open(self) -> int:
        """Opens every connection; returns how many could not be opened."""
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        if self.plan["kind"] == "long_polls":
            return await self._open_polls(gate)
        failures = 0

        async def connect() -> None:
            nonlocal failures
            async with gate:
                try:
                    self.sockets.append(await self._connect())
                except (OSError, websockets.WebSocketException) as error:
                    failures += 1
                    self.why[str(error)[:80]] += 1

        await asyncio.gather(*(connect() for _ in range(self.count)))
        return failures

    async def _open_polls(self, gate: asyncio.Semaphore) -> int:
        sent = asyncio.Event()
        outstanding = self.count
        failures = 0
        headers = {"Authorization": f"Bearer {self.plan['agent_token']}"}
        clients = [self._client() for _ in range(0, self.count, CONNECTIONS_PER_CLIENT)]

        async def poll(index: int, code: str) -> None:
            nonlocal outstanding, failures
            waiting_to_send = True

            def done_sending() -> None:
                nonlocal waiting_to_send, outstanding
                if waiting_to_send:
                    waiting_to_send = False
                    gate.release()
                    outstanding -= 1
                    if outstanding == 0:
                        sent.set()

            async def trace(event: str, info: dict[str, Any]) -> None:
                # The request is on the wire: the next one may start connecting.
                if event == "http11.send_request_body.complete":
                    done_sending()

            await gate.acquire()
            try:
                response = await clients[index // CONNECTIONS_PER_CLIENT].get(
                    f"{self.server}/api/v1/requests/{code}",
                    params={"wait": f"{PARKED_SECONDS}s"},
                    headers=headers,
                    extensions={"trace": trace},
                )
                self._ended_early(f"HTTP {response.status_code}")  # should still be parked
            except httpx.HTTPError as error:
                if waiting_to_send:
                    failures += 1
                    self.why[type(error).__name__] += 1
                else:
                    self._ended_early(type(error).__name__)
            finally:
                done_sending()

        codes = self.plan["codes"][: self.count]
        self.polls = [asyncio.create_task(poll(i, code)) for i, code in enumerate(codes)]
        await sent.wait()
        return failures

    def _ended_early(self, why: str) -> None:
        self.ended_early += 1
        self.why[f"ended early: {why}"] += 1

    async def close(self) -> None:
        for socket in self.sockets:
            if socket.close_code is not None:
                self._ended_early(f"close code {socket.close_code}")
        for task in self.polls:
            task.cancel()
        await asyncio.gather(*self.polls, return_exceptions=True)
        await asyncio.gather(*(socket.close() for socket in self.sockets), return_exceptions=True)
        await asyncio.gather(*(client.aclose() for client in self.clients))


async def hold(commands: IO[str], answers: IO[str]) -> None:
    """The load process: a JSON plan line, then `open` and `close`, each answered with JSON."""

    def answer(**figures: Any) -> None:
        answers.write(json.dumps(figures) + "\n")
        answers.flush()

    async def expect(command: str) -> None:
        line = (await asyncio.to_thread(commands.readline)).strip()
        if line != command:
            raise SystemExit(f"memory load: expected {command!r}, got {line!r}")

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    holder = Holder(json.loads(await asyncio.to_thread(commands.readline)))
    answer(errors=await holder.warm_up())
    await expect("open")
    started = time.monotonic()
    failures = await holder.open()
    answer(opened=holder.count - failures, seconds=time.monotonic() - started)
    await expect("close")
    load_rss_kb = parse_status(Path("/proc/self/status").read_text()).rss_kb
    await holder.close()
    answer(ended_early=holder.ended_early, load_rss_kb=load_rss_kb, why=holder.why)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hold", action="store_true", help="be the load process (internal)")
    parser.add_argument("--connections", type=int, nargs="+", default=COUNTS["full"])
    parser.add_argument("--kind", choices=KINDS, action="append", help="default: both")
    parser.add_argument("--trace", action="store_true", help="tracemalloc in the server")
    arguments = parser.parse_args()
    if arguments.hold:
        asyncio.run(hold(sys.stdin, sys.stdout))
        return
    from console.bench.__main__ import _environment, prepare

    env = _environment()
    credentials = prepare(env)
    results = run(
        env=env,
        credentials=credentials,
        counts=arguments.connections,
        kinds=tuple(arguments.kind or KINDS),
        trace=arguments.trace,
    )
    print(table(results))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
