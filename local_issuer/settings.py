"""The local issuer's configuration: environment variables prefixed ``LOCAL_ISSUER_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class IssuerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOCAL_ISSUER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 18090
    # `iss` of every token; AutoDM's AUTODM_JWT_ISSUER must say the same.
    issuer: str = "http://127.0.0.1:18090"
    audience: str = "autodm-api"
    algorithm: Literal["RS256", "ES256"] = "RS256"
    # PEM file of the signing key: kept across restarts when set, else a key per start.
    key_file: Path | None = None
    default_ttl_s: int = 3600
    max_ttl_s: int = 24 * 3600
