"""Several processes behind one console: two uvicorn servers, a Celery worker and beat.

Each is a real subprocess on the pytest test database and Redis, so anything that only works
inside one process (an in-memory channel layer, a process-local wake-up) fails here.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import websockets
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from approvals.realtime import LISTENING_KEY
from console.websocket_protocol import UVICORN_WS
from tests.conftest import ReviewerSession, _free_port
from tests.factories import UserFactory, agent_with_token
from tests.sockets import next_message_containing
from tests.subprocess_env import drop_redis_keys, own_redis_keys

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="several processes need PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)",
    ),
    pytest.mark.django_db(transaction=True),
]

BASE_DIR = Path(settings.BASE_DIR)
BODY = {"tool": "send_email", "arguments": {"to": "a@example.test"}, "timeout": "10m"}


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")


@dataclass
class Cluster:
    a: Server
    b: Server
    worker: subprocess.Popen[bytes]
    beat: subprocess.Popen[bytes]


def _test_database_url() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _wait_until_healthy(server: Server, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.url} exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.url} did not become healthy:\n{log.read_text()[-2000:]}")


@pytest.fixture(autouse=True)
def _hashers_the_servers_know(settings) -> None:
    # The server processes check passwords with the default hashers, not the tests' fast MD5.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]


@pytest.fixture
def cluster(transactional_db, tmp_path: Path) -> Iterator[Cluster]:
    redis_keys = own_redis_keys("cluster")
    env = {
        **os.environ,
        **redis_keys,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": _test_database_url(),
        # Sessions are signed: a reviewer logged in on A must be recognised by B.
        "SECRET_KEY": settings.SECRET_KEY,
        "LOG_LEVEL": "WARNING",
    }
    started: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", *args], cwd=BASE_DIR, env=env, stdout=log, stderr=log
        )
        started.append(process)
        return process

    def spawn_server(name: str) -> Server:
        port = _free_port()
        process = spawn(
            name, "uvicorn", "console.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--ws-per-message-deflate", "false",
            "--ws", UVICORN_WS,
        )  # fmt: skip
        return Server(url=f"http://127.0.0.1:{port}", process=process)

    try:
        a, b = spawn_server("server-a"), spawn_server("server-b")
        worker = spawn(
            "worker", "celery", "-A", "console", "worker", "--pool", "solo", "-l", "WARNING"
        )
        beat = spawn(
            "beat", "celery", "-A", "console", "beat", "-l", "WARNING",
            "--schedule", str(tmp_path / "celerybeat-schedule"),
        )  # fmt: skip
        _wait_until_healthy(a, tmp_path / "server-a.log")
        _wait_until_healthy(b, tmp_path / "server-b.log")
        yield Cluster(a=a, b=b, worker=worker, beat=beat)
        # The worker and beat were up the whole time, not crashed at start-up unnoticed.
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
        assert beat.poll() is None, (tmp_path / "beat.log").read_text()[-2000:]
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        drop_redis_keys(redis_keys)


def _agent(base_url: str, token: str, timeout: float = 40) -> httpx.Client:
    return httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    )


def _create(agent: httpx.Client) -> str:
    response = agent.post(
        "/api/v1/requests", json=BODY, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_it_spreads_a_request_and_its_decision_across_server_processes(cluster: Cluster) -> None:
    UserFactory(username="rita", is_staff=True)
    reviewer_on_a = ReviewerSession(cluster.a.url, "rita")
    _, token = agent_with_token()
    agent_on_b = _agent(cluster.b.url, token)

    async def scenario() -> tuple[str, str, str, dict, float]:
        # The session made on A opens sockets on both: sessions live in the shared database.
        sockets = [
            await websockets.connect(
                f"{server.ws_url}/ws/queue/",
                additional_headers={"Cookie": reviewer_on_a.session_cookie},
                origin=server.url,
            )
            for server in (cluster.a, cluster.b)
        ]
        try:
            code = await asyncio.to_thread(_create, agent_on_b)
            fragment_a, fragment_b = await asyncio.gather(
                *(next_message_containing(ws, f"approval-{code}") for ws in sockets)
            )
            other = await asyncio.to_thread(_create, agent_on_b)
            other_agent = _agent(cluster.b.url, token)
            poll, other_poll = (
                asyncio.create_task(
                    asyncio.to_thread(
                        client.get, f"/api/v1/requests/{waited}", params={"wait": "30s"}
                    )
                )
                for client, waited in ((agent_on_b, code), (other_agent, other))
            )
            # Kept: the polls park in server B, another process, whose waiters a test cannot
            # see; half a second is far more than parking takes (milliseconds, tests/approvals
            # test_long_poll waits for it exactly). Parked or not, the answers are checked.
            await asyncio.sleep(0.5)
            decided_at = time.monotonic()
            response = await asyncio.to_thread(
                reviewer_on_a.post, f"/requests/{code}/approve", {"note": "ok from A"}
            )
            assert response.status_code == 200, response.text
            answer = await asyncio.wait_for(poll, timeout=35)
            woken_after = time.monotonic() - decided_at
            # The decision woke its own agent only: the other poll on B still waits. Kept: that
            # it is *not* woken is what is checked, so give a wrong wake-up time to arrive.
            await asyncio.sleep(0.3)
            assert not other_poll.done()
            response = await asyncio.to_thread(
                reviewer_on_a.post, f"/requests/{other}/deny", {"reason": "not this one"}
            )
            assert response.status_code == 200, response.text
            other_answer = await asyncio.wait_for(other_poll, timeout=5)
            other_agent.close()
            assert other_answer.json()["status"] == "denied"
            return code, fragment_a, fragment_b, answer.json(), woken_after
        finally:
            for ws in sockets:
                await ws.close()

    try:
        code, fragment_a, fragment_b, body, woken_after = asyncio.run(scenario())
    finally:
        reviewer_on_a.close()
        agent_on_b.close()

    assert "send_email" in fragment_a and "send_email" in fragment_b
    assert body["id"] == code
    assert body["status"] == "approved"
    assert body["decision"]["note"] == "ok from A"
    # Woken by the push through Redis, far sooner than the 30 s wait.
    assert woken_after < 2.0


def test_a_socket_opened_just_after_a_quiet_batch_gets_the_next_request(cluster: Cluster) -> None:
    # Server B remembers for a moment that no reviewer listens, so that an unwatched console
    # does not ask Redis after every batch; a socket accepted on A meanwhile must still get
    # B's next request pushed (approvals.realtime.reviewers: the socket waits that moment out).
    UserFactory(username="rita", is_staff=True)
    reviewer_on_a = ReviewerSession(cluster.a.url, "rita")
    _, token = agent_with_token()
    agent_on_b = _agent(cluster.b.url, token)
    cache.delete(LISTENING_KEY)  # an earlier test's socket may have left it, for a minute

    async def scenario() -> str:
        await asyncio.to_thread(_create, agent_on_b)  # nobody listens anywhere: B remembers it
        socket = await websockets.connect(
            f"{cluster.a.ws_url}/ws/queue/",
            additional_headers={"Cookie": reviewer_on_a.session_cookie},
            origin=cluster.a.url,
        )
        try:
            code = await asyncio.to_thread(_create, agent_on_b)
            return await next_message_containing(socket, f"approval-{code}")
        finally:
            await socket.close()

    try:
        fragment = asyncio.run(scenario())
    finally:
        reviewer_on_a.close()
        agent_on_b.close()
    assert "send_email" in fragment


def test_it_loses_no_request_or_decision_when_a_server_is_killed(cluster: Cluster) -> None:
    UserFactory(username="rita", is_staff=True)
    reviewer_on_a = ReviewerSession(cluster.a.url, "rita")
    reviewer_on_b = ReviewerSession(cluster.b.url, "rita")
    _, token = agent_with_token()
    agent_on_a = _agent(cluster.a.url, token)
    agent_on_b = _agent(cluster.b.url, token)
    try:
        decided_on_a = _create(agent_on_a)
        pending_on_a = _create(agent_on_a)
        response = reviewer_on_a.post(f"/requests/{decided_on_a}/deny", {"reason": "No."})
        assert response.status_code == 200, response.text

        async def poll_on_a_then_kill() -> BaseException | None:
            poll = asyncio.create_task(
                asyncio.to_thread(
                    agent_on_a.get, f"/api/v1/requests/{pending_on_a}", params={"wait": "30s"}
                )
            )
            await asyncio.sleep(0.5)  # kept: parked in another process (see above)
            cluster.a.process.send_signal(signal.SIGKILL)
            try:
                await asyncio.wait_for(poll, timeout=10)
            except (TimeoutError, httpx.TransportError) as error:
                return error
            return None

        assert isinstance(asyncio.run(poll_on_a_then_kill()), httpx.TransportError)
        cluster.a.process.wait(timeout=5)

        # The decision made on A before it died is on B.
        denied = agent_on_b.get(f"/api/v1/requests/{decided_on_a}").json()
        assert denied["status"] == "denied"

        # The agent retries its wait on B and gets the answer a reviewer gives on B.
        async def retry_on_b() -> dict:
            poll = asyncio.create_task(
                asyncio.to_thread(
                    agent_on_b.get, f"/api/v1/requests/{pending_on_a}", params={"wait": "30s"}
                )
            )
            await asyncio.sleep(0.5)  # kept: parked in another process (see above)
            response = await asyncio.to_thread(
                reviewer_on_b.post, f"/requests/{pending_on_a}/approve", {"note": "from B"}
            )
            assert response.status_code == 200, response.text
            return (await asyncio.wait_for(poll, timeout=35)).json()

        approved = asyncio.run(retry_on_b())
        assert approved["status"] == "approved"
        assert approved["decision"]["note"] == "from B"
    finally:
        for closable in (reviewer_on_a, reviewer_on_b, agent_on_a, agent_on_b):
            closable.close()
