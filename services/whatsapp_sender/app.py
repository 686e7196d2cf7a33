"""Composition root of the WhatsApp sender: the Cloud API sender, the status/inbound
webhook consumer, the poller of deferred sends and the housekeeping of its tables."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from services.whatsapp_sender.handlers import register_handlers
from services.whatsapp_sender.housekeeping import whatsapp_sweeps
from services.whatsapp_sender.limits import LimitPolicy
from services.whatsapp_sender.links import WhatsAppDeps
from services.whatsapp_sender.sending import SenderDeps
from services.whatsapp_sender.settings import WhatsAppSenderSettings, get_settings
from shared.contracts.events import DmRequested, DmStatusChanged
from shared.contracts.lifecycle import Provider, Route
from shared.contracts.topics import DM_REQUESTED_WHATSAPP
from shared.db.retention import Sweeper
from shared.db.session import make_engine, make_sessionmaker
from shared.delivery.deferrals import DeferralPoller
from shared.delivery.gate import DeliveryGate
from shared.delivery.status_events import publish_status
from shared.messaging.broker import make_broker, publish_event
from shared.messaging.outbox import OutboxRelay
from shared.platform.body_limits import BodyLimits
from shared.platform.crypto import TokenCipher
from shared.platform.logs import configure_logging
from shared.platform.service_http import (
    add_operational_routes,
    broker_check,
    broker_lifespan,
    database_check,
)
from shared.platform.tracing import configure_tracing, instrument_app
from shared.providers.graph_http import make_http_client
from shared.providers.whatsapp import WhatsAppClient

SERVICE = "whatsapp_sender"


def create_app(settings: WhatsAppSenderSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    configure_tracing(SERVICE, settings)  # before the broker, engine and clients
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    broker = make_broker(settings, SERVICE)
    http = make_http_client(
        settings.whatsapp_graph_url, settings.provider_timeout_s, settings.provider_pool_size
    )

    async def publish(event: DmStatusChanged) -> None:
        await publish_status(broker, event)

    async def request_again(request: DmRequested) -> None:
        key = str(request.payload.account_id or request.creator_id)
        await publish_event(broker, DM_REQUESTED_WHATSAPP, key, request)

    gate = DeliveryGate(sessions, Provider.WHATSAPP, settings)
    # Statuses that waited in the backlog go out through the outbox (statuses.py).
    relay = OutboxRelay(
        sessions, broker, settings.outbox_batch_size, settings.whatsapp_outbox_poll_s
    )
    deps = SenderDeps(
        sessions=sessions,
        gate=gate,
        client=WhatsAppClient(http, settings.graph_api_version),
        cipher=TokenCipher.from_settings(settings),
        publish=publish,
        links=WhatsAppDeps(publish=publish, max_link_text_chars=settings.wa_link_max_text_chars),
        policy=LimitPolicy(
            pair_interval=timedelta(seconds=settings.whatsapp_pair_interval_s),
            window=timedelta(hours=settings.whatsapp_window_hours),
        ),
        max_throttle_retries=settings.whatsapp_max_throttle_retries,
        wake=relay.wake.set,
    )
    register_handlers(broker, deps, request_again)

    async def request_due(request: DmRequested, _: dict[str, str]) -> None:
        await request_again(request)  # a WhatsApp deferral records no delivery headers

    poller = DeferralPoller(
        sessions,
        request_due,
        settings.deferral_poll_s,
        routes=[r for r in Route if r.provider == Provider.WHATSAPP],
        provider=Provider.WHATSAPP,
        idle_poll_s=settings.deferral_idle_poll_s,
    )
    retention = timedelta(hours=settings.whatsapp_status_backlog_retention_hours)
    housekeeping = Sweeper(sessions, whatsapp_sweeps(retention), settings.housekeeping_interval_s)
    app = FastAPI(
        title="AutoDM WhatsApp sender",
        lifespan=broker_lifespan(
            broker,
            # Pauses and breakers are loaded before the first record: a restarted sender
            # never sends for a paused or throttled number.
            on_start=[gate.refresh],
            background=[
                relay.run_forever,
                poller.run_forever,
                gate.run_refresher,
                housekeeping.run_forever,
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
