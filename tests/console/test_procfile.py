"""`make run`'s worker and beat, run from console/Procfile the way honcho runs them.

honcho starts each line through the shell in a session of its own and stops it with SIGTERM to
the whole process group. At a terminal (`make run`: LOG_LEVEL=WARNING) the periodic sweeps must
not print, and a stop must not be logged as errors.
"""

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from approvals.models import ApprovalRequest, Status
from tests.console.test_shutdown import database_url_for_subprocesses
from tests.factories import ApprovalRequestFactory
from tests.subprocess_env import drop_redis_keys, own_redis_keys

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (Path(settings.BASE_DIR) / ".venv" / "bin" / "celery").exists(),
        reason="the Procfile runs .venv/bin/celery (make install creates it)",
    ),
]

BASE_DIR = Path(settings.BASE_DIR)


def procfile() -> dict[str, str]:
    lines = (BASE_DIR / "console" / "Procfile").read_text().splitlines()
    entries = (re.fullmatch(r"(\w+):\s*(.*)", line) for line in lines)
    return {entry[1]: entry[2] for entry in entries if entry}


class Started:
    def __init__(self, name: str, command: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                ["/bin/sh", "-c", command], cwd=BASE_DIR, env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def stop(self) -> int:
        """As honcho stops a process: SIGTERM to its group, then its exit status.

        Returns only when every process of the group is gone: a worker that outlived its shell
        went on consuming from the broker while later tests ran.
        """
        self.terminate()
        try:
            status = self.process.wait(timeout=15)
            deadline = time.monotonic() + 15
            while self.group_alive():
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(self.process.args, 15)
                time.sleep(0.05)
            return status
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def terminate(self) -> None:
        if self.group_alive():
            os.killpg(self.process.pid, signal.SIGTERM)

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        if self.group_alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def run_env(transactional_db, tmp_path: Path) -> Iterator[dict[str, str]]:
    redis_keys = own_redis_keys("procfile")
    yield {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": database_url_for_subprocesses(),
        "SECRET_KEY": settings.SECRET_KEY,
        "CONSOLE_VAR_DIR": str(tmp_path),
        # What `make run` sets for a terminal.
        "LOG_FORMAT": "plain",
        "LOG_LEVEL": "WARNING",
        "APPROVAL_EXPIRY_SWEEP_SECONDS": "1",
        "ESCALATION_SWEEP_SECONDS": "1",
        **redis_keys,
    }
    drop_redis_keys(redis_keys)


@pytest.fixture
def started(run_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Started]]:
    commands = procfile()
    processes = {
        name: Started(name, commands[name], run_env, tmp_path / f"{name}.log")
        for name in ("worker", "beat")
    }
    try:
        yield processes
    finally:
        for process in processes.values():
            process.kill()


def _meaningful(output: str) -> list[str]:
    # Celery's warning about running as root (CI containers) is the machine's, not ours.
    lines = [line for line in output.splitlines() if line.strip()]
    skip = ("SecurityWarning", "absolutely not recommended", "--uid", "User information",
            "_warn_or_raise_security_error")  # fmt: skip
    return [line for line in lines if not any(marker in line for marker in skip)]


def test_sweeps_run_quietly_and_a_stop_logs_no_errors(started: dict[str, Started]) -> None:
    overdue = ApprovalRequestFactory(deadline_at=timezone.now() - timedelta(seconds=1))
    assert overdue.status == Status.PENDING

    # Beat sends the expiry sweep every second and the worker runs it: the request expires.
    deadline = time.monotonic() + 30
    while ApprovalRequest.objects.get(pk=overdue.pk).status == Status.PENDING:
        for name, process in started.items():
            assert process.process.poll() is None, f"{name} exited:\n{process.output()}"
        assert time.monotonic() < deadline, {n: p.output() for n, p in started.items()}
        time.sleep(0.2)
    assert ApprovalRequest.objects.get(pk=overdue.pk).status == Status.EXPIRED

    # As honcho on Ctrl-C: SIGTERM to every group at once, then wait for each.
    for process in started.values():
        process.terminate()
    statuses = {name: process.stop() for name, process in started.items()}
    outputs = {name: _meaningful(process.output()) for name, process in started.items()}
    # Nothing printed for the sweeps, no banner, no kombu warning, and the stop is not an error
    # (prefork's pool processes, killed by the group's SIGTERM, were logged as ERROR).
    # The worker may or may not get to say it is shutting down (CI saw both), and nothing else
    # but kombu putting back a sweep that beat sent as the worker stopped consuming (not lost).
    requeued = "Requeuing undeliverable message for queue 'celery': No consumers."
    worker_lines = [line for line in outputs["worker"] if not line.endswith(requeued)]
    assert set(worker_lines) <= {"worker: Warm shutdown (MainProcess)"}, outputs
    assert outputs["beat"] == [], outputs
    # `exec` in each Procfile line: the shell becomes the process, so honcho (and this test) wait
    # for the worker itself; dash does not exec a lone command, and its shell died at once.
    assert statuses == {"worker": 0, "beat": 0}, statuses
    assert not any(process.group_alive() for process in started.values())
