"""Composition root of the API service: settings, database, broker, relay, routes."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from services.api import admin_dlq, instagram_connect, routes, whatsapp_connect
from services.api.auth import TokenVerifier
from services.api.cors import ApiCors
from services.api.dlq_size import DlqSize
from services.api.handlers import register_handlers
from services.api.housekeeping import Retention, api_sweeps
from services.api.idempotency_keys import KeyPolicy
from services.api.limits import install_body_limits
from services.api.outage_answers import install_outage_answers
from services.api.problems import install_problem_handlers
from services.api.rate_limits import install_rate_limits
from services.api.router import RouterConfig
from services.api.status_stream import StreamConfig
from services.api.web.install import install_web
from services.api.web.security import StrictTransport
from shared.broker import dead_letter_park, make_broker
from shared.crypto import TokenCipher
from shared.db.retention import Sweeper
from shared.db.session import make_engine, make_sessionmaker
from shared.dlq import register_dlq_indexer
from shared.logs import configure_logging
from shared.ops_collector import OpsCollector
from shared.outbox import OutboxRelay
from shared.providers.graph_http import make_http_client
from shared.providers.whatsapp import WhatsAppClient
from shared.routing import RoutingRules
from shared.service import add_operational_routes, broker_check, broker_lifespan, database_check
from shared.settings import Settings, get_settings
from shared.stuck_dms import StuckDmWatchdog
from shared.tracing import configure_tracing, instrument_app

SERVICE = "api"


def create_app(settings: Settings | None = None) -> FastAPI:
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
    )
    collector = OpsCollector(
        settings.kafka_bootstrap,
        sessions,
        settings.ops_collector_interval_s,
        timedelta(days=settings.token_unrefreshed_warning_days),
    )
    watchdog = StuckDmWatchdog(
        sessions, timedelta(seconds=settings.stuck_dm_after_s), settings.stuck_dm_interval_s
    )
    park = dead_letter_park(broker, SERVICE)
    retention = Retention(
        idempotency_keys=timedelta(hours=settings.idempotency_ttl_hours),
        oauth_states=timedelta(seconds=settings.oauth_state_ttl_s),
        published_outbox=timedelta(hours=settings.outbox_retention_hours),
        # A token is refused as expired after its lifetime (plus the clock's minute of grace).
        form_tokens=timedelta(seconds=settings.lead_form_token_ttl_s + 60),
        api_rate_counts=timedelta(seconds=settings.api_rate_limit_window_s),
    )
    housekeeping = Sweeper(sessions, api_sweeps(retention), settings.housekeeping_interval_s)
    register_handlers(
        broker,
        sessions,
        relay,
        RouterConfig(rules=_rules(settings)),
        park,
        settings.lead_ingress_producers,
    )
    register_dlq_indexer(broker, sessions)

    app = FastAPI(
        title="AutoDM API",
        version="1.0.0",
        description="Leads in, DMs out: accept leads and follow each DM to its end.",
        # /docs is served by services/api/web/api_docs.py (local assets, the pages' CSP);
        # FastAPI's own pages load theirs from a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.api_docs_enabled else None,
        lifespan=broker_lifespan(
            broker,
            background=[
                relay.run_forever,
                collector.run_forever,
                housekeeping.run_forever,
                watchdog.run_forever,
            ],
            on_stop=[engine.dispose],
        ),
    )
    app.state.deps = routes.ApiDeps(
        sessions=sessions,
        relay=relay,
        verifier=TokenVerifier.from_settings(settings),
        rules=_rules(settings),
        keys=KeyPolicy(
            in_flight=timedelta(seconds=settings.idempotency_in_flight_s),
            ttl=timedelta(hours=settings.idempotency_ttl_hours),
        ),
        dlq=DlqSize(settings.kafka_bootstrap),
        stream=StreamConfig(
            settings.status_stream_poll_s,
            settings.status_stream_heartbeat_s,
            settings.status_stream_max_s,
        ),
    )
    app.state.broker = broker
    app.state.stuck_dms = watchdog  # the admin overview lists what it finds
    install_problem_handlers(app)
    install_body_limits(app, settings)
    install_rate_limits(app, settings, engine)
    if settings.cors_allowed_origins:
        # Outside the body limit: a preflight is answered before anything else runs.
        app.add_middleware(
            ApiCors, origins=settings.cors_allowed_origins, max_age_s=settings.cors_max_age_s
        )
    app.include_router(routes.router)
    app.include_router(admin_dlq.router)
    app.state.instagram = instagram_connect.make_deps(settings, sessions, relay)
    app.include_router(instagram_connect.router)
    app.state.whatsapp_cipher = TokenCipher.from_settings(settings)
    # Asks Meta whether a token may use a number before it is connected.
    app.state.whatsapp_graph = WhatsAppClient(
        make_http_client(
            settings.whatsapp_graph_url, settings.provider_timeout_s, settings.provider_pool_size
        ),
        settings.graph_api_version,
    )
    app.include_router(whatsapp_connect.router)
    install_web(app, settings, app.state.deps)
    install_outage_answers(app)
    if settings.hsts_max_age_s:  # on every answer: pages, /api and /docs
        app.add_middleware(StrictTransport, max_age_s=settings.hsts_max_age_s)
    instrument_app(app)
    add_operational_routes(app, {"kafka": broker_check(broker), "database": database_check(engine)})
    return app


def _rules(settings: Settings) -> RoutingRules:
    return RoutingRules(
        dm_window=timedelta(hours=settings.instagram_dm_window_hours),
        private_reply_window=timedelta(days=settings.private_reply_window_days),
        whatsapp_window=timedelta(hours=settings.whatsapp_window_hours),
        form_recipient_cooldown=timedelta(hours=settings.lead_form_recipient_cooldown_hours),
    )
