"""Django's Host and Origin checks, for the ASGI paths that do not go through Django's request.

The agent API's fast path (agents/api/fast_path.py) answers before Django's middleware, and
websockets go to Channels. Both must refuse what Django refuses: a Host not in ALLOWED_HOSTS
(Django answers 400), and for a socket an Origin other than the console's own scheme, host and
port or a CSRF_TRUSTED_ORIGINS entry (what Django's CSRF check accepts for a form post). Both
run Django's get_host() and scheme on a request built from the ASGI scope as Django builds it,
so USE_X_FORWARDED_HOST, SECURE_PROXY_SSL_HEADER and ALLOWED_HOSTS patterns mean the same
everywhere.
"""

from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.http import is_same_domain

Scope = dict[str, Any]
Headers = tuple[tuple[bytes, bytes], ...]


class _ScopeRequest(HttpRequest):
    """An HttpRequest with META as django.core.handlers.asgi.ASGIRequest fills it."""

    def __init__(self, scope: Scope, headers: Headers) -> None:
        super().__init__()
        self._scope_scheme = scope.get("scheme") or "http"
        server = scope.get("server") or ("unknown", "0")
        self.META["SERVER_NAME"], self.META["SERVER_PORT"] = server[0], str(server[1])
        for raw_name, raw_value in headers:
            name = "HTTP_" + raw_name.decode("latin-1").upper().replace("-", "_")
            value = raw_value.decode("latin-1")
            # Repeated headers are joined, as Django does: two Host headers are no valid host.
            self.META[name] = f"{self.META[name]},{value}" if name in self.META else value

    def _get_scheme(self) -> str:
        # A websocket's scheme is ws or wss; Django's origin check speaks http and https.
        return "https" if self._scope_scheme in {"https", "wss"} else "http"


@lru_cache(maxsize=1)
def _host_header_names() -> frozenset[bytes]:
    """The headers get_host() may read: Host, X-Forwarded-Host/-Port, the proxy's scheme."""
    names = {b"host", b"x-forwarded-host", b"x-forwarded-port"}
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name = settings.SECURE_PROXY_SSL_HEADER[0].removeprefix("HTTP_")
        names.add(meta_name.lower().replace("_", "-").encode("latin-1"))
    return frozenset(names)


def host_is_allowed(scope: Scope) -> bool:
    """Whether Django would accept this request's host (else it answers 400 DisallowedHost)."""
    names = _host_header_names()
    headers = tuple(
        [
            (name, value)
            for name, value in scope["headers"]
            # Django reads x_forwarded_host as X-Forwarded-Host: match the names as it does.
            if name in names or (b"_" in name and name.replace(b"_", b"-") in names)
        ]
    )
    server = scope.get("server")
    return _host_is_allowed(headers, tuple(server) if server else None, scope.get("scheme"))


# Agents send the same Host on every request: one check per distinct value, not per request.
@lru_cache(maxsize=1024)
def _host_is_allowed(headers: Headers, server: tuple[Any, ...] | None, scheme: str | None) -> bool:
    scope = {"server": server, "scheme": scheme}
    try:
        _ScopeRequest(scope, headers).get_host()
    except DisallowedHost:
        return False
    return True


@receiver(setting_changed)
def _forget_host_checks(**kwargs: Any) -> None:
    _host_is_allowed.cache_clear()
    _host_header_names.cache_clear()


def websocket_origin_is_allowed(scope: Scope) -> bool:
    """Whether Django's CSRF origin check would accept this socket's Origin.

    Scheme, host and port must equal the console's own (an Origin of http://localhost:1234 is
    not http://localhost:8000), or match CSRF_TRUSTED_ORIGINS. A socket without an Origin is
    refused: every browser sends one, and only a browser carries a reviewer's cookie unasked.
    """
    request = _ScopeRequest(scope, tuple(scope.get("headers", ())))
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None:
        return False
    # django.middleware.csrf.CsrfViewMiddleware._origin_verified, step by step (it is private).
    try:
        own_origin = f"{'https' if request.is_secure() else 'http'}://{request.get_host()}"
    except DisallowedHost:
        pass
    else:
        if origin == own_origin:
            return True
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in trusted:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    return any(
        is_same_domain(parsed.netloc, pattern.netloc.lstrip("*"))
        for pattern in map(urlsplit, (entry for entry in trusted if "*" in entry))
        if pattern.scheme == parsed.scheme
    )


class SameOriginWebsocketValidator:
    """ASGI middleware: a websocket from another origin is refused at the handshake (403)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if websocket_origin_is_allowed(scope):
            return await self.application(scope, receive, send)  # type: ignore[no-any-return]
        return await WebsocketDenier()(scope, receive, send)  # type: ignore[no-any-return]
