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
"""

from functools import lru_cache
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, resolve


class SyncChainASGIHandler(ASGIHandler):
    """ASGIHandler whose middleware and view run synchronously, in one thread hop."""

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

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
