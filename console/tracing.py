"""OpenTelemetry: the console's spans, joined to the agent's trace, exported over OTLP.

Off unless the standard variables name a collector (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): then `configure()` (ApprovalsConfig.ready) sets up the
OpenTelemetry SDK with a batching OTLP HTTP/protobuf exporter, which reads the rest of its
settings (headers, timeout, compression, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, the
sampler) from the environment as usual. When off, nothing of the SDK is even imported, and
callers test `enabled()` (a module global) before building anything: the request path pays one
attribute read.

Spans are recorded after the fact with explicit start and end times (`export`): a request's
life crosses processes (created by one server, decided on another, its outcome reported to a
third), so each span is written where its end is known, under the parent the agent named in
its `traceparent` header (W3C Trace Context), which the request stores. The SDK work runs on a
thread of its own, never in the request.
"""

import atexit
import logging
import os
import queue
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

SERVICE_NAME = "agent-approval-console"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

# version-traceid-parentid-flags, lower-case hex (W3C Trace Context, level 1). A later version
# may append fields after a dash; its first four are read the same way.
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})"
    r"(?P<rest>-.*)?$"
)
TRACEPARENT_LENGTH = 55

AttributeValue = str | bool | int | float
Attributes = Mapping[str, AttributeValue | None]

_tracer: Any = None
_provider: Any = None


def traceparent_from_header(value: str | None) -> str:
    """The caller's `traceparent` header, normalized to version 00, or "" when absent or not a
    valid one (the spec says to ignore an invalid header: the console then starts a trace of
    its own, it never refuses the call)."""
    if not value:
        return ""
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return ""
    version, trace_id, span_id = match["version"], match["trace"], match["span"]
    if version == "ff" or (version == "00" and match["rest"]):
        return ""
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return ""
    return f"00-{trace_id}-{span_id}-{match['flags']}"


def enabled() -> bool:
    return _tracer is not None


def configured_endpoint(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ""
    return next((environ[name] for name in ENDPOINT_VARIABLES if environ.get(name)), "")


def configure() -> bool:
    """Set up the exporter if an OTLP endpoint is configured; returns whether tracing is on.

    Idempotent. A tracer provider of the console's own, not the global one: a library in the
    same process that sets the global provider neither receives nor redirects these spans.
    """
    global _tracer, _provider
    if _tracer is not None:
        return True
    if not configured_endpoint():
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        # Neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES named it: say what this is.
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    # Batched, on the SDK's own thread: exporting never waits on the collector in a request.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _provider = provider
    _tracer = provider.get_tracer("approval-console")
    atexit.register(_drain_at_exit)
    logger.info("OpenTelemetry tracing on: spans go to %s", configured_endpoint())
    return True


def shutdown() -> None:
    """Flush what is buffered and stop exporting (tests; the SDK also does it at exit)."""
    global _tracer, _provider
    if _provider is not None:
        _queue.join()
        _provider.shutdown()
    _tracer = _provider = None


def flush(timeout_millis: int = 5000) -> bool:
    """Record what is queued, then export it (tests; the exporter also sends on its own)."""
    if _provider is None:
        return True
    _queue.join()
    return bool(_provider.force_flush(timeout_millis))


@dataclass(frozen=True)
class SpanRecord:
    """One finished span to record: its times (time.time_ns()) and attributes (None values are
    left out), an error status when `error` is set, and spans recorded inside it."""

    name: str
    start_ns: int
    end_ns: int
    attributes: Attributes
    error: str | None = None
    error_type: str | None = None
    children: tuple["SpanRecord", ...] = ()


def export(spans: list[SpanRecord], *, traceparent: str) -> None:
    """Record finished spans under `traceparent` (a trace of their own when it is "").

    Handed to the tracing thread: building a span in the SDK costs tens of microseconds, which
    stays off the request and the batched-intake writer. Never raises: tracing must not fail a
    decision. A no-op when tracing is off."""
    if _provider is None or not spans:
        return
    _ensure_thread()
    _queue.put((spans, traceparent))


_queue: "queue.Queue[tuple[list[SpanRecord], str]]" = queue.Queue()
_thread: threading.Thread | None = None
_thread_lock = threading.Lock()


def _ensure_thread() -> None:
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_work, name="tracing", daemon=True)
            _thread.start()


def _work() -> None:
    while True:
        spans, traceparent = _queue.get()
        try:
            for span in spans:
                _record(span, traceparent)
        except Exception:
            logger.exception("recording spans failed")
        finally:
            _queue.task_done()


def _after_fork_in_child() -> None:
    # A forked worker (Celery's prefork pool) has the queue but not the thread: start afresh.
    global _queue, _thread
    _queue, _thread = queue.Queue(), None


os.register_at_fork(after_in_child=_after_fork_in_child)


def _drain_at_exit() -> None:
    # Registered after the SDK's own exit hook, so it runs first: queued spans reach the
    # exporter before the SDK flushes it and shuts down.
    if _provider is not None and _thread is not None and _thread.is_alive():
        _queue.join()


def _record(span: SpanRecord, traceparent: str) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    tracer = _tracer
    if tracer is None:
        return
    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    recorded = tracer.start_span(
        span.name,
        context=parent,
        kind=SpanKind.INTERNAL,
        start_time=span.start_ns,
        attributes={key: value for key, value in span.attributes.items() if value is not None},
    )
    if span.error is not None:
        recorded.set_status(Status(StatusCode.ERROR, span.error))
        recorded.set_attribute("error.type", span.error_type or "_OTHER")
    recorded.end(end_time=max(span.start_ns, span.end_ns))
    if span.children:
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(recorded))
        for child in span.children:
            _record(child, carrier.get("traceparent", traceparent))
