"""What the load generator sends, and how it times calls: closed loops and percentiles."""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx

HELD_BODY = {"tool": "send_email", "arguments": {"to": "a@example.test"}, "timeout": "10m"}
# The runner seeds a rule approving this tool at once (console.bench.__main__._seed).
APPROVED_TOOL = "bench_lookup"
APPROVED_BODY = {"tool": APPROVED_TOOL, "arguments": {"id": 42}, "timeout": "10m"}


async def intake_written(session: aiohttp.ClientSession, servers: list[str]) -> tuple[int, int]:
    """The servers' intakes so far, summed: batches written, and requests in them (each server
    counts its own; /bench/process answers with them)."""
    batches = requests = 0
    for url in servers:
        async with session.get(f"{url}/bench/process") as response:
            answer = await response.json()
        batches += answer["intake_batches"]
        requests += answer["intake_requests"]
    return batches, requests


def creation_call(
    session: aiohttp.ClientSession,
    server: Callable[[int], str],
    *,
    agent_token: str,
    body: dict[str, Any],
    status: str,
) -> Callable[[int], Awaitable[None]]:
    """A call that creates one request on `server(index)` and checks it came back `status`."""
    headers = {"Authorization": f"Bearer {agent_token}"}

    async def call(index: int) -> None:
        async with session.post(
            f"{server(index)}/api/v1/requests",
            json=body,
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        ) as response:
            answer = await response.json()
            if response.status != 201 or answer.get("status") != status:
                raise RuntimeError(f"create answered {response.status}: {answer}")

    return call


def summary(
    latencies_s: list[float], elapsed_s: float | None = None, *, errors: int = 0
) -> dict[str, float]:
    ordered = sorted(latencies_s)

    def percentile(p: float) -> float:
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))] * 1000

    result = {
        "count": float(len(ordered)),
        "errors": float(errors),
        "p50_ms": percentile(0.5),
        "p99_ms": percentile(0.99),
    }
    if elapsed_s is not None:
        result["rps"] = len(ordered) / elapsed_s if elapsed_s > 0 else 0.0
    return result


async def closed_loop(
    call: Callable[[int], Awaitable[None]], *, concurrency: int, count: int, seconds: float
) -> dict[str, float]:
    """`concurrency` workers issue calls back to back until `count` calls or `seconds` pass."""
    latencies, errors, elapsed_s = await closed_loop_samples(
        call, concurrency=concurrency, count=count, seconds=seconds
    )
    return summary(latencies, elapsed_s, errors=errors)


async def closed_loop_samples(
    call: Callable[[int], Awaitable[None]], *, concurrency: int, count: int, seconds: float
) -> tuple[list[float], int, float]:
    """`closed_loop`'s raw material: every latency (s), the errors, the time it all took (s)."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal issued, errors
        while issued < count and time.monotonic() < deadline:
            index = issued
            issued += 1
            started = time.perf_counter()
            try:
                await call(index)
            except (httpx.HTTPError, aiohttp.ClientError, RuntimeError):
                errors += 1  # counted, not timed: a failed call is no data point
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - started
