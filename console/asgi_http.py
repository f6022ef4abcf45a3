"""Django's HTTP side under ASGI, in one thread hop per request where the view is synchronous.

Django's ASGI handler runs the middleware in async mode. Every MiddlewareMixin hook
(process_request, process_view, process_response of sessions, CSRF, auth, messages, ...) then
runs through its own sync_to_async: about twenty thread hops for one request, each a future, a
wake-up of the request's thread and one of the event loop. Measured here: `/healthz`, a view that
touches nothing, cost 6 ms of server CPU per call through the ASGI stack against 0.7 ms through
the same middleware called synchronously (Django's test client).

So a request whose view is synchronous (all but the long polls) goes through a copy of the handler
whose middleware chain is built in sync mode, as under WSGI, and the whole chain runs in one
sync_to_async. Views that are coroutines (the agents' long polls, which wait without holding a
thread) keep Django's async chain. Which one a path needs is read from the URL resolver, once per
path (cached).

Django's handler also gives every request a thread of its own (its `ThreadSensitiveContext`: the
request's signal receivers, middleware and view run on one thread, as Django's thread-local
database connections need), started for the request and stopped after it: about 140 us of CPU
per request here, a tenth of `/healthz`'s. The sync chain lends the request a thread that earlier
requests used instead (`RequestThreads`), one request at a time, as a WSGI server's threads are:
the request's last step on it (`request_finished`, which closes its database connection) has run
when the request ends, so the next one finds it as a new thread would.
"""

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from asgiref.sync import ThreadSensitiveContext, iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, resolve


class RequestThreads:
    """Threads lent to one request at a time (each a one-thread executor), kept for the next.

    Used from the event loop only. At most `keep` wait idle; under more requests at once, more
    are started, and those beyond `keep` stop when their request ends.
    """

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.idle: list[ThreadPoolExecutor] = []

    def lend(self) -> ThreadPoolExecutor:
        if self.idle:
            return self.idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, thread: ThreadPoolExecutor) -> None:
        if len(self.idle) < self.keep:
            self.idle.append(thread)
        else:
            thread.shutdown(wait=False)


# Enough for the requests one process serves at once in the usual case (reviewers' pages and API
# calls; agents' calls mostly take the intake's own thread); an idle thread costs its stack.
IDLE_REQUEST_THREADS = 32


class SyncChainASGIHandler(ASGIHandler):
    """ASGIHandler whose middleware and view run synchronously, in one thread hop, on a thread
    lent for the request."""

    def __init__(self) -> None:
        super().__init__()
        self.threads = RequestThreads(keep=IDLE_REQUEST_THREADS)

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = self.threads.lend()
        try:
            # Every thread-sensitive call of the request runs on this thread (asgiref leaves an
            # executor it is given running on exit).
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        except BaseException:
            # Cancelled or failed midway: something of the request's may still run on it.
            thread.shutdown(wait=False)
            raise
        self.threads.give_back(thread)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # Thread-sensitive: the request's one thread (ASGIHandler binds a context per request),
        # where the signal receivers (close_old_connections) run too.
        response: HttpResponseBase = await sync_to_async(self.get_response, thread_sensitive=True)(
            request
        )
        return response


class DjangoHttp:
    """The ASGI app for Django's HTTP: the sync chain, or Django's own for coroutine views."""

    def __init__(self) -> None:
        self.sync_chain = SyncChainASGIHandler()
        self.async_chain = ASGIHandler()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        handler = (
            self.async_chain if view_is_coroutine(path, settings.ROOT_URLCONF) else self.sync_chain
        )
        await handler(scope, receive, send)


@lru_cache(maxsize=4096)
def view_is_coroutine(path: str, urlconf: str) -> bool:
    """Whether the view at `path` is a coroutine. A path that matches nothing: no (Django's 404
    comes from either chain alike)."""
    try:
        match = resolve(path, urlconf)
    except Resolver404:
        return False
    return iscoroutinefunction(match.func)
