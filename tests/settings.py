"""Every service's settings in one object, for tests that run several services' apps with
one configuration (production gives each process its own class: README, "Configuration")."""

from __future__ import annotations

from functools import lru_cache

from services.api.settings import ApiSettings
from services.instagram_sender.settings import InstagramSenderSettings
from services.token_refresher.settings import TokenRefresherSettings
from services.webhook_ingest.settings import WebhookIngestSettings
from services.whatsapp_sender.settings import WhatsAppSenderSettings


class AllSettings(
    ApiSettings,
    InstagramSenderSettings,
    WhatsAppSenderSettings,
    WebhookIngestSettings,
    TokenRefresherSettings,
):
    """The union of the services' settings classes."""


@lru_cache(maxsize=1)
def get_all_settings() -> AllSettings:
    return AllSettings()
