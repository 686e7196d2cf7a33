"""Distributed tracing (OpenTelemetry): one trace per lead, from `POST /api/leads` through
the outbox, every Kafka hop, the SQL and the calls to Meta.

Off by default. `configure_tracing` turns it on when an exporter is named: the standard
`OTEL_TRACES_EXPORTER` (`otlp`, `console`; the OTLP exporter then reads the standard
`OTEL_EXPORTER_OTLP_*` variables itself) and/or `AUTODM_TRACE_DIR` (JSON lines on disk,
read back by `autodm trace`: traces without any network). `OTEL_SDK_DISABLED=true` wins.
Sampling is the standard `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` (default
`parentbased_always_on`; `parentbased_traceidratio` with `0.1` keeps one lead in ten, and
every hop of a kept lead follows its parent's decision).

When it is off, nothing is instrumented at all: no middleware, no hooks, no span objects;
the helpers below return at their first line (one module-level flag).

No attribute carries a token, a message's text or personal data: URLs lose their query,
SQL is recorded with its placeholders, and the Meta span says only provider, operation,
HTTP status, Meta's error code/class and the outcome (docs/RUNBOOK.md, "Traces").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from faststream import BaseMiddleware
    from faststream.kafka.prometheus import KafkaPrometheusMiddleware
    from sqlalchemy.ext.asyncio import AsyncEngine

    from shared.platform.settings import Settings

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER = trace.get_tracer("autodm")
_state = {"enabled": False}
# On a replayed dead letter: the traceparent it failed under (shared/messaging/dlq_operations.py);
# the relay's publish links to that trace.
H_REPLAYED_TRACE = "x-replay-of-traceparent"
# Paths whose spans are noise (scrapes and probes every few seconds).
EXCLUDED_URLS = "/metrics,/healthz,/readyz"
# Per-record span contexts of a batch being handled, by correlation id: an event a batch
# handler writes to the outbox continues the trace of the record that caused it.
_BATCH_PARENTS: ContextVar[Mapping[str, SpanContext] | None] = ContextVar(
    "autodm_batch_parents", default=None
)


def enabled() -> bool:
    return _state["enabled"]


def configure_tracing(service: str, settings: Settings) -> bool:
    """Install the tracer provider once per process if an exporter is configured; returns
    whether tracing is on. Later calls (several services in one test process) keep it."""
    if _state["enabled"]:
        return True
    exporters = _exporters(settings, service)
    if settings.otel_sdk_disabled or not exporters:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        sampler=make_sampler(settings.otel_traces_sampler, settings.otel_traces_sampler_arg),
        resource=Resource.create({"service.name": f"autodm-{service}"}),
    )
    for exporter in exporters:
        # Batched and off the event loop: a span costs an append to a queue.
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _state["enabled"] = True
    return True


def _exporters(settings: Settings, service: str) -> list[Any]:
    names = {n.strip() for n in settings.otel_traces_exporter.split(",")} - {"", "none"}
    exporters: list[Any] = []
    if "otlp" in names:
        # http/protobuf (port 4318): Tempo, Jaeger and the OpenTelemetry Collector take it.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())
    if "console" in names:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        from shared.platform.trace_files import span_line

        # One JSON line per span, as the files: the SDK's own format fails on faststream's
        # bytes-valued Kafka keys.
        exporters.append(ConsoleSpanExporter(formatter=span_line))
    if settings.trace_dir:
        from shared.platform.trace_files import JsonLinesExporter

        exporters.append(JsonLinesExporter(settings.trace_dir, service))
    return exporters


def make_sampler(name: str, arg: str) -> Any:
    """The standard OTEL_TRACES_SAMPLER names, and a guard: a database or HTTP client span
    with no parent (a background loop's poll) is dropped, so idle loops make no traces."""
    from opentelemetry.sdk.trace import sampling

    ratio = float(arg) if arg else 1.0
    known: dict[str, Any] = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": sampling.DEFAULT_ON,
        "parentbased_always_off": sampling.DEFAULT_OFF,
        "parentbased_traceidratio": sampling.ParentBasedTraceIdRatio(ratio),
    }
    if name not in known:
        raise ValueError(f"unknown OTEL_TRACES_SAMPLER {name!r}; one of {sorted(known)}")
    return _NoOrphanClients(known[name])


class _NoOrphanClients:
    """Wraps a sampler: root spans of kind CLIENT (SQL of a poll loop) are not recorded."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> Any:
        from opentelemetry.sdk.trace.sampling import Decision, SamplingResult

        parent = trace.get_current_span(parent_context).get_span_context()
        if kind == SpanKind.CLIENT and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self._inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoOrphanClients{{{self._inner.get_description()}}}"


# --- instrumentation (called by the composition roots; nothing when off) ---------------


def kafka_middlewares() -> list[Any]:
    """faststream's Kafka telemetry: W3C trace context in every published record's headers,
    a process span per consumed record (a batch's span links every record's context)."""
    if not enabled():
        return []
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    middleware: BaseMiddleware = KafkaTelemetryMiddleware()  # type: ignore[assignment]
    return [middleware]


def instrument_app(app: FastAPI) -> None:
    if not enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=EXCLUDED_URLS,
        server_request_hook=_scrub_server_span,
        # One span per request, not one more per ASGI message sent or received.
        exclude_spans=["receive", "send"],
    )


def instrument_engine(engine: AsyncEngine) -> None:
    if not enabled():
        return
    from opentelemetry import metrics
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    # The engine's own listeners, per engine: SQLAlchemyInstrumentor().instrument() is a
    # process-wide singleton (a second engine is ignored) and refuses SQLAlchemy 2.1 by its
    # declared range, while these cursor events are unchanged in 2.1. Statements are
    # recorded with their placeholders only (asyncpg's $1...): no values.
    usage = metrics.get_meter("autodm").create_up_down_counter("db.client.connections.usage")
    EngineTracer(_TRACER, engine.sync_engine, usage, enable_commenter=False)  # type: ignore[no-untyped-call]


def instrument_http(client: httpx.AsyncClient) -> None:
    if not enabled():
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, request_hook=_scrub_client_span)


_URL_KEYS = ("http.url", "url.full", "http.target")


def _without_query(span: Span) -> None:
    # Meta's URLs can carry the access token (and webhook verification its token) in the
    # query: only scheme, host and path are kept.
    attributes = getattr(span, "attributes", None) or {}
    for key in _URL_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(key, value.split("?", 1)[0])
    if "url.query" in attributes:
        span.set_attribute("url.query", "[redacted]")


def _scrub_server_span(span: Span, _: Mapping[str, Any]) -> None:
    _without_query(span)


async def _scrub_client_span(span: Span, _: Any) -> None:
    _without_query(span)


# --- trace context: stored, carried, continued ----------------------------------------


def current_traceparent() -> str | None:
    """The W3C traceparent of the span being handled (None when off or outside any)."""
    if not enabled():
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def traceparent_for(correlation_id: str) -> str | None:
    """The traceparent an event written now continues: in a batch handler, that of the
    record with the event's correlation id; else the current span's."""
    if not enabled():
        return None
    parent = _batch_parent(correlation_id)
    if parent is not None:
        return format_traceparent(parent)
    return current_traceparent()


def format_traceparent(span_context: SpanContext) -> str:
    flags = int(span_context.trace_flags)
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}"


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) of a traceparent, or None."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def context_from(traceparent: str | None) -> otel_context.Context:
    return _PROPAGATOR.extract({"traceparent": traceparent} if traceparent else {})


def span_context_of(traceparent: str | None) -> SpanContext | None:
    found = trace.get_current_span(context_from(traceparent)).get_span_context()
    return found if found.is_valid else None


def replayed_trace_headers(headers: dict[str, str]) -> None:
    """A replayed dead letter starts in the replaying request's trace (its outbox row's
    traceparent) and names the trace it failed in, which the relay's span links to."""
    failed_in = headers.pop("traceparent", None)
    headers.pop("tracestate", None)
    if failed_in:
        headers[H_REPLAYED_TRACE] = failed_in


def headers_traceparent(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The traceparent header of a raw Kafka record (aiokafka's list of pairs)."""
    for key, value in headers or ():
        if key == "traceparent":
            return value.decode(errors="replace")
    return None


def continued(
    name: str,
    traceparent: str | None,
    *,
    links: Sequence[str | None] = (),
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int] | None = None,
    correlation_id: str | None = None,
) -> AbstractContextManager[Span | None]:
    """A span continuing the trace of `traceparent` (a stored or carried context; None: the
    current span's), linked to the traces in `links` and to the span current here (the
    batch, the poll) if that is another trace; in a batch, `correlation_id` names the record
    whose span is linked instead of the batch's. Yields None, and does nothing, when off."""
    if not enabled():
        return _OFF
    return _Continued(name, traceparent, links, kind, dict(attributes or {}), correlation_id)


_OFF: AbstractContextManager[None] = nullcontext()


class _Continued:
    """A class, not a generator: contextlib sets `__traceback__` on an exception passing
    through a generator's `with`, which a frozen exception (MetaError) refuses."""

    def __init__(
        self,
        name: str,
        traceparent: str | None,
        links: Sequence[str | None],
        kind: SpanKind,
        attributes: dict[str, str | int],
        correlation_id: str | None,
    ) -> None:
        current = _batch_parent(correlation_id) or trace.get_current_span().get_span_context()
        contexts = [c for c in (span_context_of(tp) for tp in links) if c is not None]
        parent = span_context_of(traceparent)
        if parent is not None and current.is_valid and parent.trace_id != current.trace_id:
            contexts.append(current)
        self._span = _TRACER.start_span(
            name,
            context=context_from(traceparent) if traceparent else None,
            kind=kind,
            links=[Link(c) for c in contexts],
            attributes=attributes,
        )
        self._tokens: tuple[Any, Any] | None = None

    def __enter__(self) -> Span:
        # Inside, events written continue this span, not the batch record's (traceparent_for).
        self._tokens = (
            _BATCH_PARENTS.set(None),
            otel_context.attach(trace.set_span_in_context(self._span)),
        )
        return self._span

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        assert self._tokens is not None
        batch_token, token = self._tokens
        otel_context.detach(token)
        _BATCH_PARENTS.reset(batch_token)
        if exc_type is not None:
            # Never the exception's message: it can quote Meta's answer or a URL.
            self._span.set_status(Status(StatusCode.ERROR))
            self._span.set_attribute("error.type", exc_type.__name__)
        self._span.end()


def _batch_parent(correlation_id: str | None) -> SpanContext | None:
    parents = _BATCH_PARENTS.get()
    return parents.get(correlation_id) if parents and correlation_id else None


@contextmanager
def in_record(correlation_id: str) -> Iterator[None]:
    """In a batch handler, make the span of the record with this correlation id current
    (what is published now continues that record's trace); elsewhere nothing."""
    parent = _batch_parent(correlation_id)
    if parent is None:
        yield
        return
    with trace.use_span(trace.NonRecordingSpan(parent)):
        yield


@contextmanager
def batch_records(
    name: str, records: Sequence[tuple[str, str | None]]
) -> Iterator[Mapping[str, Span]]:
    """One span per record of a batch handled as a whole, each a child of its record's
    context and linked to the batch's span, open while the batch is handled. `records`
    are (correlation id, traceparent). An event the batch writes to the outbox continues
    its record's span (`traceparent_for`)."""
    if not enabled():
        yield {}
        return
    batch = trace.get_current_span().get_span_context()
    links = [Link(batch)] if batch.is_valid else []
    spans: dict[str, Span] = {}
    for correlation_id, traceparent in records:
        if correlation_id in spans:
            continue  # one lead's records share a span (its first record's trace)
        spans[correlation_id] = _TRACER.start_span(
            name, context=context_from(traceparent), kind=SpanKind.CONSUMER, links=links
        )
    token = _BATCH_PARENTS.set({c: s.get_span_context() for c, s in spans.items()})
    try:
        yield spans
    finally:
        _BATCH_PARENTS.reset(token)
        for span in spans.values():
            span.end()


@contextmanager
def in_span(span: Span | None) -> Iterator[None]:
    """Make `span` (from batch_records) current for a record handled on its own."""
    if span is None:
        yield
        return
    with trace.use_span(span, end_on_exit=False):
        yield


def set_attributes(attributes: Mapping[str, str | int | None]) -> None:
    """Attributes on the current span (no-op when off or none is recording)."""
    if not enabled():
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})


# --- logs and metrics -------------------------------------------------------------------


def with_exemplars(middleware: KafkaPrometheusMiddleware) -> KafkaPrometheusMiddleware:
    """faststream's processing-time histogram (the dashboard's handler latency) with the
    process span's trace as exemplar; the middleware as it is when tracing is off."""
    if not enabled():
        return middleware
    from faststream.prometheus.manager import MetricsManager

    class ExemplarManager(MetricsManager):
        __slots__ = ()

        def observe_received_processed_message_duration(
            self, duration: float, broker: str, handler: str, **custom_labels: str
        ) -> None:
            histogram = self._container.received_processed_messages_duration_seconds
            histogram.labels(
                app_name=self._app_name, broker=broker, handler=handler, **custom_labels
            ).observe(duration, exemplar())

    # faststream builds its manager privately; this one differs only in that method.
    manager = middleware._metrics_manager
    middleware._metrics_manager = ExemplarManager(manager._container, app_name=manager._app_name)
    return middleware


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current trace and span ids beside the correlation id."""
    if not _state["enabled"]:
        return event
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event["trace_id"] = f"{span_context.trace_id:032x}"
        event["span_id"] = f"{span_context.span_id:016x}"
    return event


def exemplar() -> dict[str, str] | None:
    """A Prometheus exemplar naming the current trace, when it is sampled (a bucket on the
    dashboard then links to a trace that exists)."""
    if not enabled():
        return None
    span_context = trace.get_current_span().get_span_context()
    if not (span_context.is_valid and span_context.trace_flags.sampled):
        return None
    return {"trace_id": f"{span_context.trace_id:032x}"}
