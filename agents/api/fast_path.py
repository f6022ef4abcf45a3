"""The agent API's two hot operations, answered as plain ASGI in front of Django.

Why: an agent fleet calls two operations at volume, "create a request" and "wait for its
decision", and each waits on the console before acting. Django's request path under ASGI
(eleven middlewares, DRF, sync views run on one thread per process) cost about 5 ms of CPU a
request on the benchmark machine, more than the work itself once creation is batched
(agents.api.intake). So those two operations are served here, on the event loop:

- POST /api/v1/requests: parsed and validated with the same parser and serializer as the DRF
  view, then handed to the process's intake batcher, which checks the credential and writes
  the request with the others arriving at the same time;
- GET /api/v1/requests/<id>[?wait=]: one database read on a worker thread, and for a long
  poll a wait on the process's realtime subscription holding no thread and no connection.

Only plain success is answered here. Anything else (a malformed body, a bad credential, a
replay conflict, an unknown id, a malformed `wait`) is passed on to Django unchanged, body
included, so every error message, status and precedence stays defined once, in
agents/api/native.py. Re-running a creation there is safe: it is idempotent by its key.
"""

import io
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import cache, partial
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils.csp import CSP, build_policy
from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer

from agents.api.intake import IntakeItem, intake_batcher
from agents.api.long_poll import approval_is_resolved, long_poll_document
from agents.api.native import (
    approval_read_for_agent,
    approval_request_representation,
    approval_request_submission,
    parse_wait,
)
from agents.authentication import bearer_token
from agents.services import credential_authenticate
from approvals.services import CreateResult
from console.api_errors import ApiError
from console.dependency_errors import (
    RETRY_AFTER_SECONDS,
    is_database_unavailable,
    log_unavailable,
    unavailable_body,
)
from console.host_checks import host_is_allowed
from console.middleware import log_exchange, request_id_for
from console.parsers import BoundedJSONParser
from console.request_context import RequestContext
from console.tracing import traceparent_from_header

# As django-stubs types ASGIHandler, so Django's own handler is an ASGIApp.
Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CREATE_PATH = "/api/v1/requests"
_DETAIL_PATH = re.compile(
    r"^/api/v1/requests/(?P<code>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
_renderer = JSONRenderer()


class AgentApiFastPath:
    """ASGI middleware: answers the hot agent operations, passes everything else to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A Host outside ALLOWED_HOSTS goes to Django, which answers it 400 as for any path.
        if scope["type"] == "http" and host_is_allowed(scope):
            path, method = scope["path"], scope["method"]
            if method == "POST" and path == _CREATE_PATH:
                return await _Exchange(scope, receive, send, self.app).create()
            if method == "GET" and (match := _DETAIL_PATH.match(path)):
                return await _Exchange(scope, receive, send, self.app).read(match["code"])
        return await self.app(scope, receive, send)


class _Exchange:
    """One HTTP exchange on the fast path."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, django: ASGIApp) -> None:
        self.scope, self.receive, self.send, self.django = scope, receive, send, django
        self.started = time.monotonic()
        self.headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        self.request_id = request_id_for(self.headers.get("x-request-id", ""), path=scope["path"])

    # --- POST /api/v1/requests ------------------------------------------------------------

    async def create(self) -> None:
        body, complete = await self._read_body()
        item = self._intake_item(body) if complete else None
        if item is None:
            return await self._pass_on(body, complete)
        try:
            outcome = await intake_batcher(_render_created).submit(item)
        except Exception as error:
            if is_database_unavailable(error):
                # Django would only wait for the pool a second time: answer now.
                return await self._respond_unavailable(error)
            # Nothing was written (one transaction per batch): Django tries again, alone, and
            # answers in the error envelope if it fails too.
            return await self._pass_on(body, complete)
        result = outcome.result
        if result is None or result.error is not None or result.failure is not None:
            return await self._pass_on(body, complete)
        await self._respond(201 if result.created else 200, outcome.rendered)

    def _intake_item(self, body: bytes) -> IntakeItem | None:
        """The creation to batch, or None if anything is unusual (Django answers those)."""
        media_type, parameters = parse_header_parameters(self.headers.get("content-type", ""))
        charset = parameters.get("charset", "utf-8").lower()
        if media_type != "application/json" or charset not in {"utf-8", "utf8"}:
            return None  # Django's parser negotiation decides (415, or another charset)
        token = bearer_token(self.headers.get("authorization", ""))
        key = self.headers.get("idempotency-key", "").strip()
        if token is None or not key or len(key) > 255:
            return None
        try:
            data = BoundedJSONParser().parse(io.BytesIO(body), parser_context={})
        except Exception:
            return None
        try:
            submission = approval_request_submission(data)
        except ValidationError:
            return None
        client = self.scope.get("client") or (None, None)
        origin = RequestContext(
            request_id=self.request_id,
            ip_address=client[0],
            user_agent=self.headers.get("user-agent", "")[:400],
            traceparent=traceparent_from_header(self.headers.get("traceparent")),
        )
        return IntakeItem(token=token, idempotency_key=key, submission=submission, origin=origin)

    async def _read_body(self) -> tuple[bytes, bool]:
        """The body, or as much as the size limit allows (then `complete` is False)."""
        limit = settings.API_MAX_BODY_BYTES
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return b"", False
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                return b"".join(chunks), False
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return b"".join(chunks), False
            if not message.get("more_body", False):
                return b"".join(chunks), True

    # --- GET /api/v1/requests/<id>[?wait=] ------------------------------------------------

    async def read(self, code: str) -> None:
        token = bearer_token(self.headers.get("authorization", ""))
        try:
            wait = parse_wait(_query_value(self.scope, "wait"))
        except ApiError:
            token = None
        if token is None:
            return await self.django(self.scope, self.receive, self.send)
        try:
            found = await _read_for_agent(token, code)
        except Exception as error:
            if not is_database_unavailable(error):
                raise
            return await self._respond_unavailable(error)
        if found is None:
            return await self.django(self.scope, self.receive, self.send)
        answer = await long_poll_document(
            code=code,
            found=found,
            wait=wait,
            read_again=partial(_document_for_token, token, code),
            is_resolved=partial(_is_resolved, code),
            # The decider's read after its commit, of the request this agent was just shown to
            # own: the same document a read now would give, without the read.
            take_pushed=True,
        )
        if answer is None:  # the credential was revoked while the agent waited
            return await self.django(self.scope, self.receive, self.send)
        await self._respond(200, _renderer.render(answer))

    # --- Answering --------------------------------------------------------------------------

    async def _respond(self, status: int, body: bytes) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", self.request_id.encode("latin-1")),
            *_security_headers(),
        ]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
        log_exchange(
            method=self.scope["method"],
            path=self.scope["path"],
            status=status,
            started=self.started,
            request_id=self.request_id,
        )

    async def _respond_unavailable(self, error: BaseException) -> None:
        """503 dependency_unavailable, as Django answers it (console/dependency_errors.py)."""
        log_unavailable(error)
        body = _renderer.render(unavailable_body(self.request_id))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            (b"x-request-id", self.request_id.encode("latin-1")),
            *_security_headers(),
        ]
        await self.send({"type": "http.response.start", "status": 503, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
        log_exchange(
            method=self.scope["method"],
            path=self.scope["path"],
            status=503,
            started=self.started,
            request_id=self.request_id,
        )

    async def _pass_on(self, body: bytes, complete: bool) -> None:
        """Hand the exchange to Django as if it had come straight there, body included."""
        replayed = False

        async def receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": not complete}
            return await self.receive()

        await self.django(self.scope, receive, self.send)


def _query_value(scope: Scope, name: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[-1] if values else None


@cache
def _security_headers() -> tuple[tuple[bytes, bytes], ...]:
    """The headers Django's security, CSP and clickjacking middleware put on every response."""
    headers = [(b"x-frame-options", settings.X_FRAME_OPTIONS.encode())]
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        headers.append((b"referrer-policy", str(settings.SECURE_REFERRER_POLICY).encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(
            (b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode())
        )
    if settings.SECURE_CSP:
        headers.append(
            (str(CSP.HEADER_ENFORCE).lower().encode(), build_policy(settings.SECURE_CSP).encode())
        )
    return tuple(headers)


def _render_created(result: CreateResult) -> bytes | None:
    # On the intake writer thread: serializing may follow a relation, which reads the database.
    if result.approval is None:
        return None
    return _renderer.render(approval_request_representation(result.approval))  # type: ignore[no-any-return]


def _read_sync(token: str, code: str) -> tuple[dict[str, Any], float] | None:
    try:
        agent = credential_authenticate(token=token)
        if agent is None:
            return None
        return approval_read_for_agent(agent=agent, code=code)
    finally:
        # A waiting agent holds no connection: with a pool, closing returns it.
        close_old_connections()


def _is_resolved_sync(code: str) -> bool:
    try:
        return approval_is_resolved(code)
    finally:
        close_old_connections()


async def _document_for_token(token: str, code: str) -> dict[str, Any] | None:
    found = await _read_for_agent(token, code)
    return None if found is None else found[0]


# Not thread-sensitive: reads run on the loop's worker threads, side by side, instead of
# queueing behind every sync view of the process on Django's one thread.
_read_for_agent = sync_to_async(_read_sync, thread_sensitive=False)
_is_resolved = sync_to_async(_is_resolved_sync, thread_sensitive=False)
