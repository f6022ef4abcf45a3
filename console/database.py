"""What is wrong with the database, in one sentence an operator can act on.

A PostgreSQL database that does not exist, or a server that refuses, used to show as psycopg's
pool timing out ("couldn't get a connection after 10.00 sec") after a warning per retry: the
pool retries in the background and keeps the reason to itself. One direct connection with a
short timeout gets the server's own answer instead, in milliseconds when the server answers at
all. The PostgreSQL backend (console/postgresql) asks before its pool first opens and after the
pool times out, so `migrate`, any other command and a Celery worker (whose Django checks query
at start) fail at once with the reason; the ASGI server asks before it serves
(console/asgi.py); /readyz asks through the pool (console/health.py).
"""

from collections.abc import Mapping
from typing import Any

import psycopg
from django.db import DatabaseError, connections
from psycopg_pool import ConnectionPool, PoolTimeout

# libpq's connect_timeout: how long a direct probe waits for a server that does not answer at
# all (a black-holed host). Refusals and "does not exist" come back at once. libpq's minimum is 2.
PROBE_CONNECT_TIMEOUT_SECONDS = 3
# How long /readyz waits for a pooled connection. A server whose requests cannot get one within
# this is not serving either.
HEALTH_POOL_WAIT_SECONDS = 2.0


class DatabaseUnavailable(psycopg.OperationalError):
    """The database cannot be used; the message says why and what to do.

    An OperationalError, so Django wraps it as django.db.OperationalError as it does any other
    connection failure, and code that handles those handles this.
    """


def _where(params: Mapping[str, Any]) -> tuple[str, str, str]:
    """The database's name, its host, and where that is, as the operator wrote it."""
    host = str(params.get("host") or "")
    port = params.get("port") or 5432
    # No host, or a directory: a Unix socket, which libpq names by directory and port.
    address = (
        f"{host}:{port}"
        if host and not host.startswith("/")
        else f"{host or 'the local socket'} (port {port})"
    )
    return str(params.get("dbname") or ""), host or "the local socket", address


def explain(error: Exception, params: Mapping[str, Any]) -> str:
    """A failed connection's libpq message, turned into what is wrong and what to do."""
    dbname, host, address = _where(params)
    user = params.get("user") or "(default)"
    message = str(error)
    # libpq's first line carries the reason; the rest is hints ("Is the server running...").
    reason = message.splitlines()[0] if message else type(error).__name__
    reason = reason.removeprefix("connection failed: ").rsplit(" failed: ", 1)[-1].strip()
    lowered = reason.lower()
    if "does not exist" in lowered and lowered.startswith(("fatal:  database", "database")):
        return f"database '{dbname}' does not exist on {address}: create it or fix DATABASE_URL"
    if "connection refused" in lowered:
        return (
            f"PostgreSQL on {address} refused the connection (database '{dbname}'): "
            "start the server or fix DATABASE_URL"
        )
    if "failed to resolve host" in lowered:
        return f"cannot resolve host '{host}' (database '{dbname}'): fix DATABASE_URL"
    if "timeout expired" in lowered:
        return (
            f"PostgreSQL on {address} did not answer (database '{dbname}'): "
            "check the server and the network, or fix DATABASE_URL"
        )
    if any(
        marker in lowered
        for marker in ("password authentication failed", 'role "', "no pg_hba.conf entry")
    ):
        return (
            f"PostgreSQL on {address} did not let user '{user}' into database '{dbname}' "
            f"({reason.removeprefix('FATAL:').strip()}): fix the credentials in DATABASE_URL"
        )
    if "too many clients" in lowered or "connection slots are reserved" in lowered:
        return (
            f"PostgreSQL on {address} has no connection slot left (database '{dbname}'): "
            "raise its max_connections or lower DATABASE_POOL_MAX"
        )
    return f"cannot connect to database '{dbname}' on {address} ({reason}): check DATABASE_URL"


def connection_failure(params: Mapping[str, Any]) -> str | None:
    """Connect once, directly, with a short timeout: None if that works, else what is wrong.

    `params` are the backend's connection parameters (DatabaseWrapper.get_connection_params).
    """
    try:
        psycopg.connect(
            **{"connect_timeout": PROBE_CONNECT_TIMEOUT_SECONDS, **params, "autocommit": True}
        ).close()
    except psycopg.Error as error:
        return explain(error, params)
    return None


def pool_timeout_reason(pool: ConnectionPool, params: Mapping[str, Any], waited: float) -> str:
    """Why no pooled connection came within `waited` seconds: the database, or a pool in use."""
    if failure := connection_failure(params):
        return failure
    stats = pool.get_stats()
    return (
        f"no free connection in the pool of database '{_where(params)[0]}' after {waited:g} s "
        f"({stats['pool_size'] - stats['pool_available']} of at most {stats['pool_max']} in "
        f"use, {stats['requests_waiting']} waiting): raise DATABASE_POOL_MAX (within "
        "PostgreSQL's max_connections) or find what holds connections"
    )


def startup_problem(alias: str = "default") -> str | None:
    """Checked before a server starts serving: can it connect at all? One direct connection."""
    wrapper = connections[alias]
    if wrapper.vendor != "postgresql":
        return None  # SQLite: a file next to the code, created by migrate
    return connection_failure(wrapper.get_connection_params())


def health_problem(alias: str = "default") -> str | None:
    """For /readyz: None when the database answers a query within seconds, else what is wrong."""
    wrapper = connections[alias]
    pool: ConnectionPool | None = getattr(wrapper, "pool", None)
    if pool is None:
        try:
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError as error:
            return str(error)
        return None
    params = wrapper.get_connection_params()
    if pool.closed:
        if failure := connection_failure(params):
            return failure
        pool.open()
    try:
        # Straight from the pool, with a wait of our own: the pool's timeout is for requests.
        with pool.connection(timeout=HEALTH_POOL_WAIT_SECONDS) as conn:
            conn.execute("SELECT 1")
    except PoolTimeout:
        return pool_timeout_reason(pool, params, HEALTH_POOL_WAIT_SECONDS)
    except psycopg.Error as error:
        # A pooled connection the server dropped (restart, failover): the pool discards it.
        return connection_failure(params) or explain(error, params)
    return None
