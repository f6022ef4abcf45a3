"""The load generator: its own process, loopback only, bounded in count and time.

Reads a JSON plan on stdin (server URLs, credentials, sizes), prints a JSON result on stdout.
It speaks to the console only over HTTP and websockets, like agents and reviewers do.
"""

import asyncio
import json
import re
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import websockets

NEW_ROW = re.compile(r"approval-([0-9a-f-]{36})")
HELD_BODY = {"tool": "send_email", "arguments": {"to": "a@example.test"}, "timeout": "10m"}


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
            except (httpx.HTTPError, RuntimeError):
                errors += 1  # counted, not timed: a failed call is no data point
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summary(latencies, time.perf_counter() - started, errors=errors)


class Load:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.servers: list[str] = plan["servers"]
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
        self.http = httpx.AsyncClient(timeout=60, limits=limits)
        self.agent_headers = {"Authorization": f"Bearer {plan['agent_token']}"}
        self.reviewer_headers = {"Authorization": f"Token {plan['reviewer_token']}"}

    def server(self, index: int) -> str:
        # No load balancer on loopback: the generator spreads calls over the processes itself.
        return self.servers[index % len(self.servers)]

    async def create_held(self, index: int) -> str:
        response = await self.http.post(
            f"{self.server(index)}/api/v1/requests",
            json=HELD_BODY,
            headers={**self.agent_headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        if response.status_code != 201:
            raise RuntimeError(f"create answered {response.status_code}: {response.text[:300]}")
        return response.json()["id"]

    async def create_many(self, count: int) -> tuple[list[str], int]:
        """`count` held requests, at most the plan's concurrency at once, like the fleet sends."""
        gate = asyncio.Semaphore(self.plan["concurrency"])

        async def create(index: int) -> str | None:
            async with gate:
                try:
                    return await self.create_held(index)
                except (httpx.HTTPError, RuntimeError):
                    return None

        created = await asyncio.gather(*(create(i) for i in range(count)))
        codes = [code for code in created if code is not None]
        return codes, count - len(codes)

    async def bare(self, index: int) -> None:
        response = await self.http.get(f"{self.server(index)}/bench/bare")
        if response.status_code != 200:
            raise RuntimeError(f"/bench/bare answered {response.status_code}")

    async def throughput(self) -> dict[str, Any]:
        sizes = {
            "concurrency": self.plan["concurrency"],
            "count": self.plan["requests"],
            "seconds": self.plan["seconds"],
        }
        bare = await closed_loop(self.bare, **sizes)

        async def create(index: int) -> None:
            await self.create_held(index)

        held = await closed_loop(create, **sizes)
        return {
            "concurrency": float(self.plan["concurrency"]),
            "bare": bare,
            "create_held": held,
            "held_to_bare_ratio": held["rps"] / bare["rps"] if bare["rps"] else 0.0,
        }

    async def decision_to_agent(self, waiting: int) -> dict[str, float]:
        """Rounds of `waiting` agents long-polling at once, until there are enough samples."""
        latencies: list[float] = []
        errors = 0
        while len(latencies) + errors < self.plan["decision_samples"]:
            round_latencies, round_errors = await self._decision_round(waiting)
            latencies += round_latencies
            errors += round_errors
        return summary(latencies, errors=errors)

    async def _decision_round(self, waiting: int) -> tuple[list[float], int]:
        """`waiting` agents long-poll at once; each decision is timed to its agent's answer."""
        codes, create_errors = await self.create_many(waiting)
        answered_at: dict[str, float] = {}
        failed: set[str] = set()

        async def long_poll(index: int, code: str) -> None:
            # The agent waits on a different process than the one the decision goes through.
            try:
                response = await self.http.get(
                    f"{self.server(index + 1)}/api/v1/requests/{code}",
                    params={"wait": "30s"},
                    headers=self.agent_headers,
                )
                if response.status_code != 200 or response.json()["status"] != "approved":
                    failed.add(code)
            except httpx.HTTPError:
                failed.add(code)
            answered_at[code] = time.perf_counter()

        polls = [asyncio.create_task(long_poll(i, code)) for i, code in enumerate(codes)]
        # Parked: every poll has read the row and subscribed before the first decision.
        await asyncio.sleep(0.2 + waiting / 200)
        latencies = []
        for index, code in enumerate(codes):
            decided_at = time.perf_counter()
            response = await self.http.post(
                f"{self.server(index)}/api/v1/reviewer/requests/{code}/approve",
                json={"note": "bench"},
                headers=self.reviewer_headers,
            )
            if response.status_code != 200:
                failed.add(code)
                continue
            while code not in answered_at:
                await asyncio.sleep(0.0005)
            if code not in failed:
                latencies.append(answered_at[code] - decided_at)
        await asyncio.gather(*polls)
        return latencies, len(failed) + create_errors

    async def reviewer_cookie(self) -> str:
        async with httpx.AsyncClient(base_url=self.servers[0], timeout=30) as browser:
            await browser.get("/accounts/login/")
            response = await browser.post(
                "/accounts/login/",
                data={
                    "username": self.plan["reviewer_username"],
                    "password": self.plan["reviewer_password"],
                    "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                },
                headers={"Referer": f"{self.servers[0]}/accounts/login/"},
            )
            if response.status_code != 302:
                raise RuntimeError(f"login answered {response.status_code}")
            return f"sessionid={browser.cookies['sessionid']}"

    async def fan_out(self, sockets: int, requests: int) -> dict[str, float]:
        """A new request's time from the agent's POST to its fragment on every reviewer socket."""
        cookie = await self.reviewer_cookie()
        connections = []
        for index in range(sockets):
            server = self.server(index)
            connections.append(
                await websockets.connect(
                    server.replace("http://", "ws://") + "/ws/queue/",
                    additional_headers={"Cookie": cookie},
                    origin=server,
                    max_size=None,
                )
            )
        arrivals: dict[str, list[float]] = defaultdict(list)

        async def read(ws: Any) -> None:
            # Codes are matched after the fact: a fragment may arrive before the POST returns.
            async for message in ws:
                if "beforeend:#queue-rows" in message:
                    for code in set(NEW_ROW.findall(message)):
                        arrivals[code].append(time.perf_counter())

        readers = [asyncio.create_task(read(ws)) for ws in connections]
        latencies: list[float] = []
        try:
            for index in range(requests):
                sent_at = time.perf_counter()
                code = await self.create_held(index)
                deadline = time.monotonic() + 10
                while len(arrivals[code]) < sockets and time.monotonic() < deadline:
                    await asyncio.sleep(0.001)
                latencies.extend(arrived_at - sent_at for arrived_at in arrivals[code])
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)
        missing = sockets * requests - len(latencies)
        result = summary(latencies, errors=missing)
        result["sockets"] = float(sockets)
        result["expected"] = float(sockets * requests)
        return result

    async def run(self) -> dict[str, Any]:
        try:
            results: dict[str, Any] = {"throughput": await self.throughput()}
            results["decision_to_agent"] = {
                str(waiting): await self.decision_to_agent(waiting)
                for waiting in self.plan["waiting_agents"]
            }
            results["fan_out"] = await self.fan_out(
                self.plan["sockets"], self.plan["fan_out_requests"]
            )
            return results
        finally:
            await self.http.aclose()


def main() -> None:
    plan = json.load(sys.stdin)
    results = asyncio.run(Load(plan).run())
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
