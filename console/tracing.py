"""OpenTelemetry: the console's spans, joined to the agent's trace, exported over OTLP.

Off unless the standard variables name a collector (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): then `configure()` (ApprovalsConfig.ready) sets up the
OpenTelemetry SDK with a batching OTLP HTTP/protobuf exporter, which reads the rest of its
settings (headers, timeout, compression, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, the
sampler) from the environment as usual. When off, nothing of the SDK is even imported, and
callers test `enabled()` (a module global) before building anything: the request path pays one
attribute read.

Spans are recorded after the fact with explicit start and end times (`record`): a request's
life crosses processes (created by one server, decided on another, its outcome reported to a
third), so each span is written where its end is known, under the parent the agent named in
its `traceparent` header (W3C Trace Context), which the request stores.
"""

import logging
import os
import re
from collections.abc import Mapping
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
    logger.info("OpenTelemetry tracing on: spans go to %s", configured_endpoint())
    return True


def shutdown() -> None:
    """Flush what is buffered and stop exporting (tests; the SDK also does it at exit)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def flush(timeout_millis: int = 5000) -> bool:
    return bool(_provider.force_flush(timeout_millis)) if _provider is not None else True


def record(
    name: str,
    *,
    traceparent: str,
    start_ns: int,
    end_ns: int,
    attributes: Attributes,
    error: str | None = None,
    error_type: str | None = None,
) -> str:
    """Record one finished span under `traceparent` (a new trace when it is ""); returns the
    span's own traceparent, for children. Never raises: tracing must not fail a decision."""
    if _tracer is None:
        return ""
    try:
        return _record(name, traceparent, start_ns, end_ns, attributes, error, error_type)
    except Exception:
        logger.exception("recording the span %r failed", name)
        return ""


def _record(
    name: str,
    traceparent: str,
    start_ns: int,
    end_ns: int,
    attributes: Attributes,
    error: str | None,
    error_type: str | None,
) -> str:
    from opentelemetry.trace import SpanKind, Status, StatusCode, format_span_id, format_trace_id
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    span = _tracer.start_span(
        name,
        context=parent,
        kind=SpanKind.INTERNAL,
        start_time=start_ns,
        attributes={key: value for key, value in attributes.items() if value is not None},
    )
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
        span.set_attribute("error.type", error_type or "_OTHER")
    span.end(end_time=max(start_ns, end_ns))
    context = span.get_span_context()
    if not context.is_valid:
        return ""
    return (
        f"00-{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}"
        f"-{int(context.trace_flags):02x}"
    )
