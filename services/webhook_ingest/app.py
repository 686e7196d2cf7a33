"""Composition root of webhook_ingest: the signed HTTP endpoints Meta calls, and the
consumers that turn the published items into AutoDM facts and events.

The consumers live here rather than in the API: they scale with webhook volume, not with
API traffic, and they only record Instagram's facts (contacts, comments) and emit events;
the DM state itself stays the API's (its projection and router consume those events).
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from services.webhook_ingest import routes, whatsapp_routes
from services.webhook_ingest.handlers import register_handlers
from services.webhook_ingest.topic_erasure import TopicErasure
from shared.broker import dead_letter_park, make_broker
from shared.db.session import make_engine, make_sessionmaker
from shared.logs import configure_logging
from shared.outbox import OutboxRelay
from shared.service import add_operational_routes, broker_check, broker_lifespan, database_check
from shared.settings import Settings, get_settings

SERVICE = "webhook_ingest"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    broker = make_broker(settings, SERVICE)
    relay = OutboxRelay(
        sessions, broker, settings.outbox_batch_size, settings.outbox_poll_interval_s
    )
    register_handlers(broker, sessions, relay, dead_letter_park(broker, SERVICE))
    # Data deletion's Kafka part: truncates consumed records (topic_erasure.py).
    erasure = TopicErasure(
        settings.kafka_bootstrap, sessions, settings.data_deletion_poll_interval_s
    )
    app = FastAPI(
        title="AutoDM webhook ingest",
        lifespan=broker_lifespan(
            broker, background=[relay.run_forever, erasure.run_forever], on_stop=[engine.dispose]
        ),
    )
    app.state.deps = routes.IngestDeps(
        broker=broker,
        sessions=sessions,
        reads=make_sessionmaker(engine, autocommit=True),
        relay=relay,
        app_secrets=settings.instagram_app_secrets,
        verify_token=settings.webhook_verify_token.get_secret_value(),
        public_base_url=settings.webhook_public_base_url,
        signed_request_max_age=timedelta(seconds=settings.signed_request_max_age_s),
    )
    app.state.broker = broker
    app.include_router(routes.router)
    whatsapp_routes.install(app, settings, sessions)
    add_operational_routes(app, {"kafka": broker_check(broker), "database": database_check(engine)})
    return app
