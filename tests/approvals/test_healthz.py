"""GET /healthz: 200 while the database answers, 503 naming what is wrong, at once, when not."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from django.urls import reverse
from psycopg import sql

from tests.conftest import _free_port

BASE_DIR = Path(__file__).resolve().parents[2]


def test_it_answers_ok_while_the_database_answers(client, db) -> None:
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.content == b"ok"


def test_it_names_a_database_that_went_away(postgres_server, tmp_path: Path) -> None:
    name = f"console_health_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(**postgres_server.params, dbname="postgres", autocommit=True)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": postgres_server.url(name),
        "CONSOLE_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "not-a-secret",
        "LOG_LEVEL": "ERROR",
    }
    env.pop("REDIS_URL", None)
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "console.asgi:application", "--port", str(port)],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            try:
                healthy = httpx.get(url, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        # The server's pool holds connections to it: FORCE ends them, as a failover would.
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        started = time.monotonic()
        gone = httpx.get(url, timeout=30)
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()

    assert (healthy.status_code, healthy.text) == (200, "ok")
    assert gone.status_code == 503
    assert gone.text == (
        f"database: database '{name}' does not exist on {postgres_server.address}: "
        "create it or fix DATABASE_URL\n"
    )
    assert elapsed < 5, f"/healthz took {elapsed:.1f} s"
