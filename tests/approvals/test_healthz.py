"""GET /healthz (liveness: the process answers, nothing else) and GET /readyz (readiness: the
database, the channel layer and the broker, each checked with a short timeout, the failing one
named, 503)."""

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
from tests.redis_server import own_redis

BASE_DIR = Path(__file__).resolve().parents[2]


def test_healthz_answers_without_touching_anything(client, db, django_assert_num_queries) -> None:
    with django_assert_num_queries(0):
        response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_embedded_names_each_dependency(client, db, settings) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.CELERY_BROKER_URL = "filesystem://"
    response = client.get(reverse("readyz"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "channel_layer", "broker"}
    assert all(check["ok"] for check in body["checks"].values())
    # Nothing to be down: the answer says so rather than pretending to have checked a server.
    assert "in-memory" in body["checks"]["channel_layer"]["detail"]
    assert "filesystem" in body["checks"]["broker"]["detail"]


def test_readyz_names_a_redis_that_stopped(client, db, settings) -> None:
    with own_redis() as layer_redis, own_redis() as broker_redis:
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [layer_redis.url]},
            }
        }
        settings.CELERY_BROKER_URL = broker_redis.url
        ready = client.get(reverse("readyz"))
        assert ready.status_code == 200, ready.content
        assert ready.json()["checks"]["channel_layer"] == {
            "ok": True,
            "detail": f"Redis on 127.0.0.1:{layer_redis.port}",
        }

        broker_redis.stop()
        started = time.monotonic()
        broker_down = client.get(reverse("readyz"))
        broker_elapsed = time.monotonic() - started

        broker_redis.start()
        layer_redis.stop()
        layer_down = client.get(reverse("readyz"))

        layer_redis.start()
        back = client.get(reverse("readyz"))

    assert broker_down.status_code == 503
    checks = broker_down.json()["checks"]
    assert broker_down.json()["status"] == "unavailable"
    assert checks["database"]["ok"] and checks["channel_layer"]["ok"]
    assert checks["broker"]["ok"] is False
    assert checks["broker"]["detail"].startswith(
        f"Redis on 127.0.0.1:{broker_redis.port} did not answer PING"
    )
    assert broker_elapsed < 3, f"/readyz took {broker_elapsed:.1f} s"

    assert layer_down.status_code == 503
    checks = layer_down.json()["checks"]
    assert checks["broker"]["ok"] and not checks["channel_layer"]["ok"]
    assert f"127.0.0.1:{layer_redis.port}" in checks["channel_layer"]["detail"]

    # A Redis that is back is seen at the next check: nothing to restart.
    assert back.status_code == 200, back.content


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
    url = f"http://127.0.0.1:{port}/readyz"
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
        alive = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()

    assert healthy.status_code == 200, healthy.text
    assert healthy.json()["checks"]["database"] == {"ok": True, "detail": "PostgreSQL"}
    assert gone.status_code == 503
    assert gone.json()["checks"]["database"] == {
        "ok": False,
        "detail": f"database '{name}' does not exist on {postgres_server.address}: "
        "create it or fix DATABASE_URL",
    }
    assert elapsed < 5, f"/readyz took {elapsed:.1f} s"
    # The process itself still answers: liveness does not depend on the database.
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
