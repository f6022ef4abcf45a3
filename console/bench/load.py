"""The load generator: its own process, loopback only, bounded in count and time.

Reads a JSON plan on stdin (server URLs, credentials, sizes), prints a JSON result on stdout.
It speaks to the console only over HTTP and websockets, like agents and reviewers do.
"""

import asyncio
import json
import os
import re
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import httpx
import websockets
from websockets.typing import Origin

from console.bench import gate, scaling
from console.bench.calls import (
    APPROVED_BODY,
    HELD_BODY,
    closed_loop,
    creation_call,
    intake_written,
    summary,
)
from console.bench.memory import process_cpu_ticks

NEW_ROW = re.compile(r"approval-([0-9a-f-]{36})")


def _cpu_ticks(pids: list[int]) -> int:
    """User plus system CPU of the server processes, in clock ticks (Linux /proc)."""
    return sum(process_cpu_ticks(pid) for pid in pids)


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
        return str((await self.create_held_document(index))["id"])

    async def create_held_document(self, index: int) -> dict[str, Any]:
        response = await self.http.post(
            f"{self.server(index)}/api/v1/requests",
            json=HELD_BODY,
            headers={**self.agent_headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        if response.status_code != 201:
            raise RuntimeError(f"create answered {response.status_code}: {response.text[:300]}")
        document: dict[str, Any] = response.json()
        return document

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
        """Rates at a fixed concurrency, all in one run so the ratios compare like with like.

        aiohttp, not httpx: this section measures the server's ceiling, and httpx's own cost
        per call was a large share of one core, which the load process shares with the servers.
        """
        sizes = {
            "concurrency": self.plan["concurrency"],
            "count": self.plan["requests"],
            "seconds": self.plan["seconds"],
        }
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def bare(index: int) -> None:
                async with session.get(f"{self.server(index)}/bench/bare") as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"/bench/bare answered {response.status}")

            def create(body: dict[str, Any], status: str) -> Callable[[int], Awaitable[None]]:
                return creation_call(
                    session, self.server, agent_token=self.plan["agent_token"], body=body,
                    status=status,
                )  # fmt: skip

            pids = []
            for url in self.servers:
                async with session.get(f"{url}/bench/process") as response:
                    pids.append((await response.json())["pid"])

            async def measured(
                call: Callable[[int], Awaitable[None]], concurrency: int | None = None
            ) -> dict[str, float]:
                # Server CPU per call: steadier than a rate on a machine shared with others.
                batches_before, requests_before = await intake_written(session, self.servers)
                before = _cpu_ticks(pids)
                numbers = await closed_loop(
                    call, **{**sizes, "concurrency": concurrency or sizes["concurrency"]}
                )
                spent_s = (_cpu_ticks(pids) - before) / os.sysconf("SC_CLK_TCK")
                numbers["server_cpu_ms"] = 1000 * spent_s / max(1.0, numbers["count"])
                batches_after, requests_after = await intake_written(session, self.servers)
                # How much of a batch's fixed cost each creation shared (0 for the bare view).
                batches = batches_after - batches_before
                numbers["requests_per_batch"] = (
                    (requests_after - requests_before) / batches if batches else 0.0
                )
                return numbers

            bare_numbers = await measured(bare)
            held = await measured(create(HELD_BODY, "pending"))
            approved = await measured(create(APPROVED_BODY, "approved"))
            # A fleet keeps more requests in flight: batches grow, and so does the rate.
            fleet = self.plan["fleet_concurrency"]
            bare_fleet = await measured(bare, concurrency=fleet)
            held_fleet = await measured(create(HELD_BODY, "pending"), concurrency=fleet)
        return {
            "concurrency": float(self.plan["concurrency"]),
            "bare": bare_numbers,
            "create_held": held,
            "create_approved": approved,
            "fleet_concurrency": float(fleet),
            "bare_fleet": bare_fleet,
            "create_held_fleet": held_fleet,
            "held_to_bare_ratio_fleet": (
                held_fleet["rps"] / bare_fleet["rps"] if bare_fleet["rps"] else 0.0
            ),
            "held_to_bare_ratio": held["rps"] / bare_numbers["rps"] if bare_numbers["rps"] else 0.0,
            "approved_to_bare_ratio": (
                approved["rps"] / bare_numbers["rps"] if bare_numbers["rps"] else 0.0
            ),
        }

    async def decision_to_agent(self, waiting: int, *, same_server: bool) -> dict[str, float]:
        """Rounds of `waiting` agents long-polling at once, until there are enough samples.

        Timed from the decision's recorded time (`decided_at`, just before its commit) to the
        agent's long poll returning it; `from_post_*` adds the reviewer's own request before it.
        The decision goes through the server process the agent waits on (`same_server`) or
        through the other one, whose wake-up then crosses Redis to reach it.
        """
        latencies: list[float] = []
        from_post: list[float] = []
        errors = setup_errors = 0
        fruitless_rounds = 0  # no sample and no error: the requests to decide were not created
        while len(latencies) + errors < self.plan["decision_samples"] and fruitless_rounds < 3:
            wanted = self.plan["decision_samples"] - len(latencies) - errors
            (
                round_latencies,
                round_from_post,
                round_errors,
                round_setup_errors,
            ) = await self._decision_round(
                waiting, samples=min(waiting, wanted), same_server=same_server
            )
            latencies += round_latencies
            from_post += round_from_post
            errors += round_errors
            setup_errors += round_setup_errors
            fruitless_rounds = 0 if round_latencies or round_errors else fruitless_rounds + 1
        result = summary(latencies, errors=errors)
        # Requests that could not be created to be decided: no decision failed, so they are not
        # the row's errors (they were before); a round made up for them.
        result["setup_errors"] = float(setup_errors)
        posted = summary(from_post)
        result["from_post_p50_ms"] = posted["p50_ms"]
        result["from_post_p99_ms"] = posted["p99_ms"]
        return result

    async def _decision_round(
        self, waiting: int, *, samples: int, same_server: bool
    ) -> tuple[list[float], list[float], int, int]:
        """`waiting` agents long-poll at once; `samples` of them are decided one after another
        while all the others still wait, each decision timed to its agent's answer. The rest
        are decided afterwards, untimed, so that every poll ends. Returns the latencies (from
        the decision, from its POST), the timed decisions that failed, and the requests that
        could not be created."""
        codes, create_errors = await self.create_many(waiting)
        answered_at: dict[str, float] = {}
        failed: set[str] = set()
        # aiohttp, and a pool of their own, for the waiting agents: httpx's pool walks all its
        # connections whenever one finishes, which with 1,000 polls open added milliseconds
        # of the load process's own to every sample (and to the reviewer's calls beside them).
        polls_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=60),
        )

        # Agent `index` is decided through server `index`: it waits there, or on the next one.
        poll_offset = 0 if same_server else 1

        async def long_poll(index: int, code: str) -> None:
            try:
                async with polls_session.get(
                    f"{self.server(index + poll_offset)}/api/v1/requests/{code}",
                    params={"wait": "30s"},
                    headers=self.agent_headers,
                ) as response:
                    body = await response.read()
                    answered_at[code] = time.time()
                    if response.status != 200 or json.loads(body)["status"] != "approved":
                        failed.add(code)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                answered_at[code] = time.time()
                failed.add(code)

        polls = [asyncio.create_task(long_poll(i, code)) for i, code in enumerate(codes)]
        # Parked: every poll has read the row and subscribed before the first decision.
        await asyncio.sleep(0.2 + waiting / 1000)
        await self.until_servers_idle(max_seconds=0.2 + waiting / 50)
        latencies: list[float] = []
        from_post: list[float] = []
        sampled, rest = codes[:samples], codes[samples:]
        for index, code in enumerate(sampled):
            posted_at = time.time()
            decision = await self.approve(index, code)
            if decision is None:
                failed.add(code)
                continue
            deadline = time.monotonic() + 35
            while code not in answered_at and time.monotonic() < deadline:
                await asyncio.sleep(0.0005)
            if code in answered_at and code not in failed:
                decided_at = datetime.fromisoformat(decision["decided_at"]).timestamp()
                latencies.append(answered_at[code] - decided_at)
                from_post.append(answered_at[code] - posted_at)
        gate = asyncio.Semaphore(self.plan["concurrency"])

        async def approve_untimed(index: int, code: str) -> None:
            async with gate:
                await self.approve(index, code)

        await asyncio.gather(*(approve_untimed(i, code) for i, code in enumerate(rest)))
        await asyncio.gather(*polls)
        await polls_session.close()
        return latencies, from_post, len(failed.intersection(sampled)), create_errors

    async def until_servers_idle(self, *, max_seconds: float) -> None:
        """Until the bare endpoint answers fast on every server three rounds running: the
        agents' polls have stopped arriving and are parked, so the decisions that follow are
        timed against agents waiting, not against agents still coming in."""
        deadline = time.monotonic() + max_seconds
        quiet_rounds = 0
        while quiet_rounds < 3 and time.monotonic() < deadline:
            started = time.perf_counter()
            await asyncio.gather(*(self.bare(index) for index in range(len(self.servers))))
            quick = time.perf_counter() - started < 0.025
            quiet_rounds = quiet_rounds + 1 if quick else 0
            await asyncio.sleep(0.05)

    async def approve(self, index: int, code: str) -> dict[str, Any] | None:
        """Approve through the reviewer API; the recorded decision, or None if that failed."""
        try:
            response = await self.http.post(
                f"{self.server(index)}/api/v1/reviewer/requests/{code}/approve",
                json={"note": "bench"},
                headers=self.reviewer_headers,
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        decision: dict[str, Any] = response.json()["decision"]
        return decision

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
        gate = asyncio.Semaphore(self.plan["concurrency"])

        async def connect(index: int) -> Any:
            # Accepted means subscribed: the consumer joins its groups before it accepts.
            server = self.server(index)
            async with gate:
                return await websockets.connect(
                    server.replace("http://", "ws://") + "/ws/queue/",
                    additional_headers={"Cookie": cookie},
                    origin=Origin(server),
                    max_size=None,
                    open_timeout=60,
                )

        connections = await asyncio.gather(*(connect(i) for i in range(sockets)))
        arrivals: dict[str, list[float]] = defaultdict(list)

        async def read(ws: Any) -> None:
            # Codes are matched after the fact: a fragment may arrive before the POST returns.
            async for message in ws:
                if "beforeend:#queue-rows" in message:
                    for code in set(NEW_ROW.findall(message)):
                        arrivals[code].append(time.time())

        readers = [asyncio.create_task(read(ws)) for ws in connections]
        latencies: list[float] = []
        from_created: list[float] = []
        try:
            for index in range(requests):
                sent_at = time.time()
                created = await self.create_held_document(index)
                code = created["id"]
                created_at = datetime.fromisoformat(created["created_at"]).timestamp()
                deadline = time.monotonic() + 10
                while len(arrivals[code]) < sockets and time.monotonic() < deadline:
                    await asyncio.sleep(0.001)
                latencies.extend(arrived_at - sent_at for arrived_at in arrivals[code])
                from_created.extend(arrived_at - created_at for arrived_at in arrivals[code])
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)
        missing = sockets * requests - len(latencies)
        result = summary(latencies, errors=missing)
        created = summary(from_created)
        result["from_created_p50_ms"] = created["p50_ms"]
        result["from_created_p99_ms"] = created["p99_ms"]
        result["sockets"] = float(sockets)
        result["expected"] = float(sockets * requests)
        return result

    async def run(self) -> dict[str, Any]:
        measures = set(self.plan.get("measures", ("throughput", "gate", "decision", "fan-out")))
        results: dict[str, Any] = {}
        try:
            if "throughput" in measures:
                results["throughput"] = await self.throughput()
            if "gate" in measures:
                results["gate"] = await gate.measure(self.plan)
            if "decision" in measures:
                results["decision_to_agent"] = {
                    str(waiting): await self.decision_to_agent(waiting, same_server=False)
                    for waiting in self.plan["waiting_agents"]
                }
                # The same server only at the largest count (issue 16's target is at 1,000):
                # each round costs seconds, and the count matters more than the route.
                most = max(self.plan["waiting_agents"])
                results["decision_to_agent_same_server"] = {
                    str(most): await self.decision_to_agent(most, same_server=True)
                }
            if "scaling" in measures:
                results["scaling"] = await scaling.measure(self.plan)
            if "fan-out" in measures:
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
