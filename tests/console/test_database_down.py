"""PostgreSQL stopped or restarted under a running server: calls fail fast with 503
dependency_unavailable (never a 500 with a stack, never a decision) and work again, without a
restart, once it is back. On a PostgreSQL server of the test's own (tests/postgres_server.py).
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from console.websocket_protocol import UVICORN_WS
from tests.conftest import _free_port
from tests.postgres_server import OwnPostgres, own_postgres
from tests.subprocess_env import drop_redis_keys, own_redis_keys

BASE_DIR = Path(settings.BASE_DIR)


@dataclass
class Console:
    url: str
    database: OwnPostgres
    log: Path


@pytest.fixture
def console_on_own_postgres(tmp_path: Path) -> Iterator[Console]:
    with own_postgres() as database:
        database.create_database("console")
        redis_keys = own_redis_keys("dbdown")
        env = {
            **os.environ,
            **redis_keys,
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "DATABASE_URL": database.url("console"),
            "SECRET_KEY": settings.SECRET_KEY,
            "CONSOLE_VAR_DIR": str(tmp_path),
            "LOG_LEVEL": "WARNING",
        }
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert migrate.returncode == 0, migrate.stderr
        port = _free_port()
        log = tmp_path / "server.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "console.asgi:application", "--host",
                 "127.0.0.1", "--port", str(port), "--ws-per-message-deflate", "false",
                 "--ws", UVICORN_WS],
                cwd=BASE_DIR, env=env, stdout=out, stderr=out,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            yield Console(url=url, database=database, log=log)
        finally:
            server.kill()
            server.wait()
            drop_redis_keys(redis_keys)


def _agent_call(url: str) -> tuple[httpx.Response, float]:
    """An agent's status read: its credential is looked up in the database first."""
    started = time.monotonic()
    response = httpx.get(
        f"{url}/api/v1/requests/{uuid.uuid4()}",
        headers={"Authorization": "Bearer aac_unknownprefix_unknownsecret"},
        timeout=30,
    )
    return response, time.monotonic() - started


def test_it_answers_503_within_seconds_while_postgres_is_down_and_recovers_by_itself(
    console_on_own_postgres: Console,
) -> None:
    console = console_on_own_postgres
    up, _ = _agent_call(console.url)
    assert up.status_code == 401  # the database answered: no such credential

    console.database.stop()
    down, took = _agent_call(console.url)
    assert down.status_code == 503, down.text
    assert down.json()["error"]["code"] == "dependency_unavailable"
    assert down.headers["Retry-After"] == "5"
    assert "Traceback" not in down.text
    assert took < 5, f"the call waited {took:.1f} s"
    page = httpx.get(f"{console.url}/accounts/login/", timeout=30)
    ready = httpx.get(f"{console.url}/readyz", timeout=30)
    assert ready.status_code == 503 and not ready.json()["checks"]["database"]["ok"]
    assert page.status_code in (200, 503)  # the sign-in page needs no database to render

    console.database.start()
    deadline = time.monotonic() + 15
    while (again := _agent_call(console.url)[0]).status_code != 401:
        assert again.status_code == 503, again.text
        assert time.monotonic() < deadline, (
            "the server did not recover after the database came back"
        )
        time.sleep(0.2)


def test_it_serves_on_after_a_postgres_restart(console_on_own_postgres: Console) -> None:
    console = console_on_own_postgres
    assert _agent_call(console.url)[0].status_code == 401  # the pool holds connections now
    console.database.restart()
    # The pool's connections died with the old server: they are checked before use and
    # replaced. A call meanwhile may fail, but only as a quick 503, and never for long.
    deadline = time.monotonic() + 15
    while True:
        response, took = _agent_call(console.url)
        if response.status_code == 401:
            break
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "dependency_unavailable"
        assert took < 5, f"the call waited {took:.1f} s"
        assert time.monotonic() < deadline, "the server did not recover after the restart"
    for _ in range(3):
        assert _agent_call(console.url)[0].status_code == 401
