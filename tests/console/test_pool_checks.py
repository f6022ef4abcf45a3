"""The pool checks a connection it hands out with a round trip only when the check could tell
something (console/postgresql/pool_checks.py): observed on the wire, through libpq's trace."""

import os
import resource
import select
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from console.postgresql import pool_checks

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's pool is PostgreSQL's"),
    pytest.mark.django_db,  # the test database exists, and connection params name it
]


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    """A pool of one connection to the test database, checked as the console's is."""
    params = connection.get_connection_params()
    with ConnectionPool(
        kwargs={**params, "autocommit": True},
        min_size=1,
        max_size=1,
        check=pool_checks.check_unless_fresh,
    ) as pool:
        yield pool


@contextmanager
def borrowed(pool: ConnectionPool) -> Iterator[Any]:
    """A connection from the pool, given back as the console's backend gives one back."""
    conn = pool.getconn()
    try:
        yield conn
    finally:
        pool_checks.note_returned(conn)
        pool.putconn(conn)


@contextmanager
def queries_sent(conn: Any) -> Iterator[list[str]]:
    """The Query messages this connection sends meanwhile, as libpq traces them."""
    sent: list[str] = []
    with tempfile.TemporaryFile() as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            yield sent
        finally:
            conn.pgconn.untrace()
            trace.seek(0)
            sent += [line for line in trace.read().decode().splitlines() if "\tF\t" in line]


def _backend_pid(conn: Any) -> int:
    return int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])


def test_a_connection_given_back_moments_ago_is_handed_out_without_a_round_trip(
    pool: ConnectionPool,
) -> None:
    with borrowed(pool) as conn:
        pid = _backend_pid(conn)
    with queries_sent(conn) as sent, borrowed(pool) as again:
        assert again is conn
    assert sent == []
    with borrowed(pool) as conn:
        assert _backend_pid(conn) == pid


def test_a_connection_unused_for_a_while_is_checked_with_a_round_trip(
    pool: ConnectionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    with borrowed(pool) as conn:
        _backend_pid(conn)
    monkeypatch.setattr(pool_checks, "FRESH_SECONDS", 0.0)
    with queries_sent(conn) as sent, borrowed(pool):
        pass
    assert len(sent) == 1 and "Query" in sent[0], sent


def test_a_connection_the_server_ended_while_pooled_is_replaced_not_handed_out(
    pool: ConnectionPool,
) -> None:
    with borrowed(pool) as conn:
        pid = _backend_pid(conn)
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    # The server says goodbye on the socket: wait for it to arrive, as it would meanwhile.
    deadline = time.monotonic() + 10
    while not select.select([conn.fileno()], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the server's goodbye never arrived"

    with borrowed(pool) as replacement:
        assert _backend_pid(replacement) != pid  # a working connection, not the ended one


@pytest.mark.django_db(transaction=True)  # a connection of its own, given back at the end
def test_the_console_pool_checks_this_way_and_hears_of_every_return() -> None:
    connection.ensure_connection()
    pool = connection.pool  # type: ignore[attr-defined]  # PostgreSQL's backend has one
    # Django's default is ConnectionPool.check_connection: a round trip per request.
    assert pool._check is pool_checks.check_unless_fresh
    conn = connection.connection
    connection.close()
    assert connection.connection is None
    assert pool_checks.returned_moments_ago(conn)


def test_a_connection_above_selects_descriptor_limit_is_still_handed_out() -> None:
    # A server holding thousands of reviewer sockets and long polls opens new connections on
    # descriptors above 1024, where select() raises ValueError instead of answering.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("cannot open descriptors above 1024 here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        with ConnectionPool(
            kwargs={**connection.get_connection_params(), "autocommit": True},
            min_size=1,
            max_size=1,
            check=pool_checks.check_unless_fresh,
        ) as pool:
            with borrowed(pool) as conn:
                assert conn.fileno() > 1024
            # Given back moments ago: handed out again without a query (a check that raised
            # would send it back, and the pool would check it again after a backoff).
            with queries_sent(conn) as sent, borrowed(pool) as again:
                assert again is conn
            assert sent == []
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
