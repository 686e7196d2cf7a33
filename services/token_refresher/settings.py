"""The token refresher's settings (platform facts §2)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr  # noqa: F401

from shared.platform.settings import Settings


class TokenRefresherSettings(Settings):
    # Token refresher (platform facts §2: refresh >= 24 h old tokens before the 60 days end)
    token_refresh_interval_s: float = 3600.0
    token_refresh_window_days: float = 15.0
    token_refresh_batch_size: int = 50
    # A claimed account is left alone by other replicas this long (longer than one call).
    token_refresh_lease_s: float = 300.0
    token_refresher_port: int = 8004


@lru_cache(maxsize=1)
def get_settings() -> TokenRefresherSettings:
    return TokenRefresherSettings()
