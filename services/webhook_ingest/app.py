"""Composition root of webhook_ingest: the signed HTTP endpoints Meta calls, and the
consumers that turn the published items into AutoDM facts and events.

It also reconciles `unknown` Instagram DMs: by their echo (inbound.py) and, when none
comes, by asking the Conversations API (conversations.py).

The consumers live here rather than in the API: they scale with webhook volume, not with
API traffic, and they only record Instagram's facts (contacts, comments) and emit events;
the DM state itself stays the API's (its projection and router consume those events).
"""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from services.webhook_ingest import routes, whatsapp_routes
from services.webhook_ingest.accept import Acceptance
from services.webhook_ingest.body_rules import install_body_limits
from services.webhook_ingest.conversations import ConversationReconciler, ReconcilePolicy
from services.webhook_ingest.handlers import register_handlers
from services.webhook_ingest.settings import WebhookIngestSettings, get_settings
from services.webhook_ingest.topic_erasure import TopicErasure
from shared.db.session import make_engine, make_sessionmaker
from shared.messaging.broker import dead_letter_park, make_broker
from shared.messaging.outbox import OutboxRelay
from shared.messaging.unit_of_work import UnitOfWorkFactory, UnitsOfWork
from shared.platform.crypto import DecryptedTokens, TokenCipher
from shared.platform.logs import configure_logging
from shared.platform.service_http import add_operational_routes, broker_check, broker_lifespan
from shared.platform.tracing import configure_tracing, instrument_app
from shared.providers.graph_http import make_http_client
from shared.providers.instagram import InstagramConversations

SERVICE = "webhook_ingest"


def create_app(settings: WebhookIngestSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    configure_tracing(SERVICE, settings)  # before the broker, engine and clients
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    broker = make_broker(settings, SERVICE)
    relay = OutboxRelay(
        sessions, broker, settings.outbox_batch_size, settings.outbox_poll_interval_s
    )
    # The relay runs here: a unit of work wakes it after a commit that published.
    uow = UnitOfWorkFactory(sessions, relay.wake.set)
    register_handlers(broker, uow, dead_letter_park(broker, SERVICE))
    reconciler, http = _reconciler(settings, uow)
    # Data deletion's Kafka part: truncates consumed records (topic_erasure.py).
    erasure = TopicErasure(settings.kafka_bootstrap, uow, settings.data_deletion_poll_interval_s)
    app = FastAPI(
        title="AutoDM webhook ingest",
        lifespan=broker_lifespan(
            broker,
            background=[relay.run_forever, reconciler.run_forever, erasure.run_forever],
            on_stop=[http.aclose, engine.dispose],
        ),
    )
    acceptance = Acceptance(
        broker, settings.webhook_accept_timeout_s, settings.webhook_retry_after_s
    )
    app.state.deps = routes.IngestDeps(
        broker=broker,
        uow=uow,
        acceptance=acceptance,
        app_secrets=settings.instagram_app_secrets,
        verify_token=settings.webhook_verify_token.get_secret_value(),
        public_base_url=settings.webhook_public_base_url,
        signed_request_max_age=timedelta(seconds=settings.signed_request_max_age_s),
    )
    app.state.broker = broker
    install_body_limits(app, settings)
    app.include_router(routes.router)
    whatsapp_routes.install(app, settings, acceptance)
    # Ready = Kafka answers: webhooks are accepted without PostgreSQL, so a database outage
    # must not take every replica out of the Service (Meta would see errors, §3d).
    instrument_app(app)
    add_operational_routes(app, {"kafka": broker_check(broker)})
    return app


def _reconciler(
    settings: WebhookIngestSettings, uow: UnitsOfWork
) -> tuple[ConversationReconciler, httpx.AsyncClient]:
    """The Conversations API look-up of `unknown` DMs (beside the echo path, inbound.py)."""
    # A small pool: the calls are paced to 2/s per account anyway.
    http = make_http_client(settings.instagram_graph_url, settings.provider_timeout_s, 4)
    reconciler = ConversationReconciler(
        uow,
        InstagramConversations(http, settings.graph_api_version),
        DecryptedTokens(TokenCipher.from_settings(settings)),
        ReconcilePolicy(
            after_s=settings.instagram_reconcile_after_s,
            interval_s=settings.instagram_reconcile_interval_s,
            max_checks=settings.instagram_reconcile_max_checks,
            calls_per_s=settings.instagram_conversations_per_s,
        ),
    )
    return reconciler, http
