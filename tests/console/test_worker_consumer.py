"""Every worker started with `-A console` runs without gossip, mingle and remote control, with
or without `--without-gossip --without-mingle` on its command line: an operator's own unit file
or container gets the one-channel worker that outlives Redis restarts
(tests/console/test_worker_broker_restart.py), not Celery's defaults."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.console.test_procfile import Started
from tests.console.test_worker_broker_restart import worker_environment
from tests.redis_server import OwnRedis, own_redis
from tests.waits import wait_until

pytestmark = [
    pytest.mark.skipif(
        not (Path(settings.BASE_DIR) / ".venv" / "bin" / "celery").exists(),
        reason="starts .venv/bin/celery (make install creates it)",
    ),
    pytest.mark.timeout(120),
]


@pytest.fixture
def redis() -> Iterator[OwnRedis]:
    # Gossip and mingle run on Redis (and AMQP) only: the filesystem broker never has them.
    with own_redis() as server:
        yield server


def _worker_started(redis: OwnRedis, tmp_path: Path, flags: str) -> str:
    """The log of a worker started as an operator might, once it is ready for tasks."""
    # DEBUG: the worker logs each bootstep it starts ("| Consumer: Starting Mingle").
    env = {**worker_environment(redis, tmp_path), "LOG_LEVEL": "DEBUG"}
    command = f"exec .venv/bin/celery -A console worker --loglevel DEBUG --pool threads {flags}"
    worker = Started("worker", command, env, tmp_path / "worker.log")
    try:
        wait_until(
            lambda: worker.process.poll() is None and " ready." in worker.output(),
            timeout=60,
            what="the worker getting ready",
        )
        assert worker.stop() == 0
    finally:
        worker.kill()
    return worker.output()


@pytest.mark.parametrize("flags", ["", "--without-gossip --without-mingle"])
def test_a_worker_runs_without_gossip_mingle_and_remote_control(
    redis: OwnRedis, tmp_path: Path, flags: str
) -> None:
    log = _worker_started(redis, tmp_path, flags)

    started = {line.split("Starting ", 1)[1] for line in log.splitlines() if "Starting " in line}
    assert {"Connection", "Tasks", "Heart"} <= started, log  # what a started consumer runs
    assert not started & {"Gossip", "Mingle", "Control"}, log
    assert "mingle: searching for neighbors" not in log
