"""Composition root of the token refresher: a scheduled refresh round, and the outbox relay
that publishes the `skipped` statuses of DMs waiting on an account that needs reconnecting."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from fastapi import FastAPI

from services.token_refresher.refreshing import RefresherDeps, RefreshPolicy, refresh_due
from services.token_refresher.settings import TokenRefresherSettings, get_settings
from shared.db.session import make_engine, make_sessionmaker
from shared.messaging.broker import make_broker
from shared.messaging.outbox import OutboxRelay
from shared.messaging.unit_of_work import UnitOfWorkFactory, UnitsOfWork
from shared.platform.body_limits import BodyLimits
from shared.platform.crypto import TokenCipher
from shared.platform.logs import configure_logging, get_logger
from shared.platform.outage_log import OutageLog
from shared.platform.service_http import (
    add_operational_routes,
    broker_check,
    broker_lifespan,
    database_check,
)
from shared.platform.tracing import configure_tracing, instrument_app
from shared.providers.graph_http import make_http_client
from shared.providers.instagram_auth import AppCredentials, InstagramAuthClient

SERVICE = "token_refresher"
log = get_logger(__name__)


def make_auth_client(
    settings: TokenRefresherSettings,
) -> tuple[InstagramAuthClient, list[httpx.AsyncClient]]:
    """The OAuth/token client and the HTTP clients to close with it."""
    timeout, pool = settings.provider_timeout_s, settings.provider_pool_size
    graph = make_http_client(settings.instagram_graph_url, timeout, pool)
    oauth = make_http_client(settings.instagram_oauth_url, timeout, pool)
    credentials = AppCredentials(
        app_id=settings.instagram_app_id,
        app_secret=settings.instagram_app_secret.get_secret_value(),
        redirect_uri=settings.oauth_redirect_uri,
    )
    client = InstagramAuthClient(graph, oauth, settings.graph_api_version, credentials)
    return client, [graph, oauth]


def make_deps(
    settings: TokenRefresherSettings, uow: UnitsOfWork
) -> tuple[RefresherDeps, list[httpx.AsyncClient]]:
    client, http = make_auth_client(settings)
    policy = RefreshPolicy(
        window=timedelta(days=settings.token_refresh_window_days),
        lease=timedelta(seconds=settings.token_refresh_lease_s),
        batch_size=settings.token_refresh_batch_size,
    )
    deps = RefresherDeps(
        uow=uow, client=client, cipher=TokenCipher.from_settings(settings), policy=policy
    )
    return deps, http


def create_app(settings: TokenRefresherSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    configure_tracing(SERVICE, settings)  # before the broker, engine and clients
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    broker = make_broker(settings, SERVICE)
    relay = OutboxRelay(
        sessions, broker, settings.outbox_batch_size, settings.outbox_poll_interval_s
    )
    # Refreshes, expiries and failures all write events: their commits wake the relay.
    deps, http = make_deps(settings, UnitOfWorkFactory(sessions, relay.wake.set))

    outages = OutageLog("token_refresh")

    async def schedule() -> None:
        while True:
            try:
                await refresh_due(deps)
            except Exception as exc:
                outages.failed(exc, "token refresh round failed; next round retries")
            else:
                outages.succeeded()
            await asyncio.sleep(settings.token_refresh_interval_s)

    app = FastAPI(
        title="AutoDM token refresher",
        lifespan=broker_lifespan(
            broker,
            background=[relay.run_forever, schedule],
            on_stop=[*(c.aclose for c in http), engine.dispose],
        ),
    )
    app.state.broker = broker
    app.state.deps = deps
    # No route here reads a body: the small limit keeps any body from being buffered.
    app.add_middleware(BodyLimits, default_max_bytes=settings.internal_max_body_bytes)
    instrument_app(app)
    add_operational_routes(app, {"kafka": broker_check(broker), "database": database_check(engine)})
    return app
