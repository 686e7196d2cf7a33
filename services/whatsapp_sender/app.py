"""Composition root of the WhatsApp sender."""

from __future__ import annotations

from fastapi import FastAPI

from services.whatsapp_sender.handlers import register_handlers
from services.whatsapp_sender.links import WhatsAppDeps
from shared.broker import make_broker
from shared.dm_status import publish_status
from shared.events import DmStatusChanged
from shared.logs import configure_logging
from shared.service import add_operational_routes, broker_check, broker_lifespan
from shared.settings import Settings, get_settings

SERVICE = "whatsapp_sender"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    broker = make_broker(settings, SERVICE)

    async def publish(event: DmStatusChanged) -> None:
        await publish_status(broker, event)

    register_handlers(
        broker, WhatsAppDeps(publish=publish, max_link_text_chars=settings.wa_link_max_text_chars)
    )
    app = FastAPI(title="AutoDM WhatsApp sender", lifespan=broker_lifespan(broker))
    app.state.broker = broker
    add_operational_routes(app, {"kafka": broker_check(broker)})
    return app
