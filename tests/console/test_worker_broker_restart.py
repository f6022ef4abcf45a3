"""The worker `make run` starts (console/Procfile) outlives Redis restarts, busy or not.

A worker whose broker goes away reconnects and goes on taking tasks: a dead broker delays work,
it must never end the worker. On a second broker channel (remote control, gossip) Celery 5.7
with kombu's Redis transport could exit instead, "Unrecoverable error: AttributeError(...
'hostname')", when Redis dropped while a task ran and that channel's socket noticed first
(console/settings.py, CELERY_WORKER_ENABLE_REMOTE_CONTROL). Each round here holds one task
running, restarts the test's own Redis server, needs a new task run, then lets the held task
end and acknowledge on the new connection.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from kombu import Connection

from console.celery import app
from tests.console.test_procfile import Started, procfile
from tests.redis_server import OwnRedis, own_redis
from tests.waits import wait_until

pytestmark = [
    pytest.mark.skipif(
        not settings.REDIS_URL,
        reason="the Redis broker's fault test runs in the Redis run of the suite (REDIS_URL)",
    ),
    pytest.mark.skipif(
        not (Path(settings.BASE_DIR) / ".venv" / "bin" / "celery").exists(),
        reason="the Procfile runs .venv/bin/celery (make install creates it)",
    ),
    pytest.mark.timeout(300),
]

# The exit depended on a race between two sockets; each restart was a fresh throw of it.
RESTARTS = 5
# A reconnecting worker waits 2 s, then 4 s, ... between attempts while Redis is down.
RECONNECT_SECONDS = 60.0


@pytest.fixture
def redis() -> Iterator[OwnRedis]:
    with own_redis() as server:
        yield server


def worker_environment(redis: OwnRedis, tmp_path: Path) -> dict[str, str]:
    """A worker's environment: the test's own Redis as its broker, nothing of the suite's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_BROKER_PREFIX")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="console.settings",
        REDIS_URL=redis.url,
        CONSOLE_VAR_DIR=str(tmp_path / "var"),
        LOG_FORMAT="plain",
    )
    return env


@pytest.fixture
def worker(redis: OwnRedis, tmp_path: Path) -> Iterator[Started]:
    env = {**worker_environment(redis, tmp_path), "LOG_LEVEL": "WARNING"}
    command = procfile()["worker"] + " --include tests.console.held_tasks"
    started = Started("worker", command, env, tmp_path / "worker.log")
    try:
        yield started
    finally:
        started.kill()


def _send(redis: OwnRedis, name: str, *args: str) -> None:
    with Connection(redis.url) as broker:
        app.send_task(name, args=args, connection=broker)


def _alive_and(worker: Started, condition: Path) -> bool:
    assert worker.process.poll() is None, "the worker exited"
    return condition.exists()


def _wait_for_file(worker: Started, path: Path, what: str) -> None:
    try:
        wait_until(lambda: _alive_and(worker, path), timeout=RECONNECT_SECONDS, what=what)
    except AssertionError as failed:
        # A worker that gave up waits for its busy thread before it exits: show why it stalled.
        raise AssertionError(f"{failed}; the worker's log:\n{worker.output()[-6000:]}") from None


def test_it_runs_tasks_after_redis_restarts_under_a_running_task(
    redis: OwnRedis, worker: Started, tmp_path: Path
) -> None:
    _send(redis, "tests.leave_file", str(tmp_path / "ready"))
    _wait_for_file(worker, tmp_path / "ready", "the worker's first task")
    for restart in range(RESTARTS):
        started, release = tmp_path / f"held-{restart}", tmp_path / f"release-{restart}"
        _send(redis, "tests.hold_until_released", str(started), str(release))
        _wait_for_file(worker, started, f"task {restart} starting")
        # One pool thread busy and its message unacknowledged, the other thread waiting for
        # work: the state in which the broker's loss ended the worker.
        redis.stop()
        redis.start()
        ran = tmp_path / f"after-{restart}"
        _send(redis, "tests.leave_file", str(ran))
        _wait_for_file(worker, ran, f"a task after restart {restart}")
        # The held task ends on the new connection: its acknowledgement, for a message of the
        # lost one, must not end the worker either.
        release.touch()
    _send(redis, "tests.leave_file", str(tmp_path / "last"))
    _wait_for_file(worker, tmp_path / "last", "the last task")
    assert worker.process.poll() is None, worker.output()[-6000:]
