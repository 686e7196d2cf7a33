"""Tracing (shared/platform/tracing.py): nothing installed when off; when on, spans carry the lead's
trace across stored and carried contexts, say nothing secret, and reach logs and metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY

from shared.messaging.broker import make_broker
from shared.platform import tracing
from shared.platform.service_http import add_operational_routes
from shared.platform.settings import Settings
from shared.platform.trace_files import JsonLinesExporter, read_spans, render
from shared.providers.graph_http import call_graph, make_http_client
from shared.providers.meta_errors import MetaError

TOKEN = "EAAG-secret-token"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    # One global provider per process: reuse one another test installed.
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(sampler=tracing.make_sampler("parentbased_always_on", ""))
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


@pytest.fixture
def on(exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    monkeypatch.setitem(tracing._state, "enabled", True)
    exporter.clear()
    return exporter


@pytest.fixture
def off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(tracing._state, "enabled", False)
    yield


def test_off_by_default_installs_nothing(off: None) -> None:
    settings = Settings()
    assert not tracing.configure_tracing("api", settings)
    assert tracing.kafka_middlewares() == []
    broker = make_broker(settings, "api")
    names = [type(m).__name__ for m in broker.middlewares]
    assert "KafkaTelemetryMiddleware" not in names
    client = make_http_client("http://meta.test", 1.0, 1)
    assert type(client._transport).__module__.startswith("httpx")  # not wrapped
    assert tracing.current_traceparent() is None
    assert tracing.exemplar() is None
    with tracing.continued("x", "00-" + "a" * 32 + "-" + "b" * 16 + "-01") as span:
        assert span is None


def test_the_standard_env_names_configure_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,console")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.1")
    monkeypatch.setenv("AUTODM_TRACE_DIR", "/tmp/autodm-traces-test")
    settings = Settings()
    kinds = [type(e).__name__ for e in tracing._exporters(settings, "api")]
    assert kinds == ["OTLPSpanExporter", "ConsoleSpanExporter", "JsonLinesExporter"]
    sampler = tracing.make_sampler(settings.otel_traces_sampler, settings.otel_traces_sampler_arg)
    assert "TraceIdRatioBased{0.1}" in sampler.get_description()
    assert "ParentBased" in sampler.get_description()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.configure_tracing("api", Settings())
    with pytest.raises(ValueError, match="unknown OTEL_TRACES_SAMPLER"):
        tracing.make_sampler("sometimes", "")


def test_a_poll_loops_orphan_client_spans_are_dropped_not_a_requests(
    on: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("SELECT outbox", kind=SpanKind.CLIENT):
        pass
    with tracer.start_as_current_span("POST /api/leads", kind=SpanKind.SERVER):  # noqa: SIM117
        with tracer.start_as_current_span("INSERT leads", kind=SpanKind.CLIENT):
            pass
    assert sorted(s.name for s in on.get_finished_spans()) == ["INSERT leads", "POST /api/leads"]


def test_a_stored_traceparent_is_continued_and_the_current_trace_linked(
    on: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request"):
        stored = tracing.current_traceparent()
    assert stored is not None and tracing.trace_id_of(stored) is not None
    with tracer.start_as_current_span("relay poll") as poll:  # noqa: SIM117
        with tracing.continued("leads.created outbox relay", stored):
            pass
    spans = {s.name: s for s in on.get_finished_spans()}
    relay, request = spans["leads.created outbox relay"], spans["request"]
    assert relay.context.trace_id == request.context.trace_id
    assert relay.parent is not None and relay.parent.span_id == request.context.span_id
    assert [link.context.span_id for link in relay.links] == [poll.get_span_context().span_id]


def test_batch_records_continue_each_records_trace_and_link_the_batch(
    on: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("test")
    parents = {}
    for lead in ("lead-a", "lead-b"):
        with tracer.start_as_current_span(f"request {lead}"):
            parents[lead] = tracing.current_traceparent()
    with tracer.start_as_current_span("leads.created process") as batch:  # noqa: SIM117
        with tracing.batch_records("leads.created record", list(parents.items())) as spans:
            written = {lead: tracing.traceparent_for(lead) for lead in parents}
            assert set(spans) == set(parents)
    for lead, parent in parents.items():
        record = spans[lead]
        assert record.get_span_context().trace_id == int(tracing.trace_id_of(parent) or "0", 16)
        assert written[lead] == tracing.format_traceparent(record.get_span_context())
    finished = [s for s in on.get_finished_spans() if s.name == "leads.created record"]
    assert len(finished) == 2
    assert all(s.links[0].context.span_id == batch.get_span_context().span_id for s in finished)
    # Outside a batch, an event continues the current span.
    with tracer.start_as_current_span("alone") as alone:
        assert tracing.traceparent_for("lead-a") == tracing.format_traceparent(
            alone.get_span_context()
        )


def test_a_replayed_dead_letter_names_the_trace_it_failed_in() -> None:
    failed_in = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"
    headers = {"traceparent": failed_in, "tracestate": "x=y", "event-type": "dm.requested"}
    tracing.replayed_trace_headers(headers)
    assert headers == {"event-type": "dm.requested", tracing.H_REPLAYED_TRACE: failed_in}


async def test_a_meta_call_span_has_the_error_code_and_outcome_and_nothing_secret(
    on: InMemorySpanExporter,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        error = {"message": "(#551) This person isn't available", "code": 551, "type": "X"}
        return httpx.Response(400, json={"error": error})

    client = httpx.AsyncClient(base_url="http://meta.test", transport=httpx.MockTransport(answer))
    tracing.instrument_http(client)
    with pytest.raises(MetaError):
        await call_graph(
            client,
            "instagram",
            "send_dm",
            "POST",
            f"/v23.0/me/messages?access_token={TOKEN}",
            json={"recipient": {"id": "igsid-1"}, "message": {"text": "Hello Jane"}},
        )
    spans = {s.name: s for s in on.get_finished_spans()}
    meta = spans["meta send_dm"]
    assert meta.attributes is not None
    assert meta.attributes["autodm.meta.error_code"] == 551
    assert meta.attributes["autodm.meta.outcome"] == "recipient"
    assert meta.attributes["http.response.status_code"] == 400
    http_span = spans["POST"]
    assert http_span.parent is not None and http_span.parent.span_id == meta.context.span_id
    everything = json.dumps([dict(s.attributes or {}) for s in spans.values()])
    everything += json.dumps([[e.attributes for e in s.events] for s in spans.values()])
    for secret in (TOKEN, "Hello Jane", "igsid-1", "access_token"):
        assert secret not in everything


async def test_latency_histogram_carries_the_trace_as_exemplar(
    on: InMemorySpanExporter,
) -> None:
    client = httpx.AsyncClient(
        base_url="http://meta.test",
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json={"id": "m1"})),
    )
    with trace.get_tracer("test").start_as_current_span("send") as span:
        await call_graph(client, "instagram", "exemplar_probe", "GET", "/me")
    trace_id = f"{span.get_span_context().trace_id:032x}"
    app = FastAPI()
    add_operational_routes(app, {})
    with TestClient(app) as http:
        open_metrics = http.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        classic = http.get("/metrics")
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    probe = [
        line
        for line in open_metrics.text.splitlines()
        if "exemplar_probe" in line and "_bucket" in line and "trace_id" in line
    ]
    assert probe and trace_id in probe[0]
    assert "trace_id" not in classic.text  # the classic format has no exemplars
    assert REGISTRY is not None


def test_logs_carry_trace_and_span_ids(on: InMemorySpanExporter) -> None:
    with trace.get_tracer("test").start_as_current_span("handling") as span:
        event = tracing.add_trace_ids(None, "info", {"event": "x", "correlation_id": "c"})
    context = span.get_span_context()
    assert event["trace_id"] == f"{context.trace_id:032x}"
    assert event["span_id"] == f"{context.span_id:016x}"
    assert event["correlation_id"] == "c"


def test_request_urls_lose_their_query(on: InMemorySpanExporter) -> None:
    with trace.get_tracer("test").start_as_current_span(
        "GET /webhooks/instagram",
        attributes={
            "http.url": "http://x/webhooks/instagram?hub.verify_token=s3cret",
            "http.target": "/webhooks/instagram?hub.verify_token=s3cret",
        },
    ) as span:
        tracing._scrub_server_span(span, {})
    attributes: Any = on.get_finished_spans()[-1].attributes
    assert attributes["http.url"] == "http://x/webhooks/instagram"
    assert attributes["http.target"] == "/webhooks/instagram"


def test_trace_files_round_trip_into_a_tree(on: InMemorySpanExporter, tmp_path: Any) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /api/leads"):
        # faststream records Kafka keys as bytes: the export must not choke on them.
        key = {"messaging.kafka.message.key": b"creator-1"}
        with tracer.start_as_current_span("leads.created outbox relay", attributes=key):
            pass
    JsonLinesExporter(str(tmp_path), "api").export(on.get_finished_spans())
    spans = read_spans(tmp_path)
    assert {s["name"] for s in spans} == {"POST /api/leads", "leads.created outbox relay"}
    relay = next(s for s in spans if s["name"] == "leads.created outbox relay")
    assert relay["attributes"]["messaging.kafka.message.key"] == "creator-1"
    lines = render(spans).splitlines()
    assert lines[1].endswith("POST /api/leads")
    assert lines[2].endswith("  leads.created outbox relay")  # indented: a child


def test_sql_statements_are_spans_of_the_request_without_their_values(
    on: InMemorySpanExporter,
) -> None:
    from types import SimpleNamespace

    from sqlalchemy import create_engine, text

    engine = create_engine("sqlite://")
    # The listeners go on the async engine's sync_engine (asyncpg needs a server: sqlite).
    async_engine: Any = SimpleNamespace(sync_engine=engine)
    tracing.instrument_engine(async_engine)
    with trace.get_tracer("test").start_as_current_span("POST /api/leads") as request:  # noqa: SIM117
        with engine.connect() as connection:
            connection.execute(text("SELECT :name"), {"name": "Jane Doe"})
    sql = [s for s in on.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert len(sql) == 1
    assert sql[0].parent is not None
    assert sql[0].parent.span_id == request.get_span_context().span_id
    assert "Jane Doe" not in json.dumps(dict(sql[0].attributes or {}))


def test_handler_latency_of_faststream_carries_the_process_spans_trace(
    on: InMemorySpanExporter,
) -> None:
    from faststream.kafka.prometheus import KafkaPrometheusMiddleware
    from prometheus_client import CollectorRegistry
    from prometheus_client.openmetrics.exposition import generate_latest

    registry = CollectorRegistry()
    middleware = tracing.with_exemplars(KafkaPrometheusMiddleware(registry=registry))
    with trace.get_tracer("test").start_as_current_span("leads.created process") as span:
        middleware._metrics_manager.observe_received_processed_message_duration(
            0.3, broker="kafka", handler="leads.created"
        )
    trace_id = f"{span.get_span_context().trace_id:032x}"
    exposed = generate_latest(registry).decode()  # type: ignore[no-untyped-call]
    buckets = [line for line in exposed.splitlines() if "duration_seconds_bucket" in line]
    assert any(trace_id in line for line in buckets)


def test_autodm_trace_prints_one_trace_as_a_tree(
    on: InMemorySpanExporter, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from cli.main import app
    from shared.platform.settings import get_settings

    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /api/leads") as request:  # noqa: SIM117
        with tracer.start_as_current_span("meta send"):
            pass
    with tracer.start_as_current_span("another lead"):
        pass
    JsonLinesExporter(str(tmp_path), "api").export(on.get_finished_spans())
    monkeypatch.setenv("AUTODM_TRACE_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        trace_id = f"{request.get_span_context().trace_id:032x}"
        shown = CliRunner().invoke(app, ["trace", trace_id])
        unknown = CliRunner().invoke(app, ["trace", "0" * 32])
    finally:
        get_settings.cache_clear()
    assert shown.exit_code == 0, shown.output
    assert "POST /api/leads" in shown.output and "meta send" in shown.output
    assert "another lead" not in shown.output
    assert unknown.exit_code == 1


def test_off_leaves_apps_and_engines_as_they_are(off: None) -> None:
    from sqlalchemy import create_engine

    app = FastAPI()
    tracing.instrument_app(app)
    assert app.user_middleware == []
    engine = create_engine("sqlite://")
    async_engine: Any = type("E", (), {"sync_engine": engine})()
    tracing.instrument_engine(async_engine)
    assert not engine.dispatch.before_cursor_execute  # no listener at all
    tracing._state["enabled"] = True  # the check can fail: on, the listener is there
    try:
        tracing.instrument_engine(async_engine)
    finally:
        tracing._state["enabled"] = False
    assert engine.dispatch.before_cursor_execute


def test_every_alerts_runbook_section_says_how_to_reach_a_trace() -> None:
    import re

    import yaml

    from tests.conftest import ROOT

    runbook = (ROOT / "docs" / "RUNBOOK.md").read_text()
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    alerts = [r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r]
    for alert in alerts:
        section = re.split(r"^## ", runbook.split(f"## {alert}\n", 1)[1], flags=re.M)[0]
        assert "**Trace**" in section, f"{alert}: no way from the alert to a trace"
    assert "## Traces" in runbook
