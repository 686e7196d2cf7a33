"""The Instagram sender's settings."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr  # noqa: F401

from shared.delivery.settings import SenderSettings


class InstagramSenderSettings(SenderSettings):
    instagram_sender_port: int = 8002
    # A DM is sent on a read of its hold reasons (opted out, the creator writing to the
    # person) at most this old: one read serves many DMs (services/instagram_sender/holds.py).
    hold_read_max_age_s: float = Field(default=0.5, ge=0)


@lru_cache(maxsize=1)
def get_settings() -> InstagramSenderSettings:
    return InstagramSenderSettings()
