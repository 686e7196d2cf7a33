"""Composition root of the Instagram sender."""

from __future__ import annotations

from fastapi import FastAPI

from services.instagram_sender.handlers import register_handlers
from services.instagram_sender.sending import SenderDeps
from shared.broker import make_broker
from shared.crypto import TokenCipher
from shared.db.session import make_engine, make_sessionmaker
from shared.dm_status import publish_status
from shared.events import DmStatusChanged
from shared.logs import configure_logging
from shared.providers.graph_http import make_http_client
from shared.providers.instagram import InstagramClient
from shared.service import add_operational_routes, broker_check, broker_lifespan, database_check
from shared.settings import Settings, get_settings

SERVICE = "instagram_sender"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    engine = make_engine(settings)
    broker = make_broker(settings, SERVICE)
    http = make_http_client(
        settings.instagram_graph_url, settings.provider_timeout_s, settings.provider_pool_size
    )

    async def publish(event: DmStatusChanged) -> None:
        await publish_status(broker, event)

    deps = SenderDeps(
        sessions=make_sessionmaker(engine),
        client=InstagramClient(http, settings.graph_api_version),
        cipher=TokenCipher.from_settings(settings),
        publish=publish,
    )
    register_handlers(broker, deps)
    app = FastAPI(
        title="AutoDM Instagram sender",
        lifespan=broker_lifespan(broker, on_stop=[http.aclose, engine.dispose]),
    )
    app.state.broker = broker
    add_operational_routes(app, {"kafka": broker_check(broker), "database": database_check(engine)})
    return app
