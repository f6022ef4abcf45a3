"""`python -m console.bench`: start the console the production way and measure it from outside.

PostgreSQL and Redis come from DATABASE_URL and REDIS_URL, defaulting to the local servers with a
dedicated database `console_bench` (created and migrated here). Two uvicorn processes and a Celery
worker serve; `console.bench.load` drives them from its own process. One table on stdout, the
same numbers as JSON in var/bench/latest.json.

`--only scaling` (not part of the default run) starts the console once per server count of
`--scaling-servers` (1, 2 and 4 by default) and measures creation on each (console.bench.scaling).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from console.bench import aligned, memory, queue_data, scaling, targets
from console.bench.calls import summary
from console.bench.database_cost import maintenance_connection, write_commit_seconds
from console.websocket_protocol import UVICORN_WS

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres:postgres@127.0.0.1:5432/console_bench"
# A database of its own: the test suite's PostgreSQL runs use 0 (.ci/run), and a bench beside them
# would see their keys (whether reviewers are listening, the channel layer's groups) and they its.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
REVIEWER = "bench-reviewer"
REVIEWER_PASSWORD = "bench-password-not-secret"  # noqa: S105 (a loopback-only bench user)

SIZES = {
    "default": {
        "concurrency": 32, "fleet_concurrency": 128, "requests": 3000, "seconds": 15.0,
        "gate_requests": 400,
        "waiting_agents": [1, 100],
        "decision_samples": 50,
        "sockets": 100, "fan_out_requests": 20,
        "scaling_servers": [1, 2, 4], "scaling_requests": 5000, "scaling_lone_requests": 300,
        "scaling_stats_settle_s": 10.5, "commit_probes": 200,
    },
    "full": {
        "concurrency": 32, "fleet_concurrency": 128, "requests": 3000, "seconds": 15.0,
        "gate_requests": 1000,
        "waiting_agents": [1, 100, 1000],
        "decision_samples": 100,
        "sockets": 1000, "fan_out_requests": 20,
        "scaling_servers": [1, 2, 4], "scaling_requests": 10000, "scaling_lone_requests": 1000,
        "scaling_stats_settle_s": 10.5, "commit_probes": 500,
    },
    "tiny": {
        "concurrency": 2, "fleet_concurrency": 4, "requests": 6, "seconds": 5.0,
        "gate_requests": 8,
        "waiting_agents": [1, 2],
        "decision_samples": 2,
        "sockets": 2, "fan_out_requests": 2,
        "scaling_servers": [1, 2], "scaling_requests": 6, "scaling_lone_requests": 4,
        "scaling_stats_settle_s": 0, "commit_probes": 3,
    },
}  # fmt: skip
# scaling_stats_settle_s: idle time before a transaction count is whole
# (console.bench.database_cost); the tiny run leaves transactions unmeasured rather than wait.
# What `--only` can pick; the first four need the servers and the load process. The default run
# is all but the scaling sweep, which starts the console three times over.
MEASURES = ("throughput", "gate", "decision", "fan-out", "memory", "queue", "scaling")
DEFAULT_MEASURES = MEASURES[:-1]
LOAD_MEASURES = {"throughput", "gate", "decision", "fan-out"}


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        "REDIS_URL": os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
        "CHANNEL_LAYER_PREFIX": os.environ.get("CHANNEL_LAYER_PREFIX") or "console-bench",
        "BENCH_ENDPOINTS": "true",
        "LOG_LEVEL": "WARNING",
    }


def _ensure_database(database_url: str) -> None:
    import dj_database_url
    from psycopg import sql

    db = dj_database_url.parse(database_url)
    with maintenance_connection(database_url) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]])
        if exists.fetchone() is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))


def _seed() -> dict[str, str]:
    """A staff reviewer (password and API token) and one agent with a fresh credential."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from agents.models import Agent
    from agents.services import agent_create, credential_issue
    from approvals.policies.models import Outcome, PolicyRule, RuleState
    from approvals.reviewer_tokens import reviewer_token_issue

    user, _ = get_user_model().objects.get_or_create(username=REVIEWER, defaults={"is_staff": True})
    user.set_password(REVIEWER_PASSWORD)
    user.save()
    agent = Agent.objects.filter(name="bench-agent").first() or agent_create(name="bench-agent")
    PolicyRule.objects.update_or_create(
        name="bench: approve lookups at once",
        defaults={
            "tool_glob": "bench_lookup",
            "outcome": Outcome.APPROVE,
            "state": RuleState.ACTIVE,
            "reason": "Lookups change nothing.",
        },
    )
    return {
        "agent_token": credential_issue(agent=agent, label="bench").plaintext,
        "reviewer_token": reviewer_token_issue(user=user).plaintext,
        "reviewer_username": REVIEWER,
        "reviewer_password": REVIEWER_PASSWORD,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _console(env: dict[str, str], servers: int, log_dir: Path) -> Iterator[list[str]]:
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
            [sys.executable, "-m", *args], cwd=BASE_DIR, env=env, stdout=log, stderr=log
        )
        processes.append(process)
        return process

    try:
        urls = []
        for index in range(servers):
            port = _free_port()
            spawn(
                f"server-{index}", "uvicorn", "console.asgi:application", "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "warning", "--no-access-log",
                "--ws-per-message-deflate", "false", "--ws", UVICORN_WS,
            )  # fmt: skip
            urls.append(f"http://127.0.0.1:{port}")
        spawn(
            "worker", "celery", "-A", "console", "worker", "--concurrency", "1", "-l", "WARNING",
            # As deployed (console/Procfile, docs/operations.md): only the tasks' own channel.
            "--without-gossip", "--without-mingle",
        )  # fmt: skip
        for url in urls:
            _wait_until_healthy(url, processes)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_healthy(url: str, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            raise RuntimeError("a console process exited at start-up; see var/bench/*.log")
        try:
            if httpx.get(f"{url}/bench/bare", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer; see var/bench/*.log")


def table(results: dict[str, Any]) -> str:
    rows = [("measure", "rate/s", "p50 ms", "p99 ms", "n", "errors")]

    def add(name: str, numbers: dict[str, float]) -> None:
        rate = f"{numbers['rps']:.0f}" if "rps" in numbers else ""
        rows.append(
            (name, rate, f"{numbers['p50_ms']:.1f}", f"{numbers['p99_ms']:.1f}",
             f"{numbers['count']:.0f}", f"{numbers['errors']:.0f}")
        )  # fmt: skip

    throughput = results.get("throughput")
    if throughput:
        concurrency = f"c={throughput['concurrency']:.0f}"
        add(f"bare Django JSON endpoint ({concurrency})", throughput["bare"])
        add(f"create held request ({concurrency})", throughput["create_held"])
        add(f"create request policy approves ({concurrency})", throughput["create_approved"])
        if "create_held_fleet" in throughput:
            fleet = f"c={throughput['fleet_concurrency']:.0f}"
            add(f"bare Django JSON endpoint ({fleet})", throughput["bare_fleet"])
            add(f"create held request ({fleet})", throughput["create_held_fleet"])
    for concurrency, numbers in results.get("gate", {}).get("by_concurrency", {}).items():
        add(f"/healthz, one server (c={concurrency})", numbers["healthz"])
        add(f"create request policy approves, one server (c={concurrency})",
            numbers["create_approved"])  # fmt: skip
    for waiting, numbers in results.get("decision_to_agent", {}).items():
        add(f"decision to agent, {waiting} waiting", numbers)
    for waiting, numbers in results.get("decision_to_agent_same_server", {}).items():
        add(f"decision to agent, {waiting} waiting, same server", numbers)
    fan_out = results.get("fan_out")
    if fan_out:
        add(f"fan-out to {fan_out['sockets']:.0f} reviewer sockets", fan_out)
    lines = aligned(rows)
    if throughput:
        lines.append(
            f"throughput ratio to bare: held {throughput['held_to_bare_ratio']:.2f}, "
            f"policy-approved {throughput['approved_to_bare_ratio']:.2f}"
            + (
                f"; held at c={throughput['fleet_concurrency']:.0f} "
                f"{throughput['held_to_bare_ratio_fleet']:.2f}"
                if "held_to_bare_ratio_fleet" in throughput
                else ""
            )
        )
        lines.append(
            "server CPU per request (both servers, ms): "
            + ", ".join(
                f"{name} {throughput[key]['server_cpu_ms']:.2f}"
                for name, key in (
                    ("bare", "bare"),
                    ("held", "create_held"),
                    ("policy-approved", "create_approved"),
                )
            )
        )  # fmt: skip
    if throughput:
        lines.append(
            "requests per intake batch (both servers): "
            f"held {throughput['create_held']['requests_per_batch']:.1f}, "
            f"policy-approved {throughput['create_approved']['requests_per_batch']:.1f}"
            + (
                f"; held at c={throughput['fleet_concurrency']:.0f} "
                f"{throughput['create_held_fleet']['requests_per_batch']:.1f}"
                if "create_held_fleet" in throughput
                else ""
            )
        )
    gate = results.get("gate", {}).get("by_concurrency", {})
    if gate:
        lines.append(
            "gate, requests per intake batch (one server): "
            + ", ".join(
                f"c={concurrency} {numbers['create_approved']['requests_per_batch']:.2f}"
                for concurrency, numbers in gate.items()
            )
        )
    return "\n".join(lines)


def prepare(env: dict[str, str]) -> dict[str, str]:
    """The bench database, created and migrated; the seeded credentials."""
    os.environ.update(env)  # this process seeds the same database the servers use
    _ensure_database(env["DATABASE_URL"])
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=BASE_DIR, env=env, check=True,
    )  # fmt: skip
    credentials = _seed()
    # Fresh statistics for what earlier runs left behind, as autovacuum would keep them (it may
    # be off on a test machine, and is here): the run measures the console, not stale plans.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return credentials


def _load(env: dict[str, str], plan: dict[str, Any]) -> dict[str, Any]:
    """The load generator's results, from its own process, for the plan's measures."""
    load = subprocess.run(
        [sys.executable, "-m", "console.bench.load"],
        cwd=BASE_DIR, env=env, input=json.dumps(plan).encode(), capture_output=True,
        check=False,
    )  # fmt: skip
    if load.returncode != 0:
        sys.stderr.write(load.stderr.decode())
        raise SystemExit("the load generator failed")
    results: dict[str, Any] = json.loads(load.stdout)
    return results


def _scaling_sweep(
    env: dict[str, str], plan: dict[str, Any], counts: list[int], log_dir: Path
) -> dict[str, Any]:
    """A fresh console per server count, one after another; a lone caller only on the first."""
    by_servers = {}
    for index, servers in enumerate(counts):
        with _console(env, servers=servers, log_dir=log_dir) as urls:
            measured = _load(
                env,
                {**plan, "measures": ["scaling"], "servers": urls, "scaling_lone": index == 0,
                 "database_url": env["DATABASE_URL"]},
            )  # fmt: skip
        by_servers[str(servers)] = measured["scaling"]
    # After the servers have stopped: what the storage gives a commit, not what the load leaves.
    commits = write_commit_seconds(env["DATABASE_URL"], plan["commit_probes"])
    return {
        "fleet_concurrency": float(plan["fleet_concurrency"]),
        "by_servers": by_servers,
        "write_commit": summary(commits),
    }


def _default_output(measures: set[str]) -> Path:
    name = "latest" if measures == set(DEFAULT_MEASURES) else "only"
    if measures == {"scaling"}:
        name = "scaling"  # kept apart: docs/scaling.md's table comes from it
    return BASE_DIR / "var" / "bench" / f"{name}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument(
        "--only", choices=MEASURES, nargs="+", default=list(DEFAULT_MEASURES),
        help="measure only these parts (for working on one of them); the JSON then goes to "
        "var/bench/only.json (scaling alone: var/bench/scaling.json) unless --output says "
        "otherwise. `scaling` is not part of the default run",
    )  # fmt: skip
    parser.add_argument(
        "--scaling-servers", type=int, nargs="+", metavar="N",
        help="server process counts for the scaling sweep (default: 1 2 4; tiny: 1 2)",
    )  # fmt: skip
    parser.add_argument("--output", type=Path)
    arguments = parser.parse_args()
    measures = set(arguments.only)
    output = arguments.output or _default_output(measures)
    # `timeout`/Ctrl-C end the runner through its finally blocks: no server outlives it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench: terminated"))

    env = _environment()
    plan: dict[str, Any] = {**SIZES[arguments.size], **prepare(env), "measures": sorted(measures)}
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {}
    if measures & LOAD_MEASURES:
        with _console(env, servers=2, log_dir=output.parent) as urls:
            results = _load(env, {**plan, "servers": urls})
    if "memory" in measures:
        # Alone, after the two servers are gone: one fresh server process per memory figure.
        results["memory"] = memory.run(
            env=env, credentials=plan, counts=memory.COUNTS[arguments.size]
        )
    if "queue" in measures:
        # In process against seeded databases of their own, after the servers have stopped.
        results["queue"] = queue_data.run(arguments.size, env["DATABASE_URL"])
    if "scaling" in measures:
        counts = arguments.scaling_servers or plan["scaling_servers"]
        results["scaling"] = _scaling_sweep(env, plan, counts, output.parent)
    found = targets.targets(results)
    results["targets"] = targets.as_json(found)
    results["machine"] = {"cpus": os.cpu_count(), "size": arguments.size}
    results["duration_s"] = time.monotonic() - started
    output.write_text(json.dumps(results, indent=2))
    if measures & LOAD_MEASURES:
        print(table(results))
    if "memory" in results:
        print(memory.table(results["memory"]))
    if "queue" in results:
        print(queue_data.table(results["queue"]))
    if "scaling" in results:
        print(scaling.table(results["scaling"]))
    if found:
        print(targets.table(found))
    print(f"({arguments.size} run, {results['duration_s']:.0f} s; JSON in {output})")


if __name__ == "__main__":
    main()
