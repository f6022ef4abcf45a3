"""Django's HTTP under ASGI: a synchronous view's request crosses to a thread once, not once per
middleware hook; a coroutine view (the long polls) keeps Django's async chain."""

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref import sync
from asgiref.testing import ApplicationCommunicator

from console.asgi_http import DjangoHttp, view_is_coroutine

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def thread_hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every sync_to_async call made while serving: each is a hop to a thread and back."""
    calls: list[object] = []
    original = sync.SyncToAsync.__call__

    async def counted(self: sync.SyncToAsync[Any, Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(self.func)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counted)
    yield calls


async def _get(app: Any, path: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(5)
    await communicator.receive_output(5)  # the body
    await communicator.wait(5)
    return int(start["status"])


@pytest.mark.asyncio
async def test_a_synchronous_view_crosses_to_a_thread_once_for_all_its_middleware(
    thread_hops: list[object],
) -> None:
    app = DjangoHttp()
    await _get(app, "/healthz")  # first call: imports, caches
    del thread_hops[:]

    assert await _get(app, "/healthz") == 200

    # The request's middleware and view: one hop. The rest are Django's request_started and
    # request_finished signals' receivers. Through Django's own handler it was 20 or more: a hop
    # for each middleware hook (process_request, process_view, process_response of sessions,
    # CSRF, auth, messages...).
    assert len(thread_hops) <= 5, thread_hops


def test_the_long_polls_keep_the_async_chain_and_the_rest_take_the_sync_one() -> None:
    urlconf = "console.urls"
    assert view_is_coroutine("/api/v1/requests/00000000-0000-0000-0000-000000000000", urlconf)
    assert not view_is_coroutine("/healthz", urlconf)
    assert not view_is_coroutine("/", urlconf)
    assert not view_is_coroutine("/no/such/page", urlconf)


@pytest.mark.asyncio
async def test_requests_one_after_another_run_on_the_same_lent_thread() -> None:
    """A thread per request cost a tenth of /healthz's CPU; the sync chain lends one instead.
    Each request's signal receivers (request_finished closes its database connection) still run
    on the thread that served it."""
    from django.core.signals import request_finished, request_started

    seen: list[tuple[str, threading.Thread]] = []

    def started(**kwargs: Any) -> None:
        seen.append(("started", threading.current_thread()))

    def finished(**kwargs: Any) -> None:
        seen.append(("finished", threading.current_thread()))

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        app = DjangoHttp()
        for _ in range(3):
            assert await _get(app, "/healthz") == 200
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)

    assert [step for step, _ in seen] == ["started", "finished"] * 3
    threads = {id(thread) for _, thread in seen}
    assert len(threads) == 1, seen
    assert seen[0][1] is not threading.main_thread()


@pytest.mark.asyncio
async def test_a_request_that_fails_midway_does_not_give_its_thread_back() -> None:
    app = DjangoHttp()
    handler = app.sync_chain
    await _get(app, "/healthz")
    idle_before = list(handler.threads.idle)
    assert len(idle_before) == 1

    async def broken_receive() -> dict[str, Any]:
        raise ConnectionResetError("the client went away")

    scope = {"type": "http", "path": "/healthz", "method": "GET", "headers": []}
    with pytest.raises(ConnectionResetError):
        await handler(scope, broken_receive, None)
    # The lent thread was stopped, not put back beside the idle one.
    assert handler.threads.idle == []
    with pytest.raises(RuntimeError, match="after shutdown"):
        idle_before[0].submit(print)
