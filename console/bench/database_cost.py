"""What measured calls cost PostgreSQL: its backends' CPU, the round trips they served, commits.

Read from outside, like the servers' CPU. The bench database's client backends are listed in
pg_stat_activity, through the maintenance database `postgres` so that reading them is not
counted. Their CPU comes from /proc/<pid>/stat (when PostgreSQL runs on this machine), their
round trips from the kernel's counters of their TCP sockets (`ss -ti`: `data_segs_in`, the
segments the client sent; on loopback a query, a BEGIN or a COMMIT is one, a COPY two or three),
and the commits from pg_stat_database. A backend reports its commits there at most once a
second while busy and ten seconds after it goes idle (PostgreSQL 15, measured): a commit count
is only whole once the backends have been idle that long. No extension is needed
(pg_stat_statements must be preloaded, which a shared server may not do), and the servers
measure nothing themselves.
"""

import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from console.bench.memory import parse_cpu_ticks

_DATA_SEGMENTS_IN = re.compile(r"\bdata_segs_in:(\d+)")


def maintenance_connection(database_url: str) -> psycopg.Connection[Any]:
    """An autocommit connection to the server's `postgres` database, as the URL's user."""
    return _connect(database_url, dbname="postgres", autocommit=True)


def _connect(database_url: str, *, dbname: str = "", autocommit: bool) -> psycopg.Connection[Any]:
    import dj_database_url

    db = dj_database_url.parse(database_url)
    return psycopg.connect(
        dbname=dbname or db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"],
        port=db["PORT"] or 5432, autocommit=autocommit,
    )  # fmt: skip


# Created and dropped by write_commit_seconds; no model has it.
COMMIT_PROBE_TABLE = "bench_commit_probe"


def write_commit_seconds(database_url: str, count: int) -> list[float]:
    """How long each of `count` one-row write transactions took to commit, in seconds.

    That is the WAL flush every creation's commit waits for while it holds the audit chain
    head (docs/scaling.md): with the round trips, what bounds how many batches a second the
    whole fleet can commit. A table of its own, in the bench database, dropped afterwards.
    """
    seconds = []
    with _connect(database_url, autocommit=False) as connection:
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {COMMIT_PROBE_TABLE} (id bigserial PRIMARY KEY)"
        )
        connection.commit()
        try:
            for _ in range(count):
                connection.execute(f"INSERT INTO {COMMIT_PROBE_TABLE} DEFAULT VALUES")
                started = time.perf_counter()
                connection.commit()
                seconds.append(time.perf_counter() - started)
        finally:
            connection.rollback()
            connection.execute(f"DROP TABLE {COMMIT_PROBE_TABLE}")
            connection.commit()
    return seconds


def parse_segments_in(ss_output: str) -> dict[int, int]:
    """Peer port -> data segments received, from `ss -tinH state established` output.

    Each socket is a line `Recv-Q Send-Q local:port peer:port`, then an indented line of its
    TCP counters; a socket that has received no data yet has no `data_segs_in`.
    """
    segments: dict[int, int] = {}
    peer_port: int | None = None
    for line in ss_output.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            peer_port = int(line.split()[3].rsplit(":", 1)[1])
            segments[peer_port] = 0
        elif peer_port is not None and (found := _DATA_SEGMENTS_IN.search(line)):
            segments[peer_port] = int(found.group(1))
    return segments


@dataclass(frozen=True)
class DatabaseSnapshot:
    cpu_ticks: dict[int, int]  # backend pid -> user + system ticks; empty if not on this machine
    segments_in: dict[int, int]  # backend's client port -> data segments the backend received
    backends: int  # the database's client connections (every server's pool, the worker's)
    size_bytes: int  # pg_database_size: tables, indexes and their free space


@dataclass(frozen=True)
class DatabaseCost:
    """Between two snapshots. None: not readable here (PostgreSQL elsewhere, no `ss`)."""

    cpu_ticks: int | None
    round_trips: int | None
    grown_bytes: int


def _grown(before: Mapping[int, int], after: Mapping[int, int]) -> int:
    """What the counters that still exist added. A key first seen after (a new backend, or a
    port or pid reused by one) counts from zero; one gone before the end is lost."""
    return sum(
        value - before[key] if value >= before.get(key, value + 1) else value
        for key, value in after.items()
    )


def cost_between(before: DatabaseSnapshot, after: DatabaseSnapshot) -> DatabaseCost:
    return DatabaseCost(
        cpu_ticks=_grown(before.cpu_ticks, after.cpu_ticks) if after.cpu_ticks else None,
        round_trips=(_grown(before.segments_in, after.segments_in) if after.segments_in else None),
        grown_bytes=after.size_bytes - before.size_bytes,
    )


class DatabaseMeter:
    """Snapshots of one database's backends, through one maintenance connection."""

    def __init__(self, database_url: str) -> None:
        import dj_database_url

        db = dj_database_url.parse(database_url)
        self.name = db["NAME"]
        self.port = int(db["PORT"] or 5432)
        self.connection = maintenance_connection(database_url)

    def close(self) -> None:
        self.connection.close()

    def snapshot(self) -> DatabaseSnapshot:
        backends = self.connection.execute(
            "SELECT pid, client_port FROM pg_stat_activity "
            "WHERE datname = %s AND backend_type = 'client backend'",
            [self.name],
        ).fetchall()
        (size_bytes,) = self.connection.execute(
            "SELECT pg_database_size(%s)", [self.name]
        ).fetchone() or (0,)
        return DatabaseSnapshot(
            cpu_ticks=self._cpu_ticks([pid for pid, _ in backends]),
            segments_in=self._segments_in({port for _, port in backends if port is not None}),
            backends=len(backends),
            size_bytes=int(size_bytes),
        )

    def transactions(self) -> int:
        """Commits and rollbacks in the database so far, as its backends last reported them."""
        (count,) = self.connection.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            [self.name],
        ).fetchone() or (0,)
        return int(count)

    @staticmethod
    def _cpu_ticks(pids: list[int]) -> dict[int, int]:
        ticks = {}
        for pid in pids:
            try:
                ticks[pid] = parse_cpu_ticks(Path(f"/proc/{pid}/stat").read_text())
            except FileNotFoundError:
                continue  # not on this machine, or it just ended
        return ticks

    def _segments_in(self, client_ports: set[int]) -> dict[int, int]:
        try:
            listed = subprocess.run(  # noqa: S603 (a fixed command, our own port number)
                ["ss", "-tinH", "state", "established", f"( sport = :{self.port} )"],  # noqa: S607
                capture_output=True, text=True, check=True, timeout=10,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return {}
        by_port = parse_segments_in(listed.stdout)
        return {port: by_port[port] for port in client_ports if port in by_port}
