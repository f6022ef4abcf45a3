"""The scaling sweep's parts: reading PostgreSQL's side of a call, the costs per call, the table.

No figure is checked here (the bench prints them); the end-to-end run is in test_bench.py.
"""

import os
from typing import Any

import psycopg
import pytest
from django.db import connection

from console.bench.database_cost import (
    COMMIT_PROBE_TABLE,
    DatabaseMeter,
    DatabaseSnapshot,
    cost_between,
    parse_segments_in,
    write_commit_seconds,
)
from console.bench.scaling import parse_busy_ticks, per_call, table
from tests.test_multiprocess import _test_database_url

# `ss -tinH state established '( sport = :5432 )'`, trimmed: two IPv4 backends, one IPv6, one
# that has received nothing yet.
SS_OUTPUT = """\
0      0          127.0.0.1:5432    127.0.0.1:49094
\t bbr wscale:10,10 rto:212 mss:55296 bytes_received:82292 segs_out:71 segs_in:78 data_segs_out:67 data_segs_in:68 app_limited
0      0          127.0.0.1:5432    127.0.0.1:52142
\t bbr wscale:10,10 rto:216 segs_out:1035 segs_in:1132 data_segs_out:1025 data_segs_in:1026 busy:4264ms
0      0              [::1]:5432        [::1]:40000
\t cubic rto:204 segs_out:5 segs_in:9 data_segs_out:4 data_segs_in:3
0      0          127.0.0.1:5432    127.0.0.1:60001
\t cubic rto:204 segs_out:1 segs_in:2
"""  # noqa: E501 (ss prints each socket's counters on one line)


def test_it_reads_each_backends_received_segments_by_client_port() -> None:
    assert parse_segments_in(SS_OUTPUT) == {49094: 68, 52142: 1026, 40000: 3, 60001: 0}


def test_the_cost_counts_what_each_backend_added() -> None:
    before = DatabaseSnapshot(
        cpu_ticks={10: 100, 11: 50, 12: 7}, segments_in={5000: 30}, backends=3, size_bytes=8192
    )
    after = DatabaseSnapshot(
        # 10 grew by 20; 11 is new since (its pid reused: lower than before), so all of it
        # counts; 12 ended meanwhile and is lost; 13 started meanwhile.
        cpu_ticks={10: 120, 11: 5, 13: 9},
        segments_in={5000: 42, 5001: 8},
        backends=3,
        size_bytes=24576,
    )

    cost = cost_between(before, after)

    assert cost.cpu_ticks == 20 + 5 + 9
    assert cost.round_trips == 12 + 8
    assert cost.grown_bytes == 16384


def test_the_cost_is_unknown_where_nothing_could_be_read() -> None:
    # PostgreSQL on another machine: no /proc entries, no sockets of its own here.
    nothing = DatabaseSnapshot(cpu_ticks={}, segments_in={}, backends=2, size_bytes=8192)

    cost = cost_between(nothing, nothing)

    assert cost.cpu_ticks is None and cost.round_trips is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's backends")
@pytest.mark.django_db
def test_it_counts_a_backends_round_trips_and_cpu() -> None:
    meter = DatabaseMeter(_test_database_url())
    client = psycopg.connect(_test_database_url().replace("postgres://", "postgresql://"))
    try:
        client.execute("SELECT 1")  # connected and listed before the first snapshot
        client.commit()
        before = meter.snapshot()
        for number in range(5):
            client.execute("SELECT %s", [number])  # BEGIN, then five queries
        client.commit()
        after = meter.snapshot()
        counted_commits = meter.transactions()
    finally:
        client.close()
        meter.close()

    cost = cost_between(before, after)
    # BEGIN, five queries and COMMIT: seven round trips from this client, more if the test
    # database's other backends (the test's own connection) spoke meanwhile.
    assert cost.round_trips is not None and cost.round_trips >= 7
    assert cost.cpu_ticks is not None and cost.cpu_ticks >= 0
    assert after.backends >= 1  # this client, at least
    assert counted_commits >= 0


def test_it_reads_the_machines_busy_ticks() -> None:
    proc_stat = "cpu  100 5 40 800 20 3 2 1 0 0\ncpu0 50 2 20 400 10 1 1 0 0 0\n"

    # The first line, all cores: user, nice, system, irq, softirq, steal; not idle nor iowait.
    assert parse_busy_ticks(proc_stat) == 151


def test_costs_are_per_successful_call() -> None:
    numbers = {"count": 500.0, "errors": 2.0, "p50_ms": 9.0, "p99_ms": 20.0, "rps": 250.0}

    costs = per_call(
        numbers, server_ticks=50, load_ticks=20, postgres_ticks=30, round_trips=1000,
        transactions=None, grown_bytes=1_000_000, backends=7, machine_busy_ticks=300, wall_s=2.0,
        ticks_per_s=100,
    )  # fmt: skip

    assert costs["server_cpu_ms"] == 1.0  # 0.5 s over 500 calls
    assert costs["postgres_cpu_ms"] == 0.6
    assert costs["load_cpu_ms"] == 0.4
    assert costs["round_trips"] == 2.0
    assert costs["transactions"] is None  # not measured: left unknown, never zero
    assert costs["database_bytes"] == 2000
    assert costs["postgres_backends"] == 7
    assert costs["busy_cores_ours"] == 0.5  # 100 ticks in 2 s
    assert costs["busy_cores_machine"] == 1.5
    assert costs["rps"] == 250.0


_WRITE_COMMIT = {"count": 200.0, "errors": 0.0, "p50_ms": 4.31, "p99_ms": 27.99}


def _phase(call: str, concurrency: float, rps: float, **costs: Any) -> dict[str, Any]:
    return {
        "call": call, "concurrency": concurrency, "rps": rps, "p50_ms": 10.0, "p99_ms": 30.0,
        "count": 100.0, "errors": 0.0, "server_cpu_ms": 1.25, "postgres_cpu_ms": 0.5,
        "load_cpu_ms": 0.3, "round_trips": 1.5, "transactions": 0.05, "database_bytes": 2900.0,
        "postgres_backends": 12.0, "busy_cores_ours": 1.2,
        "busy_cores_machine": 1.9, **costs,
    }  # fmt: skip


def test_the_table_compares_each_rate_with_one_server() -> None:
    sweep: dict[str, Any] = {
        "by_servers": {
            "1": {
                "servers": 1,
                "phases": [_phase("held", 128.0, 1000.0), _phase("held", 1.0, 60.0)],
            },
            "2": {
                "servers": 2,
                "phases": [_phase("held", 128.0, 1500.0, postgres_cpu_ms=None, transactions=None)],
            },
        },
        "write_commit": _WRITE_COMMIT,
    }

    rows = [[cell.strip() for cell in row.split("|")] for row in table(sweep).splitlines()]

    assert rows[2] == [
        "1", "held", "128", "1000", "1.00", "10.0", "30.0", "1.25", "0.50", "1.50", "0.050",
        "2900", "12", "1.20/1.90", "0",
    ]  # fmt: skip
    assert rows[3][:5] == ["1", "held", "1", "60", "1.00"]
    # Twice the servers, 1.5 times the rate; what could not be read shows as "-".
    assert rows[4][:5] == ["2", "held", "128", "1500", "1.50"]
    assert rows[4][8] == "-" and rows[4][10] == "-"
    assert f"{os.cpu_count()} cores" in rows[-2][0]


def test_the_table_ends_with_the_write_commit_time() -> None:
    sweep: dict[str, Any] = {
        "by_servers": {"1": {"servers": 1, "phases": [_phase("held", 128.0, 1000.0)]}},
        "write_commit": _WRITE_COMMIT,
    }

    last = table(sweep).splitlines()[-1]

    assert last.startswith("a one-row write commit, servers stopped: p50 4.31 ms, p99 27.99 ms")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="commits to PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_it_times_write_commits_in_a_table_of_its_own() -> None:
    seconds = write_commit_seconds(_test_database_url(), 3)

    assert len(seconds) == 3 and all(second > 0 for second in seconds)
    with connection.cursor() as cursor:  # dropped afterwards: nothing left in the database
        cursor.execute("SELECT to_regclass(%s)", [COMMIT_PROBE_TABLE])
        assert cursor.fetchone() == (None,)
