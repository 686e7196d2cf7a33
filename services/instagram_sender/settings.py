"""The Instagram sender's settings."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr  # noqa: F401

from shared.delivery.settings import SenderSettings


class InstagramSenderSettings(SenderSettings):
    instagram_sender_port: int = 8002


@lru_cache(maxsize=1)
def get_settings() -> InstagramSenderSettings:
    return InstagramSenderSettings()
