"""ASGI entry point: HTTP (Django, static files) and websockets (Channels)."""

import asyncio
import gc
import os
import signal
import threading
from types import FrameType
from typing import Any

import django
from asgiref.sync import sync_to_async

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django.setup(set_prefix=False)  # as get_asgi_application() does

# Imported after Django is set up: they load models.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from agents.api.fast_path import AgentApiFastPath, ASGIApp  # noqa: E402
from approvals.routing import websocket_urlpatterns  # noqa: E402
from console.asgi_http import DjangoHttp  # noqa: E402
from console.database import startup_problem  # noqa: E402
from console.host_checks import SameOriginWebsocketValidator  # noqa: E402

# Django's HTTP side, its middleware in one thread hop per request (console/asgi_http.py).
django_http = DjangoHttp()

# The console serves its own static files so one command runs it anywhere; behind a reverse
# proxy, set SERVE_STATIC=false and serve `collectstatic` output from the proxy instead.
http_app: ASGIApp = (
    # Typed for Django's handler; it only calls the app it wraps with (scope, receive, send).
    ASGIStaticFilesHandler(django_http)  # type: ignore[arg-type]
    if settings.SERVE_STATIC
    else django_http
)
# The agent API's hot operations skip Django's request path (see agents/api/fast_path.py for why).
if settings.AGENT_API_FAST_PATH:
    http_app = AgentApiFastPath(http_app)


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI start-up: a server that cannot reach its database refuses to start, saying why.

    Otherwise it would accept traffic and fail every request, each after the pool's timeout.
    uvicorn prints the message and exits (status 3). One direct connection, milliseconds.
    """
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            problem = await sync_to_async(startup_problem, thread_sensitive=False)()
            if problem:
                await send({"type": "lifespan.startup.failed", "message": problem})
                return
            _drain_long_polls_on_exit_signals(asyncio.get_running_loop())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _drain_long_polls_on_exit_signals(loop: asyncio.AbstractEventLoop) -> None:
    """On SIGTERM or SIGINT, answer parked long polls at once, then let the server stop.

    The server (uvicorn) stops accepting, closes websockets with 1012 (browsers reconnect,
    through the load balancer, to another server) and waits for open exchanges to finish: a long
    poll would hold it for up to APPROVAL_LONG_POLL_MAX_SECONDS. Chained before the server's own
    handler, which is already installed when the lifespan starts. Only when there is one: a
    process without a handler of its own keeps Python's defaults.
    """
    from approvals.realtime import drain

    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers belong to the main thread (a server embedded in a thread)
    for signum in (signal.SIGTERM, signal.SIGINT):
        server_handler = signal.getsignal(signum)
        if not callable(server_handler):
            continue

        def handler(
            signum: int, frame: FrameType | None, server_handler: Any = server_handler
        ) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(drain)
            server_handler(signum, frame)

        signal.signal(signum, handler)


application = ProtocolTypeRouter(
    {
        "http": http_app,
        # Channels' AllowedHostsOriginValidator matched the Origin's host against ALLOWED_HOSTS
        # and ignored its scheme and port; this is Django's CSRF origin check. No session or auth
        # middleware: the consumer resolves its reviewer itself and keeps only the id
        # (approvals/consumers.py says why).
        "websocket": SameOriginWebsocketValidator(URLRouter(websocket_urlpatterns)),
        "lifespan": lifespan,
    }
)

# Everything loaded so far lives as long as the process. Frozen, the cyclic garbage collector
# never scans it again: a full collection over the start-up heap (about 110,000 objects) took
# about 60 ms here, a pause for every request, long poll and push in flight.
gc.collect()
gc.freeze()
