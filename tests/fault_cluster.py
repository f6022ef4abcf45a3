"""A whole console on servers of the test's own, for injecting faults into, and its receivers.

Two uvicorn servers, a Celery worker and beat run as real processes on a PostgreSQL server and a
Redis server the test started itself (tests/postgres_server.py, tests/redis_server.py), so it
may stop, restart and kill any of them; the machine's shared servers are never touched. Mail goes
to an SMTP server in the test process and AAP webhooks to a receiver in it: both record every
copy they get and key it by its idempotency key (Message-ID, webhook-id), which is how a receiver
de-duplicates a message sent again.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import psycopg
from aiosmtpd.controller import Controller
from django.conf import settings

from console.websocket_protocol import UVICORN_WS
from tests.agents.aap.receiver import Receiver, serve
from tests.conftest import _free_port
from tests.notify_servers import RecordingSmtpHandler
from tests.postgres_server import OwnPostgres, own_postgres
from tests.redis_server import OwnRedis, own_redis

BASE_DIR = Path(settings.BASE_DIR)
SITE_URL = "http://console.faults.test"
CODE_IN_LINK = re.compile(re.escape(SITE_URL) + r"/requests/([0-9a-f-]{36})/")
# The suite's own settings must not leak into the cluster's processes.
NOT_INHERITED = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_BROKER_PREFIX",
    "CHANNEL_LAYER_PREFIX",
    "SITE_URL",
)
# Short leases and sweeps: a row whose worker died is sent again within seconds, not minutes.
FAST_OUTBOX = {
    "NOTIFICATION_LEASE_SECONDS": "3",
    "AAP_WEBHOOK_LEASE_SECONDS": "3",
    "AAP_WEBHOOK_TIMEOUT_SECONDS": "2",
    "NOTIFICATION_REQUEUE_AFTER_SECONDS": "1",
    "NOTIFICATION_SWEEP_SECONDS": "1",
    "AAP_WEBHOOK_SWEEP_SECONDS": "1",
    "NOTIFICATION_BACKOFF_BASE_SECONDS": "1",
    "NOTIFICATION_BACKOFF_MAX_SECONDS": "2",
    "NOTIFICATION_MAX_ATTEMPTS": "100",
    "AAP_WEBHOOK_RETRY_BASE_SECONDS": "0.5",
    "AAP_WEBHOOK_RETRY_MAX_SECONDS": "2",
    # One reviewer gets every email: never fold them into a digest.
    "NOTIFICATION_AUTO_DIGEST_AFTER_EMAILS_PER_HOUR": "0",
}


def wait_for(condition: Callable[[], object], *, timeout: float, what: str) -> None:
    """tests/waits.py's wait_until, polling less often: the conditions here read over HTTP."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


# --- Receivers ---------------------------------------------------------------------------------


class MailReceiver(RecordingSmtpHandler):
    """Keeps every message; can hold its answer to the next one (a slow mail server)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold_next = 0.0
        self.holding = threading.Event()
        self.held_codes: set[str] = set()  # the requests the held message was about

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        with self.lock:
            hold, self.hold_next = self.hold_next, 0.0
        if hold:
            # The server has the message; the sender hears "250" only after the hold.
            self.held_codes = _codes_in(self.messages[-1])
            self.holding.set()
            await asyncio.sleep(hold)
        return answer

    def copies(self) -> dict[str, Counter[str]]:
        """Request code -> how many copies of each Message-ID arrived about it."""
        found: dict[str, Counter[str]] = {}
        with self.lock:
            messages = list(self.messages)
        for message in messages:
            for code in _codes_in(message):
                found.setdefault(code, Counter())[str(message["Message-ID"]).strip()] += 1
        return found


def _codes_in(message: EmailMessage) -> set[str]:
    return set(CODE_IN_LINK.findall(message.get_body(preferencelist=("plain",)).get_content()))


@contextmanager
def mail_receiver() -> Iterator[tuple[MailReceiver, int]]:
    handler = MailReceiver()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def webhook_copies(receiver: Receiver) -> dict[str, Counter[str]]:
    """Request code -> how many copies of each webhook-id (the event's id) arrived about it."""
    with receiver.lock:
        events = {event["id"]: event["request_id"] for event in receiver.events}
        attempts = dict(receiver.attempts)
    found: dict[str, Counter[str]] = {}
    for event_id, code in events.items():
        found.setdefault(code, Counter())[event_id] = attempts[event_id]
    return found


# --- The cluster -------------------------------------------------------------------------------


@dataclass
class FaultCluster:
    root: Path
    postgres: OwnPostgres
    redis: OwnRedis
    mail: MailReceiver
    webhooks: Receiver
    env: dict[str, str]
    server_a: str = ""
    server_b: str = ""
    worker: subprocess.Popen[bytes] | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    killed: list[subprocess.Popen[bytes]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    started_in: float = 0.0  # seconds from nothing to serving

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.root / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", *args], cwd=BASE_DIR, env=self.env, stdout=log, stderr=log
            )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]

    def console_python(self, *args: str, stdin: str = "") -> Any:
        """Run `python -m tests.fault_data ...` against the cluster's database."""
        done = subprocess.run(
            [sys.executable, "-m", "tests.fault_data", *args],
            cwd=BASE_DIR, env=self.env, input=stdin, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    # Quick reads while the test runs, one query each and no Django process to start; the
    # report (tests/fault_data.py) counts everything once, at the end.

    def _one(self, query: str, parameters: list[object]) -> object:
        with psycopg.connect(self.postgres.url("console"), connect_timeout=5) as database:
            row = database.execute(query, parameters).fetchone()
        return row[0] if row else None

    def webhook_delivered(self, code: str) -> bool:
        """Whether the request's AAP webhook row is marked delivered."""
        return bool(
            self._one(
                "SELECT w.delivered_at IS NOT NULL FROM agents_webhooknotification w "
                "JOIN approvals_approvalrequest a ON a.id = w.approval_id WHERE a.code = %s",
                [code],
            )
        )

    def emails_marked_sent(self, codes: list[str]) -> bool:
        """Whether every email row about these requests is marked sent."""
        unsent = self._one(
            "SELECT count(*) FROM approvals_notification n "
            "JOIN approvals_approvalrequest a ON a.id = n.approval_id "
            "WHERE a.code = ANY(%s::uuid[]) AND n.channel = 'email' AND n.status <> 'sent'",
            [codes],
        )
        return unsent == 0

    def start_server(self, name: str) -> str:
        port = _free_port()
        self.spawn(
            name, "uvicorn", "console.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--ws-per-message-deflate", "false",
            "--ws", UVICORN_WS,
        )  # fmt: skip
        return f"http://127.0.0.1:{port}"

    def start_worker(self) -> None:
        # As console/Procfile runs it: a kill takes every delivery its threads hold.
        self.worker = self.spawn(
            "worker", "celery", "-A", "console", "--quiet", "worker", "--loglevel", "WARNING",
            "--pool", "threads", "--concurrency", "2", "--without-gossip", "--without-mingle",
        )  # fmt: skip

    def kill_worker(self) -> None:
        """SIGKILL: no warm shutdown, no ack, no row marked: as if the machine died."""
        assert self.worker is not None and self.worker.poll() is None, self.log("worker")
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait(timeout=10)
        self.killed.append(self.worker)

    def wait_until_serving(self) -> None:
        for name, url in (("server-a", self.server_a), ("server-b", self.server_b)):
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                exited = [p.args for p in self.processes if p.poll() is not None]
                assert not exited and time.monotonic() < deadline, (
                    f"{name} is not serving (exited: {exited}):\n{self.log(name)}"
                )
                time.sleep(0.1)

    def heal(self) -> None:
        """Undo whatever fault a failed test left behind, so the next test starts whole."""
        if self.redis.process is None:
            self.redis.start()
        if not (self.postgres.data / "postmaster.pid").exists():
            self.postgres.start()
        if self.worker is None or self.worker.poll() is not None:
            self.start_worker()

    def assert_processes_alive(self) -> None:
        """Every process but those the test killed is still up: none died of a fault."""
        for process in self.processes:
            if process not in self.killed:
                assert process.poll() is None, f"{process.args!r} exited"

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _cluster_env(root: Path, postgres: OwnPostgres, redis: OwnRedis, smtp_port: int) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    return {
        **env,
        **FAST_OUTBOX,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": postgres.url("console"),
        "REDIS_URL": redis.url,
        "SECRET_KEY": f"fault-suite-{uuid.uuid4().hex}{uuid.uuid4().hex}",
        # Every process signs the audit trail with the same keys, generated here once.
        "CONSOLE_VAR_DIR": str(root / "var"),
        "LOG_LEVEL": "WARNING",
        "SITE_URL": SITE_URL,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        "EMAIL_TIMEOUT": "5",
        "AAP_WEBHOOK_ALLOW_PRIVATE_RECEIVERS": "true",
    }


@contextmanager
def fault_cluster(root: Path) -> Iterator[FaultCluster]:
    began = time.monotonic()
    webhooks = Receiver()
    webhook_server = serve(webhooks)
    with own_postgres() as postgres, own_redis() as redis, mail_receiver() as (mail, smtp_port):
        postgres.create_database("console")
        cluster = FaultCluster(
            root=root,
            postgres=postgres,
            redis=redis,
            mail=mail,
            webhooks=webhooks,
            env=_cluster_env(root, postgres, redis, smtp_port),
        )
        try:
            migrate = subprocess.run(
                [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
                cwd=BASE_DIR, env=cluster.env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert migrate.returncode == 0, migrate.stderr[-3000:]
            cluster.server_a = cluster.start_server("server-a")
            cluster.server_b = cluster.start_server("server-b")
            cluster.start_worker()
            cluster.spawn(
                "beat", "celery", "-A", "console", "--quiet", "beat", "--loglevel", "WARNING",
                "--schedule", str(root / "celerybeat-schedule"),
            )  # fmt: skip
            # While they start: the policy is re-read when it changes, so they need not wait.
            cluster.tokens = cluster.console_python("seed")
            cluster.wait_until_serving()
            cluster.started_in = time.monotonic() - began
            yield cluster
        finally:
            cluster.stop()
            webhook_server.shutdown()
            webhook_server.server_close()
