"""The WhatsApp sender's settings."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr  # noqa: F401

from shared.delivery.settings import SenderSettings


class WhatsAppSenderSettings(SenderSettings):
    wa_link_max_text_chars: int = 500
    whatsapp_max_throttle_retries: int = Field(default=6, ge=0)
    # WhatsApp statuses that never met their send (e.g. of messages another tool sent from
    # the same number) are deleted after this long.
    whatsapp_status_backlog_retention_hours: float = Field(default=168.0, gt=0)
    whatsapp_sender_port: int = 8003
    # The sender's outbox relay is woken by the sender's own writes at once; its poll is a
    # safety net only (every other service's relay polls the same table), so it is slow.
    whatsapp_outbox_poll_s: float = Field(default=5.0, gt=0)


@lru_cache(maxsize=1)
def get_settings() -> WhatsAppSenderSettings:
    return WhatsAppSenderSettings()
