"""Composition root of the API's event workers: lead routing, the status projection,
Comment to DM, the lead ingress, the DLQ index, the outbox relay, the ops collector, the
stuck-DM watchdog and housekeeping. HTTP here is only /metrics, /healthz and /readyz."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.service_layer.lead_routing import RouterConfig
from services.api.service_layer.routing_rules import routing_rules
from services.api.service_layer.stuck_dms import StuckDmWatchdog
from services.api.settings import ApiSettings, get_settings
from services.api.workers.housekeeping import Retention, api_sweeps
from services.api.workers.ops_collector import OpsCollector
from services.api.workers.subscribers import register_handlers
from shared.db.retention import Sweeper
from shared.db.session import driver_dsn, make_engine, make_sessionmaker
from shared.messaging.broker import dead_letter_park, make_broker
from shared.messaging.dlq_operations import register_dlq_indexer
from shared.messaging.outbox import OutboxRelay
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.logs import configure_logging
from shared.platform.service_http import (
    add_operational_routes,
    broker_check,
    broker_lifespan,
    database_check,
)
from shared.platform.tracing import configure_tracing, instrument_app

SERVICE = "api_workers"


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    configure_tracing(SERVICE, settings)  # before the broker, engine and clients
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    broker = make_broker(settings, SERVICE)
    relay = OutboxRelay(
        sessions,
        broker,
        settings.outbox_batch_size,
        settings.outbox_poll_interval_s,
        settings.outbox_backlog_interval_s,
        listen_dsn=driver_dsn(settings),  # the HTTP process's writes NOTIFY it
    )
    register_handlers(
        broker,
        UnitOfWorkFactory(sessions, relay.wake.set),
        RouterConfig(rules=routing_rules(settings)),
        dead_letter_park(broker, SERVICE),
        settings.lead_ingress_producers,
    )
    register_dlq_indexer(broker, sessions)
    background = [
        relay.run_forever,
        relay.listen_forever,
        _collector(settings, sessions).run_forever,
        Sweeper(
            sessions, api_sweeps(_retention(settings)), settings.housekeeping_interval_s
        ).run_forever,
        StuckDmWatchdog(
            sessions, timedelta(seconds=settings.stuck_dm_after_s), settings.stuck_dm_interval_s
        ).run_forever,
    ]
    app = FastAPI(
        title="AutoDM API workers",
        lifespan=broker_lifespan(broker, background=background, on_stop=[engine.dispose]),
    )
    app.state.broker = broker
    instrument_app(app)
    add_operational_routes(app, {"kafka": broker_check(broker), "database": database_check(engine)})
    return app


def _collector(settings: ApiSettings, sessions: async_sessionmaker[AsyncSession]) -> OpsCollector:
    return OpsCollector(
        settings.kafka_bootstrap,
        sessions,
        settings.ops_collector_interval_s,
        timedelta(days=settings.token_unrefreshed_warning_days),
    )


def _retention(settings: ApiSettings) -> Retention:
    return Retention(
        idempotency_keys=timedelta(hours=settings.idempotency_ttl_hours),
        oauth_states=timedelta(seconds=settings.oauth_state_ttl_s),
        published_outbox=timedelta(hours=settings.outbox_retention_hours),
        # A token is refused as expired after its lifetime (plus the clock's minute of grace).
        form_tokens=timedelta(seconds=settings.lead_form_token_ttl_s + 60),
        api_rate_counts=timedelta(seconds=settings.api_rate_limit_window_s),
    )
