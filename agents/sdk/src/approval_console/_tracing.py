"""The agent's current trace context, sent with every call so the console's spans join its trace.

Only when `opentelemetry-api` is importable in the agent's process (the SDK does not depend on
it): then the current span's W3C `traceparent` (and `tracestate`) go out as headers, whatever
tracer provider or instrumentation the agent set up. Without it, or outside any span, nothing is
sent. Only the trace context, never baggage: baggage is the agent's, not the console's to read.
"""

from __future__ import annotations

from typing import Any

_propagator: Any = None
_available: bool | None = None


def trace_headers() -> dict[str, str]:
    """{"traceparent": ..., "tracestate": ...} for the current span, or {} when there is none."""
    global _propagator, _available
    if _available is None:
        try:
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError:
            _available = False
        else:
            _propagator, _available = TraceContextTextMapPropagator(), True
    if not _available:
        return {}
    carrier: dict[str, str] = {}
    try:
        _propagator.inject(carrier)
    except Exception:
        return {}  # a broken tracing setup must never stop the agent from asking
    return carrier
