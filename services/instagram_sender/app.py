"""Composition root of the Instagram sender."""

from __future__ import annotations

from fastapi import FastAPI

from services.instagram_sender.handlers import RETRY_GROUP, register_handlers, retry_handler
from services.instagram_sender.sending import RetryPolicy, SenderDeps
from shared.body_limits import BodyLimits
from shared.broker import dead_letter_park, make_broker
from shared.crypto import DecryptedTokens, TokenCipher
from shared.db.session import make_engine, make_sessionmaker
from shared.delivery import DeliveryGate
from shared.dm_status import publish_status
from shared.events import DmStatusChanged
from shared.lifecycle import Provider
from shared.logs import configure_logging
from shared.providers.graph_http import make_http_client
from shared.providers.instagram import InstagramClient
from shared.retries import RetryPublisher
from shared.retry_consumer import RetryConsumer
from shared.service import add_operational_routes, broker_check, broker_lifespan, database_check
from shared.settings import Settings, get_settings
from shared.topics import DM_RETRY_INSTAGRAM
from shared.tracing import configure_tracing, instrument_app

SERVICE = "instagram_sender"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    configure_tracing(SERVICE, settings)  # before the broker, engine and clients
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    broker = make_broker(settings, SERVICE)
    http = make_http_client(
        settings.instagram_graph_url, settings.provider_timeout_s, settings.provider_pool_size
    )

    async def publish(event: DmStatusChanged) -> None:
        await publish_status(broker, event)

    gate = DeliveryGate(sessions, Provider.INSTAGRAM, settings)
    deps = SenderDeps(
        # Every write of the sender is one statement (claim, outcome, reconnect flag).
        sessions=make_sessionmaker(engine, autocommit=True),
        client=InstagramClient(http, settings.graph_api_version),
        tokens=DecryptedTokens(TokenCipher.from_settings(settings)),
        publish=publish,
        gate=gate,
        retry=RetryPublisher(broker.publish, DM_RETRY_INSTAGRAM, Provider.INSTAGRAM),
        policy=RetryPolicy(
            max_attempts=settings.delivery_max_attempts,
            base_delay_s=settings.retry_base_delay_s,
            max_delay_s=settings.retry_max_delay_s,
            max_inline_wait_s=settings.max_inline_wait_s,
        ),
        concurrency=settings.provider_pool_size,
    )
    register_handlers(broker, deps, dead_letter_park(broker, SERVICE))
    retries = RetryConsumer(
        bootstrap=settings.kafka_bootstrap,
        topic=DM_RETRY_INSTAGRAM,
        group_id=RETRY_GROUP,
        handle=retry_handler(deps),
        park=dead_letter_park(broker, f"{SERVICE}-retry"),
        provider=Provider.INSTAGRAM,
        max_held=settings.retry_max_held,
    )
    app = FastAPI(
        title="AutoDM Instagram sender",
        lifespan=broker_lifespan(
            broker,
            # Throttles and pauses are loaded before the first record is handled, so a
            # restarted sender never sends to an account before its signalled time.
            on_start=[gate.refresh],
            background=[gate.run_refresher, retries.run_forever],
            on_stop=[http.aclose, engine.dispose],
        ),
    )
    app.state.broker = broker
    # No route here reads a body: the small limit keeps any body from being buffered.
    app.add_middleware(BodyLimits, default_max_bytes=settings.internal_max_body_bytes)
    instrument_app(app)
    add_operational_routes(app, {"kafka": broker_check(broker), "database": database_check(engine)})
    return app
