"""The gate at low concurrency: what a lone caller pays for a call a policy approves at once.

Part of the load generator (`console.bench.load`), in its process. Against ONE server process
(the first), at concurrency 1 and 8: `/healthz` (the process answers, through the whole
middleware stack, and touches nothing else) and the creation of a request a seeded rule
approves at once, in alternating rounds so that both see the same machine; then the approved
call's p50 and p99 as multiples of `/healthz`'s. The batching that makes many callers fast must
not tax one: issue 16 asks for at most 1.5x (p50) and 2x (p99) at both concurrencies.
"""

import os
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiohttp

from console.bench.calls import (
    APPROVED_BODY,
    closed_loop_samples,
    creation_call,
    intake_written,
    summary,
)
from console.bench.memory import process_cpu_ticks

CONCURRENCIES = (1, 8)
# Alternating rounds of each call per concurrency: a burst of load elsewhere on the machine
# lands on both sides of the ratio instead of on one.
ROUNDS = 4
WARM_UP_CALLS = 20


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


async def measure(plan: dict[str, Any]) -> dict[str, Any]:
    """{"server", "requests", "by_concurrency": {"1": {...}, "8": {...}}}, from servers[0]."""
    server = plan["servers"][0]
    count = plan["gate_requests"]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def healthz(index: int) -> None:
            async with session.get(f"{server}/healthz") as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"/healthz answered {response.status}")

        approved = creation_call(
            session, lambda _: server, agent_token=plan["agent_token"], body=APPROVED_BODY,
            status="approved",
        )  # fmt: skip

        async with session.get(f"{server}/bench/process") as response:
            pid = (await response.json())["pid"]
        for call in (healthz, approved):  # connections, caches, the policy's compiled rules
            await closed_loop_samples(call, concurrency=8, count=WARM_UP_CALLS, seconds=10)
        by_concurrency = {}
        for concurrency in CONCURRENCIES:
            by_concurrency[str(concurrency)] = await _at_concurrency(
                {"healthz": healthz, "create_approved": approved},
                concurrency=concurrency, count=count, seconds=plan["seconds"], pid=pid,
                written=partial(intake_written, session, [server]),
            )  # fmt: skip
    return {"server": server, "requests": float(count), "by_concurrency": by_concurrency}


async def _at_concurrency(
    calls: dict[str, Callable[[int], Awaitable[None]]],
    *,
    concurrency: int,
    count: int,
    seconds: float,
    pid: int,
    written: Callable[[], Awaitable[tuple[int, int]]],
) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    errors = dict.fromkeys(calls, 0)
    elapsed = dict.fromkeys(calls, 0.0)
    cpu_ticks = dict.fromkeys(calls, 0)
    batches = dict.fromkeys(calls, 0)
    batched = dict.fromkeys(calls, 0)
    per_round = max(1, count // ROUNDS)
    for _ in range(ROUNDS):
        for name, call in calls.items():
            batches_before, batched_before = await written()
            before = process_cpu_ticks(pid)
            samples, failed, took_s = await closed_loop_samples(
                call, concurrency=concurrency, count=per_round, seconds=seconds / ROUNDS
            )
            cpu_ticks[name] += process_cpu_ticks(pid) - before
            batches_after, batched_after = await written()
            batches[name] += batches_after - batches_before
            batched[name] += batched_after - batched_before
            latencies[name] += samples
            errors[name] += failed
            elapsed[name] += took_s
    result: dict[str, Any] = {"concurrency": float(concurrency)}
    for name in calls:
        numbers = summary(latencies[name], elapsed[name], errors=errors[name])
        spent_ms = 1000 * cpu_ticks[name] / os.sysconf("SC_CLK_TCK")
        numbers["server_cpu_ms"] = spent_ms / max(1.0, numbers["count"])
        result[name] = numbers
    healthz, approved = result["healthz"], result["create_approved"]
    # Requests per batch of the server's intake: 1 at one caller; at several, the share of
    # the fixed per-batch cost (locks, round trips, the commit) that each caller pays.
    approved["intake_batches"] = float(batches["create_approved"])
    approved["requests_per_batch"] = _ratio(batched["create_approved"], batches["create_approved"])
    result["p50_ratio"] = _ratio(approved["p50_ms"], healthz["p50_ms"])
    result["p99_ratio"] = _ratio(approved["p99_ms"], healthz["p99_ms"])
    return result
