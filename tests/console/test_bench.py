"""`make bench` end to end in its tiny size: every figure is there and is a number.

Not a speed test (the bench prints speeds; tests never time them): it proves the runner starts
the console, drives it from its own process and writes the JSON the tables in
docs/benchmarks.md come from.
"""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from psycopg import sql

from console.bench.queue_data import SIZES, database_url_for
from tests.subprocess_env import drop_redis_keys, own_redis_keys
from tests.test_multiprocess import _test_database_url

needs_servers = pytest.mark.skipif(
    connection.vendor != "postgresql" or not settings.REDIS_URL,
    reason="the bench runs the production way: PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)",
)

LATENCY_KEYS = {"count", "errors", "p50_ms", "p99_ms"}
MEMORY_KEYS = {"count", "parked", "errors", "rss_before_mb", "rss_after_mb", "kb_per_connection"}
TARGET_KEYS = {
    *(f"gate_{p}_ratio_c{c}" for p in ("p50", "p99") for c in (1, 8)),
    "server_cpu_held_ms",
    "server_cpu_approved_ms",
    "decision_to_agent_same_server_p99_ms",
    "decision_to_agent_other_server_p99_ms",
    "fan_out_p99_ms",
    "idle_websockets_rss_mb",
    "queue_page_p95_ms",
    "queue_page_added_queries",
}


def _assert_numbers(figures: dict, keys: set[str]) -> None:
    assert keys <= figures.keys(), f"missing {keys - figures.keys()}"
    for key in keys:
        assert isinstance(figures[key], int | float), (key, figures[key])


def test_it_serves_no_bench_endpoint_unless_asked(client) -> None:
    assert settings.BENCH_ENDPOINTS is False
    assert client.get("/bench/bare").status_code == 404


def _drop_queue_databases(database_url: str) -> None:
    """The queue section seeds a database per size next to the bench database: drop them."""
    db = settings.DATABASES["default"]
    with psycopg.connect(
        dbname="postgres", user=db["USER"], password=db["PASSWORD"] or None,
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, autocommit=True,
    ) as admin:  # fmt: skip
        for pending, decided in SIZES["tiny"]:
            name = database_url_for(database_url, pending, decided).rsplit("/", 1)[1]
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def queue_databases_dropped() -> Iterator[None]:
    yield
    _drop_queue_databases(_test_database_url())


@pytest.fixture
def bench_redis_keys() -> Iterator[dict[str, str]]:
    # The bench's servers and worker must never take the suite's tasks, even if a timeout kills
    # the bench before it stops them (tests/subprocess_env.py).
    keys = own_redis_keys("bench")
    yield keys
    drop_redis_keys(keys)


@needs_servers
@pytest.mark.django_db(transaction=True)
def test_it_writes_every_figure_as_a_number(
    tmp_path: Path, queue_databases_dropped, bench_redis_keys
) -> None:
    output = tmp_path / "latest.json"
    completed = _tiny_bench(bench_redis_keys, "--output", str(output), timeout=420)
    assert "create held request" in completed.stdout.decode()

    results = json.loads(output.read_text())
    throughput = results["throughput"]
    _assert_numbers(throughput, {"concurrency", "held_to_bare_ratio"})
    _assert_numbers(throughput["bare"], LATENCY_KEYS | {"rps"})
    _assert_numbers(throughput["create_held"], LATENCY_KEYS | {"rps"})
    assert throughput["create_held"]["count"] > 0
    _assert_numbers(throughput["create_held_fleet"], LATENCY_KEYS | {"rps"})
    # Counted by the servers' intakes: every creation was written in some batch.
    for creation in ("create_held", "create_approved", "create_held_fleet"):
        _assert_numbers(throughput[creation], {"requests_per_batch"})
        assert throughput[creation]["requests_per_batch"] >= 1.0
    assert throughput["bare"]["requests_per_batch"] == 0.0  # the bare view writes nothing
    assert "requests per intake batch (both servers): held" in completed.stdout.decode()
    _assert_numbers(throughput["bare_fleet"], LATENCY_KEYS | {"rps"})
    assert throughput["fleet_concurrency"] == 4
    gate = results["gate"]
    assert gate["server"].startswith("http://127.0.0.1:")  # one server process, the first
    assert set(gate["by_concurrency"]) == {"1", "8"}
    for figures in gate["by_concurrency"].values():
        _assert_numbers(figures, {"p50_ratio", "p99_ratio"})
        for call in ("healthz", "create_approved"):
            _assert_numbers(figures[call], LATENCY_KEYS | {"rps", "server_cpu_ms"})
            assert figures[call]["count"] > 0 and figures[call]["errors"] == 0
        _assert_numbers(figures["create_approved"], {"intake_batches", "requests_per_batch"})
    # Counted by the server's intake: a lone caller is written alone, every time.
    lone = gate["by_concurrency"]["1"]["create_approved"]
    assert lone["requests_per_batch"] == 1.0
    assert lone["intake_batches"] == lone["count"]
    assert gate["by_concurrency"]["8"]["create_approved"]["requests_per_batch"] >= 1.0
    assert "gate, requests per intake batch (one server): c=1 1.00" in completed.stdout.decode()
    assert set(results["decision_to_agent"]) == {"1", "2"}
    assert set(results["decision_to_agent_same_server"]) == {"2"}
    for figures in [
        *results["decision_to_agent"].values(),
        *results["decision_to_agent_same_server"].values(),
    ]:
        _assert_numbers(
            figures, LATENCY_KEYS | {"from_post_p50_ms", "from_post_p99_ms", "setup_errors"}
        )
        # Requests that could not be created are counted apart from the decisions' errors.
        assert figures["setup_errors"] == 0 and figures["errors"] == 0
    _assert_numbers(
        results["fan_out"],
        LATENCY_KEYS | {"sockets", "expected", "from_created_p50_ms", "from_created_p99_ms"},
    )
    # The tiny run is small enough that nothing should go missing.
    assert results["fan_out"]["count"] == results["fan_out"]["expected"]
    sizes = results["queue"]["sizes"]
    assert [(size["pending"], size["decided"]) for size in sizes] == SIZES["tiny"]
    for size in sizes:
        assert "queue page, staff" in size["cases"] and "queue API, first page" in size["cases"]
        for figures in size["cases"].values():
            _assert_numbers(figures, {"p50_ms", "p95_ms", "cpu_p50_ms", "cpu_p95_ms", "queries"})
    assert set(results["memory"]) == {"long_polls", "websockets"}
    for by_count in results["memory"].values():
        figures = by_count["20"]
        _assert_numbers(figures, MEMORY_KEYS)
        assert figures["rss_after_mb"] > 0
    # Every target of issue 16, beside its figure, in the JSON and in the closing table.
    assert set(results["targets"]) == TARGET_KEYS
    for target in results["targets"].values():
        _assert_numbers(target, {"figure", "limit"})
        assert isinstance(target["met"], bool)
    printed = completed.stdout.decode()
    closing = printed[printed.index("queue and reviewer API") :]  # after the other tables
    for target in results["targets"].values():
        assert target["measure"] in closing


def _bench_module(
    redis_keys: dict[str, str], module: str, *arguments: str, timeout: float = 300
) -> subprocess.CompletedProcess[bytes]:
    """`python -m <module> ...` (console.bench or a part of it) against the test database; it
    must succeed."""
    completed = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=settings.BASE_DIR,
        env={**os.environ, **redis_keys, "DATABASE_URL": _test_database_url()},
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()[-3000:]
    return completed


def _tiny_bench(
    redis_keys: dict[str, str], *arguments: str, timeout: float = 300
) -> subprocess.CompletedProcess[bytes]:
    """`python -m console.bench --size tiny ...` against the test database; it must succeed."""
    return _bench_module(redis_keys, "console.bench", "--size", "tiny", *arguments, timeout=timeout)


@needs_servers
@pytest.mark.django_db(transaction=True)
def test_only_measures_the_parts_asked_for(tmp_path: Path, bench_redis_keys) -> None:
    output = tmp_path / "only.json"
    completed = _tiny_bench(bench_redis_keys, "--only", "decision", "--output", str(output))
    results = json.loads(output.read_text())
    assert set(results) == {
        "decision_to_agent",
        "decision_to_agent_same_server",
        "targets",
        "machine",
        "duration_s",
    }
    assert set(results["targets"]) == {
        "decision_to_agent_same_server_p99_ms",
        "decision_to_agent_other_server_p99_ms",
    }
    assert "decision to agent, 2 waiting" in completed.stdout.decode()
    assert "create held request" not in completed.stdout.decode()


@needs_servers
@pytest.mark.django_db(transaction=True)
def test_the_scaling_sweep_starts_a_console_per_server_count(
    tmp_path: Path, bench_redis_keys
) -> None:
    output = tmp_path / "scaling.json"
    completed = _tiny_bench(
        bench_redis_keys, "--only", "scaling", "--scaling-servers", "1", "2",
        "--output", str(output),
    )  # fmt: skip
    results = json.loads(output.read_text())
    assert set(results) == {"scaling", "targets", "machine", "duration_s"}
    by_servers = results["scaling"]["by_servers"]
    assert set(by_servers) == {"1", "2"}
    # A lone caller only with the first count: it needs no more than one server.
    assert [(phase["call"], phase["concurrency"]) for phase in by_servers["1"]["phases"]] == [
        ("held", 4.0), ("policy-approved", 4.0), ("held", 1.0), ("policy-approved", 1.0),
    ]  # fmt: skip
    assert [phase["concurrency"] for phase in by_servers["2"]["phases"]] == [4.0, 4.0]
    for sweep in by_servers.values():
        for phase in sweep["phases"]:
            _assert_numbers(
                phase,
                LATENCY_KEYS | {"rps", "server_cpu_ms", "load_cpu_ms", "busy_cores_machine"},
            )
            assert phase["count"] > 0 and phase["errors"] == 0
            # PostgreSQL runs here: its backends' CPU and round trips are read from outside.
            _assert_numbers(phase, {"postgres_cpu_ms", "round_trips"})
            assert phase["round_trips"] > 0
            assert phase["transactions"] is None  # the tiny run does not wait for the counts
    # Timed once the servers have stopped: what the storage gives a commit.
    _assert_numbers(results["scaling"]["write_commit"], LATENCY_KEYS)
    assert results["scaling"]["write_commit"]["count"] == 3
    assert "x 1 server" in completed.stdout.decode()
    assert "a one-row write commit" in completed.stdout.decode()


@needs_servers
@pytest.mark.django_db(transaction=True)
def test_the_writer_alone_prints_its_cpu_per_request(bench_redis_keys) -> None:
    completed = _bench_module(
        bench_redis_keys, "console.bench.writer", "--batch", "2", "--batches", "2", timeout=120
    )
    printed = completed.stdout.decode()
    assert re.search(r"batches of 2 policy-approved requests: median \d+\.\d+ ms", printed), printed
