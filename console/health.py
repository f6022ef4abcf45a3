"""Liveness and readiness, for load balancers and supervisors polling every few seconds.

`/healthz` (liveness) says only that the process answers: it touches nothing else, so a
dependency that is down never gets every server restarted at once. `/readyz` (readiness) checks
what serving needs, each with a short timeout, side by side, and names the one that fails:

- database: a pooled connection answers `SELECT 1` within 2 s (console/database.py);
- channel layer: with Redis, its server answers PING within READY_REDIS_TIMEOUT_SECONDS. Without
  it, pushes to reviewers and wake-ups of long polls are gone (polls fall back to reading);
- broker: the same for Celery's Redis. Without it, notifications and escalations wait.

Embedded (no REDIS_URL), the in-memory channel layer and the filesystem broker have no server
that could be down: they are reported ok, and the answer says what they are.
"""

from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from redis.backoff import NoBackoff
from redis.retry import Retry

from console.database import health_problem

# Per Redis PING, connecting included. A Redis that takes longer is not serving pushes either.
READY_REDIS_TIMEOUT_SECONDS = 1.0

# Redis checks run beside the database's (which runs on the request's own thread, whose
# connection handling Django owns); two threads for the two Redis checks.
_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz")


@cache
def _redis_client(url: str) -> redis.Redis:
    # One client per URL for the process's life: its pool keeps a connection between checks, so
    # a check is one round trip, not a connect. No retries: a failure is an answer here.
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=READY_REDIS_TIMEOUT_SECONDS,
        socket_timeout=READY_REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
        max_connections=4,
    )


def _where(url: str) -> str:
    """host:port of a Redis URL, without its credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def _redis_state(url: str) -> dict[str, Any]:
    try:
        _redis_client(url).ping()
    except Exception as error:  # any failure to answer is "down", with the reason
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return {"ok": False, "detail": f"Redis on {_where(url)} did not answer PING: {reason}"}
    return {"ok": True, "detail": f"Redis on {_where(url)}"}


def _channel_layer_url() -> str | None:
    config: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
    if "Redis" not in config["BACKEND"]:
        return None
    host = (config.get("CONFIG", {}).get("hosts") or [None])[0]
    if isinstance(host, dict):
        host = host.get("address")
    return host if isinstance(host, str) else None


def _broker_url() -> str | None:
    url = str(settings.CELERY_BROKER_URL)
    return url if url.startswith(("redis://", "rediss://")) else None


def readiness() -> tuple[bool, dict[str, dict[str, Any]]]:
    """Whether this server can serve, and each dependency's state (ok, detail)."""
    layer_url, broker_url = _channel_layer_url(), _broker_url()
    layer_check = _executor.submit(_redis_state, layer_url) if layer_url else None
    broker_check = (
        _executor.submit(_redis_state, broker_url)
        if broker_url and broker_url != layer_url
        else None
    )
    problem = health_problem()
    checks: dict[str, dict[str, Any]] = {
        "database": {"ok": True, "detail": connection_vendor()}
        if problem is None
        else {"ok": False, "detail": problem}
    }
    checks["channel_layer"] = (
        layer_check.result()
        if layer_check
        else {"ok": True, "detail": "in-memory, this process only (embedded: nothing to reach)"}
    )
    if broker_check:
        checks["broker"] = broker_check.result()
    elif broker_url:  # the same Redis as the channel layer: one PING answers for both
        checks["broker"] = checks["channel_layer"]
    elif str(settings.CELERY_BROKER_URL).startswith("filesystem:"):
        checks["broker"] = {
            "ok": True,
            "detail": "filesystem queue under var/ (embedded: nothing to reach)",
        }
    else:
        scheme = str(settings.CELERY_BROKER_URL).split(":", 1)[0]
        checks["broker"] = {"ok": True, "detail": f"{scheme}: not checked"}
    return all(check["ok"] for check in checks.values()), checks


def connection_vendor() -> str:
    from django.db import connection

    return "PostgreSQL" if connection.vendor == "postgresql" else connection.vendor


def healthz(request: HttpRequest) -> HttpResponse:
    # Liveness: the process answers. Nothing else is touched, so a dependency that is down
    # never makes a supervisor restart every server at once; /readyz says what is down.
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    # Readiness: database, channel layer and broker, each with a short timeout, side by side;
    # 503 naming the one that fails (readiness above).
    ready, checks = readiness()
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
