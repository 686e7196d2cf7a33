"""Composition root of the API's HTTP process: settings, database, routes and pages.

Its event workers run in a process of their own (services/api/workers/app.py)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from services.api.http.auth import TokenVerifier
from services.api.http.body_limits import install_body_limits
from services.api.http.cors import ApiCors
from services.api.http.deps import ApiDeps
from services.api.http.dlq_depth import DlqSize
from services.api.http.outage_answers import install_outage_answers
from services.api.http.problems import install_problem_handlers
from services.api.http.rate_limits import install_rate_limits
from services.api.http.routes import admin, dms, leads, suppressions
from services.api.http.routes import dead_letters as admin_dlq
from services.api.http.routes import funnel as funnel_routes
from services.api.http.routes import instagram as instagram_connect
from services.api.http.routes import settings as creator_settings
from services.api.http.routes import whatsapp as whatsapp_connect
from services.api.http.status_stream import StreamConfig
from services.api.http.web.install import install_web
from services.api.http.web.security import StrictTransport
from services.api.service_layer.idempotency_keys import KeyPolicy
from services.api.service_layer.routing_rules import routing_rules
from services.api.settings import ApiSettings, get_settings
from shared.db.session import make_engine, make_sessionmaker
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.crypto import TokenCipher
from shared.platform.logs import configure_logging
from shared.platform.service_http import (
    add_operational_routes,
    broker_lifespan,
    database_check,
)
from shared.platform.tracing import configure_tracing, instrument_app
from shared.providers.graph_http import make_http_client
from shared.providers.whatsapp import WhatsAppClient

SERVICE = "api"


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    configure_tracing(SERVICE, settings)  # before the broker, engine and clients
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    # The outbox relay runs in the workers process (services/api/workers/app.py); a write
    # here wakes it with NOTIFY in its transaction, delivered once it commits.
    uow = UnitOfWorkFactory(sessions, notify=True)

    app = FastAPI(
        title="AutoDM API",
        version="1.0.0",
        description="Leads in, DMs out: accept leads and follow each DM to its end.",
        # /docs is served by services/api/http/web/api_docs.py (local assets, the pages' CSP);
        # FastAPI's own pages load theirs from a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.api_docs_enabled else None,
        lifespan=broker_lifespan(None, on_stop=[engine.dispose]),
    )
    app.state.deps = ApiDeps(
        sessions=sessions,
        uow=uow,
        verifier=TokenVerifier.from_settings(settings),
        rules=routing_rules(settings),
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
    app.state.stuck_after = timedelta(seconds=settings.stuck_dm_after_s)  # admin overview
    install_problem_handlers(app)
    install_body_limits(app, settings)
    install_rate_limits(app, settings, engine)
    if settings.cors_allowed_origins:
        # Outside the body limit: a preflight is answered before anything else runs.
        app.add_middleware(
            ApiCors, origins=settings.cors_allowed_origins, max_age_s=settings.cors_max_age_s
        )
    for resource in (leads, dms, admin, creator_settings):
        app.include_router(resource.router)
    app.include_router(funnel_routes.router)
    app.include_router(admin_dlq.router)
    app.include_router(suppressions.router)
    app.state.instagram = instagram_connect.make_deps(settings, uow)
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
    add_operational_routes(app, {"database": database_check(engine)})
    return app
