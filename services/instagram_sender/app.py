"""Composition root of the Instagram sender."""

from __future__ import annotations

from fastapi import FastAPI

from services.instagram_sender.handlers import register_handlers
from services.instagram_sender.sending import RetryPolicy, SenderDeps
from services.instagram_sender.settings import InstagramSenderSettings, get_settings
from shared.contracts.events import DmRequested, DmStatusChanged
from shared.contracts.lifecycle import Provider, Route
from shared.contracts.topics import DM_REQUESTED_INSTAGRAM
from shared.db.session import make_engine, make_sessionmaker
from shared.delivery.deferrals import DeferralPoller
from shared.delivery.gate import DeliveryGate
from shared.delivery.retry_topic_drain import drain_until_gone
from shared.delivery.status_events import publish_status
from shared.messaging.broker import dead_letter_park, event_headers, make_broker
from shared.platform.body_limits import BodyLimits
from shared.platform.crypto import DecryptedTokens, TokenCipher
from shared.platform.logs import configure_logging
from shared.platform.service_http import (
    add_operational_routes,
    broker_check,
    broker_lifespan,
    database_check,
)
from shared.platform.tracing import configure_tracing, instrument_app
from shared.providers.graph_http import make_http_client
from shared.providers.instagram import InstagramClient

SERVICE = "instagram_sender"


def create_app(settings: InstagramSenderSettings | None = None) -> FastAPI:
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
        policy=RetryPolicy(
            max_attempts=settings.delivery_max_attempts,
            base_delay_s=settings.retry_base_delay_s,
            max_delay_s=settings.retry_max_delay_s,
            max_inline_wait_s=settings.max_inline_wait_s,
        ),
        concurrency=settings.provider_pool_size,
        hold_max_age_s=settings.hold_read_max_age_s,
    )
    register_handlers(broker, deps, dead_letter_park(broker, SERVICE))

    async def request_again(request: DmRequested, headers: dict[str, str]) -> None:
        # Keyed by account like every request: the account's DMs stay on one partition.
        await broker.publish(
            request.model_dump_json().encode(),
            DM_REQUESTED_INSTAGRAM,
            key=str(request.payload.account_id).encode(),
            headers={**event_headers(request), **headers},
            correlation_id=request.correlation_id,
        )

    async def drain_retired_retry_topic() -> None:
        # Upgrade: DMs an earlier version deferred on the retired retry topic.
        await drain_until_gone(settings.kafka_bootstrap, sessions)

    deferred = DeferralPoller(
        sessions,
        request_again,
        settings.deferral_poll_s,
        routes=[r for r in Route if r.provider == Provider.INSTAGRAM],
        provider=Provider.INSTAGRAM,
        idle_poll_s=settings.deferral_idle_poll_s,
    )
    app = FastAPI(
        title="AutoDM Instagram sender",
        lifespan=broker_lifespan(
            broker,
            # Throttles and pauses are loaded before the first record is handled, so a
            # restarted sender never sends to an account before its signalled time.
            on_start=[gate.refresh],
            background=[
                gate.run_refresher,
                deferred.run_forever,
                drain_retired_retry_topic,
            ],
            on_stop=[http.aclose, engine.dispose],
        ),
    )
    app.state.broker = broker
    # No route here reads a body: the small limit keeps any body from being buffered.
    app.add_middleware(BodyLimits, default_max_bytes=settings.internal_max_body_bytes)
    instrument_app(app)
    add_operational_routes(app, {"kafka": broker_check(broker), "database": database_check(engine)})
    return app
