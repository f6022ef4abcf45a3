"""SIGTERM on a server: it answers parked long polls with the current state, closes reviewer
sockets with 1012 (Service Restart: browsers reconnect, through the load balancer, to another
server) and exits within 5 s. A real uvicorn subprocess, started the way README says.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import websockets
from django.conf import settings
from django.db import connection

from console.websocket_protocol import UVICORN_WS
from tests.conftest import ReviewerSession, _free_port
from tests.factories import UserFactory, agent_with_token
from tests.subprocess_env import drop_redis_keys, own_redis_keys

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(settings.BASE_DIR)


def database_url_for_subprocesses() -> str:
    """The test database, for a server process of its own (the tests' rows are committed)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(autouse=True)
def _hashers_the_server_knows(settings) -> None:
    # The server process checks passwords with the default hashers, not the tests' fast MD5.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]


class ServerProcess:
    def __init__(self, tmp_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "server.log"
        self.redis_keys = own_redis_keys("shutdown")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "DATABASE_URL": database_url_for_subprocesses(),
            "SECRET_KEY": settings.SECRET_KEY,  # sessions are signed
            "CONSOLE_VAR_DIR": str(tmp_path),
            "LOG_LEVEL": "WARNING",
            **self.redis_keys,
        }
        with self.log.open("wb") as log:
            # README's production command, as a supervisor would run it.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "console.asgi:application", "--host",
                 "127.0.0.1", "--port", str(self.port), "--ws-per-message-deflate", "false",
                 "--ws", UVICORN_WS],
                cwd=BASE_DIR, env=env, stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        drop_redis_keys(self.redis_keys)


@pytest.fixture
def server(transactional_db, tmp_path: Path) -> Iterator[ServerProcess]:
    started = ServerProcess(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def test_sigterm_answers_long_polls_closes_sockets_with_1012_and_exits(
    server: ServerProcess,
) -> None:
    UserFactory(username="rita", is_staff=True)
    reviewer = ReviewerSession(server.url, "rita")
    _, token = agent_with_token()
    agent = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=40
    )
    created = agent.post(
        "/api/v1/requests",
        json={"tool": "send_email", "arguments": {"to": "a@example.test"}, "timeout": "10m"},
        headers={"Idempotency-Key": "shutdown-1"},
    )
    assert created.status_code == 201, created.text
    code = created.json()["id"]

    async def scenario() -> tuple[httpx.Response | BaseException, int | None, float]:
        poll = asyncio.create_task(
            asyncio.to_thread(agent.get, f"/api/v1/requests/{code}", params={"wait": "30s"})
        )
        socket = await websockets.connect(
            f"ws://127.0.0.1:{server.port}/ws/queue/",
            additional_headers={"Cookie": reviewer.session_cookie},
            origin=server.url,
        )
        # The socket is open and the poll parked (the server took the poll before the
        # handshake, on its one event loop); neither has an answer yet.
        assert not poll.done()
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                async for _ in socket:
                    pass  # pushes until the close
        except websockets.ConnectionClosed:
            pass
        close_code = socket.close_code
        try:
            answer: httpx.Response | BaseException = await asyncio.wait_for(poll, timeout=10)
        except Exception as error:
            answer = error
        exited = await asyncio.to_thread(server.process.wait, 10)
        # uvicorn finishes its shutdown, then re-raises the signal it caught: a clean stop by
        # SIGTERM, as supervisors expect to see it.
        assert exited == -signal.SIGTERM, server.log.read_text()
        return answer, close_code, time.monotonic() - signalled

    try:
        answer, close_code, took = asyncio.run(scenario())
    finally:
        agent.close()
        reviewer.close()

    assert isinstance(answer, httpx.Response), f"the parked poll got no answer: {answer!r}"
    assert answer.status_code == 200
    assert answer.json()["status"] == "pending"  # its state now: the agent asks again elsewhere
    assert close_code == 1012
    assert took < 5, f"the server took {took:.1f} s to stop"
