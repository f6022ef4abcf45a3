"""Shared fixtures: personas, API clients, and a live ASGI server that serves HTTP and websockets.

pytest-django's live_server speaks no websockets, so `live_console` runs the real ASGI application
under uvicorn in a thread (it starts in about 0.1 s): the same stack `make run` starts.
"""

import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
import websockets
from django.db import connection
from rest_framework.test import APIClient

from console.database import connection_failure
from console.websocket_protocol import HandshakeFreeingProtocol
from tests.factories import PASSWORD, UserFactory, agent_with_token
from tests.thread_connections import ThreadConnectionWatch, close_harness_connections


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> Iterator[None]:
    from django.conf import settings

    with tempfile.TemporaryDirectory(prefix="console-test-db-") as directory:
        for alias, database in settings.DATABASES.items():
            # Transactional tests empty every table afterwards, the audit trail too, which its
            # guards refuse to anyone else (approvals.audit.guards).
            database["AUDIT_WIPE_ALLOWED"] = True  # type: ignore[typeddict-unknown-key]
            if database["ENGINE"] == "django.db.backends.sqlite3":
                # A file: threads (the live console, race tests) and the server processes some
                # tests start share it. One per pytest process (per xdist worker too), removed
                # afterwards: two runs at once in one checkout must not use the same one.
                test_name = str(Path(directory) / f"test_{alias}.sqlite3")
                database.setdefault("TEST", {})["NAME"] = test_name
        yield


@pytest.fixture(scope="session", autouse=True)
def _broker_folder_of_its_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Embedded, the suite queues its tasks in a folder of its own, not the checkout's var/celery.

    That folder is the queue of `make run`'s worker: a console running in the same checkout took
    the suite's tasks (and ran them against its own database), and the suite's in-process
    workers took whatever an earlier run had left there. With Redis, tasks already go under the
    suite's own key prefix (tests/subprocess_env.py does the same for the processes tests start).
    """
    from django.conf import settings

    from console.celery import app

    if not settings.CELERY_BROKER_URL.startswith("filesystem:"):
        yield
        return
    root = tmp_path_factory.mktemp("celery")
    options = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    for option, value in options.items():
        if "folder" in option:  # queue, processed, control: the same names, somewhere else
            folder = root / Path(value).name
            folder.mkdir(exist_ok=True)
            options[option] = str(folder)
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    app.conf.broker_transport_options = options
    yield


@pytest.fixture
def reviewer(db):
    # Staff: sees every request, routed or not. Team access has its own personas
    # (tests/approvals/test_access_matrix.py).
    return UserFactory(username="rita", is_staff=True)


@pytest.fixture
def agent_and_token(db):
    return agent_with_token(name="refund-bot")


@pytest.fixture
def agent_client(agent_and_token) -> APIClient:
    _, token = agent_and_token
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveConsole:
    url: str
    port: int
    server: uvicorn.Server = field(repr=False)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def wait_until_settled(self, timeout: float = 10) -> None:
        """Wait until the server runs no application code: no request or socket handler (a
        reviewer page's socket saying goodbye after the page closed), and no intake batch."""
        from agents.api.intake import intake_idle

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.server.server_state.tasks and intake_idle():
                return
            time.sleep(0.01)


@pytest.fixture(scope="session")
def live_console(django_db_setup, django_db_blocker) -> Iterator[LiveConsole]:
    from console.asgi import application

    port = _free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ws_per_message_deflate=False,  # as production runs it (docs/design.md, "Processes")
        ws=HandshakeFreeingProtocol,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the live console did not start")
        time.sleep(0.02)
    yield LiveConsole(url=f"http://127.0.0.1:{port}", port=port, server=server)
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture(scope="session", autouse=True)
def _the_flush_retries_a_deadlock() -> Iterator[None]:
    """The last line of defence behind the fixture below: a TRUNCATE that still meets the live
    server's work and is chosen as the deadlock's victim is run again (it was rolled back whole)."""
    from django.db import OperationalError
    from django.db.backends.base.operations import BaseDatabaseOperations

    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self: BaseDatabaseOperations, sql_list: Iterable[str]) -> None:
        for attempt in range(5):
            try:
                return original(self, sql_list)
            except OperationalError as error:
                if "deadlock" not in str(error) or attempt == 4:
                    raise
                time.sleep(0.1)

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]
    yield
    BaseDatabaseOperations.execute_sql_flush = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _live_console_settles_before_the_flush(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that used the live console leaves it working for a moment: a push after the last
    answer, a closed page's socket saying goodbye. That work meeting the teardown's TRUNCATE
    deadlocks on PostgreSQL. So the database fixture is set up before the test's others (a page,
    a socket) and torn down after them, and before it empties the tables the server is waited
    on until it runs nothing."""
    if "live_console" not in request.fixturenames:
        yield
        return
    if "transactional_db" in request.fixturenames:
        request.getfixturevalue("transactional_db")
    console = request.getfixturevalue("live_console")
    yield
    console.wait_until_settled()


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str

    @property
    def params(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password}

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, dbname: str) -> str:
        credentials = quote(self.user, safe="")
        if self.password:
            credentials += ":" + quote(self.password, safe="")
        return f"postgres://{credentials}@{self.address}/{dbname}"


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """The PostgreSQL server the tests run on, else the local one (127.0.0.1:5432, user postgres,
    as the CI machine has it), for tests that need a server whatever DATABASE_URL says."""
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        server = PostgresServer(
            host=db["HOST"] or "127.0.0.1",
            port=int(db["PORT"] or 5432),
            user=db["USER"] or "",
            password=db["PASSWORD"] or "",
        )
    else:
        server = PostgresServer(host="127.0.0.1", port=5432, user="postgres", password="")
    if failure := connection_failure({**server.params, "dbname": "postgres"}):
        pytest.skip(f"needs a PostgreSQL server: {failure}")
    return server


class ReviewerSession:
    """A logged-in reviewer talking HTTP to the live console, CSRF and all, like a browser."""

    def __init__(self, base_url: str, username: str, password: str = PASSWORD) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10, follow_redirects=False)
        login_page = self.client.get("/accounts/login/")
        assert login_page.status_code == 200
        response = self.client.post(
            "/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": self.client.cookies["csrftoken"],
            },
            headers={"Referer": f"{base_url}/accounts/login/"},
        )
        assert response.status_code == 302, response.text
        self.base_url = base_url

    @property
    def session_cookie(self) -> str:
        return f"sessionid={self.client.cookies['sessionid']}"

    def socket(self, approval: object | None = None) -> Any:
        """Open the queue's websocket (with `approval`: a decision page's) as the browser does."""
        ws_base = "ws" + self.base_url.removeprefix("http")
        query = f"?approval={approval}" if approval is not None else ""
        return websockets.connect(
            f"{ws_base}/ws/queue/{query}",
            additional_headers={"Cookie": self.session_cookie},
            origin=self.base_url,
        )

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self.client.post(
            path,
            data=data,
            headers={
                "X-CSRFToken": self.client.cookies["csrftoken"],
                "Referer": f"{self.base_url}/",
                "HX-Request": "true",
            },
        )

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def reviewer_session(live_console, transactional_db) -> Iterator[ReviewerSession]:
    UserFactory(username="rita", is_staff=True)
    session = ReviewerSession(live_console.url, "rita")
    yield session
    session.close()


@pytest.fixture(autouse=True)
def _threads_close_their_connections() -> Iterator[None]:
    # See tests/thread_connections.py: a connection a thread keeps is a pool slot lost for good.
    with ThreadConnectionWatch() as watch:
        yield
        close_harness_connections()
    if left := watch.left_open():
        watch.close_left_open()
        pytest.fail(
            f"threads left their database connection open: {', '.join(sorted(set(left)))}. "
            "Close it in the thread (connections.close_all()), or make the call through "
            "tests.thread_connections.db_to_thread or channels' database_sync_to_async."
        )


@pytest.fixture(autouse=True)
def _reviewers_listening_asked_afresh() -> None:
    # A test sets or deletes LISTENING_KEY to say whether a reviewer listens; a "yes" that an
    # earlier test's page left remembered in this process would answer for it.
    from approvals.realtime import reviewers_listening_forget

    reviewers_listening_forget()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    # Real hashing costs ~0.3 s per user; the hasher is Django's concern, not ours.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
