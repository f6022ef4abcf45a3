"""A database the console cannot use is named at once, with what to do, not after a pool timeout.

The pool's timeout is 10 s: a command that fails within a few seconds never waited for it.
"""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from console.database import connection_failure, explain
from tests.conftest import _free_port

BASE_DIR = Path(__file__).resolve().parents[2]

MESSAGES = [
    (
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "shop" does '
        "not exist",
        "database 'shop' does not exist on 127.0.0.1:5432: create it or fix DATABASE_URL",
    ),
    (
        'connection to server at "127.0.0.1", port 5432 failed: Connection refused\n\tIs the '
        "server running on that host and accepting TCP/IP connections?",
        "PostgreSQL on 127.0.0.1:5432 refused the connection (database 'shop'): start the "
        "server or fix DATABASE_URL",
    ),
    (
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  password '
        'authentication failed for user "app"',
        "PostgreSQL on 127.0.0.1:5432 did not let user 'app' into database 'shop' (password "
        'authentication failed for user "app"): fix the credentials in DATABASE_URL',
    ),
    (
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  role "app" does not exist',
        "PostgreSQL on 127.0.0.1:5432 did not let user 'app' into database 'shop' (role \"app\" "
        "does not exist): fix the credentials in DATABASE_URL",
    ),
    (
        "failed to resolve host '127.0.0.1': [Errno -2] Name or service not known",
        "cannot resolve host '127.0.0.1' (database 'shop'): fix DATABASE_URL",
    ),
    (
        'connection to server at "127.0.0.1", port 5432 failed: timeout expired',
        "PostgreSQL on 127.0.0.1:5432 did not answer (database 'shop'): check the server and "
        "the network, or fix DATABASE_URL",
    ),
    (
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  sorry, too many '
        "clients already",
        "PostgreSQL on 127.0.0.1:5432 has no connection slot left (database 'shop'): raise its "
        "max_connections or lower DATABASE_POOL_MAX",
    ),
    (
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  the database system '
        "is starting up",
        "cannot connect to database 'shop' on 127.0.0.1:5432 (FATAL:  the database system is "
        "starting up): check DATABASE_URL",
    ),
]


@pytest.mark.parametrize(("libpq", "expected"), MESSAGES)
def test_it_turns_libpq_errors_into_what_to_do(libpq: str, expected: str) -> None:
    error = psycopg.OperationalError(f"connection failed: {libpq}")
    params = {"dbname": "shop", "host": "127.0.0.1", "port": 5432, "user": "app"}
    assert explain(error, params) == expected


def test_it_never_repeats_the_password() -> None:
    error = psycopg.OperationalError("connection failed: something odd")
    params = {"dbname": "shop", "host": "db", "port": 5432, "user": "app", "password": "s3cret"}
    assert "s3cret" not in explain(error, params)


def test_it_names_a_server_that_refuses() -> None:
    port = _free_port()  # nothing listens there
    started = time.monotonic()
    failure = connection_failure({"dbname": "shop", "host": "127.0.0.1", "port": port})
    assert failure == (
        f"PostgreSQL on 127.0.0.1:{port} refused the connection (database 'shop'): "
        "start the server or fix DATABASE_URL"
    )
    assert time.monotonic() - started < 5


def test_it_names_a_database_that_does_not_exist(postgres_server) -> None:
    missing = f"console_missing_{uuid.uuid4().hex[:8]}"
    failure = connection_failure({**postgres_server.params, "dbname": missing})
    assert failure == (
        f"database '{missing}' does not exist on {postgres_server.address}: "
        "create it or fix DATABASE_URL"
    )


def test_it_says_nothing_about_a_database_that_answers(postgres_server) -> None:
    assert connection_failure({**postgres_server.params, "dbname": "postgres"}) is None


COMMANDS = {
    "migrate": ([sys.executable, "manage.py", "migrate", "--no-input"], 1),
    # uvicorn exits with 3 when the application's start-up fails.
    "server": (
        [sys.executable, "-m", "uvicorn", "console.asgi:application", "--port", "{port}"],
        3,
    ),
    # The worker's Django checks query the database before the worker starts.
    "worker": ([sys.executable, "-m", "celery", "-A", "console", "worker", "-P", "solo"], 1),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_it_refuses_to_start_on_a_database_that_does_not_exist(
    postgres_server, tmp_path: Path, command: str
) -> None:
    missing = f"console_missing_{uuid.uuid4().hex[:8]}"
    args, status = COMMANDS[command]
    env = {
        **os.environ,
        "DATABASE_URL": postgres_server.url(missing),
        "CONSOLE_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "not-a-secret",
    }
    env.pop("REDIS_URL", None)
    started = time.monotonic()
    finished = subprocess.run(
        [arg.format(port=_free_port()) for arg in args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started

    assert finished.returncode == status, finished.stderr[-2000:]
    expected = (
        f"database '{missing}' does not exist on {postgres_server.address}: "
        "create it or fix DATABASE_URL"
    )
    assert expected in finished.stderr, finished.stderr[-2000:]
    assert "couldn't get a connection" not in finished.stderr
    assert elapsed < 5, f"{command} took {elapsed:.1f} s to fail"
