"""The scaling sweep: request creation with 1, 2 and 4 server processes, and what each call costs.

`python -m console.bench --only scaling` (docs/scaling.md is built on it). The runner starts a
fresh console per server count; `measure` runs in the load process against it: held and
policy-approved creation at a fleet's concurrency, spread over the servers, and with the first
server count also at concurrency 1 (a lone caller: no batching). Beside each rate, per call:
the servers' CPU, PostgreSQL's CPU, round trips and transactions (console.bench.database_cost),
the load process's own CPU, and how many cores the machine was busy on meanwhile, ours and everyone
else's: on a shared machine the rates say little without it.
"""

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from console.bench import aligned
from console.bench.calls import APPROVED_BODY, HELD_BODY, closed_loop, creation_call
from console.bench.database_cost import DatabaseMeter, cost_between
from console.bench.memory import process_cpu_ticks

CALLS = {"held": (HELD_BODY, "pending"), "policy-approved": (APPROVED_BODY, "approved")}
WARM_UP_CALLS_PER_SERVER = 20


def parse_busy_ticks(proc_stat: str) -> int:
    """Clock ticks every core together spent busy since boot, from /proc/stat's first line."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(field) for field in proc_stat.splitlines()[0].split()[1:9]
    )
    return user + nice + system + irq + softirq + steal  # guest time is inside user already


def _machine_busy_ticks() -> int:
    return parse_busy_ticks(Path("/proc/stat").read_text())


def per_call(
    numbers: dict[str, float],
    *,
    server_ticks: int,
    load_ticks: int,
    postgres_ticks: int | None,
    round_trips: int | None,
    transactions: int | None,
    grown_bytes: int,
    backends: int,
    machine_busy_ticks: int,
    wall_s: float,
    ticks_per_s: float,
) -> dict[str, float | None]:
    """A phase's costs per successful call (milliseconds of CPU), and the cores busy during it."""
    calls = max(1.0, numbers["count"])

    def cpu_ms(ticks: int | None) -> float | None:
        return None if ticks is None else 1000 * ticks / ticks_per_s / calls

    ours = server_ticks + load_ticks + (postgres_ticks or 0)
    return {
        **numbers,
        "server_cpu_ms": cpu_ms(server_ticks),
        "postgres_cpu_ms": cpu_ms(postgres_ticks),
        "load_cpu_ms": cpu_ms(load_ticks),
        "round_trips": None if round_trips is None else round_trips / calls,
        "transactions": None if transactions is None else transactions / calls,
        # The database's growth (pages, so coarse over few calls), and its connections at the end.
        "database_bytes": grown_bytes / calls,
        "postgres_backends": float(backends),
        "busy_cores_ours": ours / ticks_per_s / wall_s if wall_s > 0 else 0.0,
        "busy_cores_machine": machine_busy_ticks / ticks_per_s / wall_s if wall_s > 0 else 0.0,
    }


async def measure(plan: dict[str, Any]) -> dict[str, Any]:
    """{"servers": N, "phases": [one per call and concurrency]}, against plan["servers"]."""
    servers: list[str] = plan["servers"]
    fleet, lone = plan["fleet_concurrency"], 1
    meter = DatabaseMeter(plan["database_url"])
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            pids = []
            for url in servers:
                async with session.get(f"{url}/bench/process") as response:
                    pids.append((await response.json())["pid"])

            def server(index: int) -> str:
                return servers[index % len(servers)]

            calls = {
                name: creation_call(
                    session, server, agent_token=plan["agent_token"], body=body, status=status
                )
                for name, (body, status) in CALLS.items()
            }
            for call in calls.values():  # every server's pool, caches and compiled policy
                await closed_loop(
                    call, concurrency=8, count=WARM_UP_CALLS_PER_SERVER * len(servers), seconds=10
                )
            settle_s = plan["scaling_stats_settle_s"]
            await asyncio.sleep(settle_s)  # the warm-up's transactions reported first
            phases = []
            counts = {fleet: plan["scaling_requests"]}
            if plan.get("scaling_lone"):
                counts[lone] = plan["scaling_lone_requests"]
            for concurrency, count in counts.items():
                for name, call in calls.items():
                    numbers = await _phase(
                        call, concurrency=concurrency, count=count, seconds=plan["seconds"],
                        server_pids=pids, meter=meter, settle_s=settle_s,
                    )  # fmt: skip
                    phases.append({"call": name, "concurrency": float(concurrency), **numbers})
    finally:
        meter.close()
    return {"servers": len(servers), "phases": phases}


async def _phase(
    call: Callable[[int], Awaitable[None]],
    *,
    concurrency: int,
    count: int,
    seconds: float,
    server_pids: list[int],
    meter: DatabaseMeter,
    settle_s: float,
) -> dict[str, float | None]:
    """One closed loop and its costs. `settle_s`: how long the backends must be idle before
    their transaction counts are whole (database_cost); 0 leaves them unmeasured (None)."""

    def server_ticks() -> int:
        return sum(process_cpu_ticks(pid) for pid in server_pids)

    transactions_before = meter.transactions()
    database_before, load_before = meter.snapshot(), process_cpu_ticks(os.getpid())
    servers_before, machine_before = server_ticks(), _machine_busy_ticks()
    started = time.monotonic()
    numbers = await closed_loop(call, concurrency=concurrency, count=count, seconds=seconds)
    wall_s = time.monotonic() - started
    servers_after, machine_after = server_ticks(), _machine_busy_ticks()
    load_after = process_cpu_ticks(os.getpid())
    database_after = meter.snapshot()
    database = cost_between(database_before, database_after)
    transactions = None
    if settle_s:
        await asyncio.sleep(settle_s)
        transactions = meter.transactions() - transactions_before
    return per_call(
        numbers,
        server_ticks=servers_after - servers_before,
        load_ticks=load_after - load_before,
        postgres_ticks=database.cpu_ticks,
        round_trips=database.round_trips,
        transactions=transactions,
        grown_bytes=database.grown_bytes,
        backends=database_after.backends,
        machine_busy_ticks=machine_after - machine_before,
        wall_s=wall_s,
        ticks_per_s=os.sysconf("SC_CLK_TCK"),
    )


def table(sweep: dict[str, Any]) -> str:
    """One row per server count, call and concurrency; `x 1 server` compares the rate with the
    same call and concurrency on one server process."""
    rows = [
        ("servers", "call", "c", "rate/s", "x 1 server", "p50 ms", "p99 ms", "server CPU ms",
         "PG CPU ms", "round trips", "transactions", "DB bytes", "PG conns",
         "cores busy (ours/all)", "errors"),
    ]  # fmt: skip
    by_servers: dict[str, dict[str, Any]] = sweep["by_servers"]
    first = by_servers[min(by_servers, key=int)]
    base = {(phase["call"], phase["concurrency"]): phase["rps"] for phase in first["phases"]}

    def figure(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for servers in sorted(by_servers, key=int):
        for phase in by_servers[servers]["phases"]:
            one_server = base.get((phase["call"], phase["concurrency"]))
            rows.append(
                (servers, phase["call"], f"{phase['concurrency']:.0f}", f"{phase['rps']:.0f}",
                 figure(phase["rps"] / one_server if one_server else None, 2),
                 f"{phase['p50_ms']:.1f}", f"{phase['p99_ms']:.1f}",
                 figure(phase["server_cpu_ms"], 2), figure(phase["postgres_cpu_ms"], 2),
                 figure(phase["round_trips"], 2), figure(phase["transactions"], 3),
                 f"{phase['database_bytes']:.0f}", f"{phase['postgres_backends']:.0f}",
                 f"{phase['busy_cores_ours']:.2f}/{phase['busy_cores_machine']:.2f}",
                 f"{phase['errors']:.0f}")
            )  # fmt: skip
    lines = aligned(rows, text_columns=(0, 1))
    lines.append(
        "(per call: CPU of all server processes / of the database's PostgreSQL backends, round "
        "trips, transactions (read-only ones too), database growth in bytes; PostgreSQL "
        f"connections at the end; {os.cpu_count()} cores; `x 1 server`: the rate against the "
        "first server count's)"
    )
    commit = sweep["write_commit"]
    lines.append(
        f"a one-row write commit, servers stopped: p50 {commit['p50_ms']:.2f} ms, "
        f"p99 {commit['p99_ms']:.2f} ms (n={commit['count']:.0f}; the audit chain head is held "
        "at least this long per batch)"
    )
    return "\n".join(lines)
