"""The one place configuration comes from: environment variables prefixed ``AUTODM_``.

Every service reads the same model and uses the part it needs; nothing else in the code
base reads the environment.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTODM_", env_file=".env", extra="ignore")

    environment: str = "local"
    log_level: str = "INFO"
    log_json: bool = True

    # Infrastructure
    kafka_bootstrap: str = "127.0.0.1:19092"
    database_url: SecretStr = SecretStr("postgresql+asyncpg://autodm:autodm@127.0.0.1:15432/autodm")
    db_pool_size: int = 10

    # Meta hosts: the sandbox locally, graph.instagram.com / graph.facebook.com in production.
    instagram_graph_url: str = "http://127.0.0.1:18080"
    instagram_oauth_url: str = "http://127.0.0.1:18080"
    instagram_authorize_url: str = "http://127.0.0.1:18080/oauth/authorize"
    whatsapp_graph_url: str = "http://127.0.0.1:18080"
    graph_api_version: str = "v23.0"
    provider_timeout_s: float = 10.0
    provider_pool_size: int = 8

    # Instagram app credentials (Business Login for Instagram)
    instagram_app_id: str = "sandbox-app"
    instagram_app_secret: SecretStr = SecretStr("sandbox-secret")

    # Keys for tokens at rest (Fernet, url-safe base64, 32 bytes); first one encrypts,
    # every one decrypts, so a key can be rotated without a flag day.
    token_encryption_keys: list[SecretStr] = Field(
        default_factory=lambda: [SecretStr("cmVwbGFjZS1tZS1pbi1wcm9kdWN0aW9uLTMyYnl0ZXM=")]
    )

    # Routing rules (platform facts §1b, §1e)
    instagram_dm_window_hours: int = 24
    private_reply_window_days: int = 7
    wa_link_max_text_chars: int = 500

    # Outbox relay
    outbox_batch_size: int = 500
    outbox_poll_interval_s: float = 0.2
    # How often the relay refreshes autodm_outbox_backlog (one COUNT on a partial index).
    outbox_backlog_interval_s: float = 15.0

    # Operations: how often the API's collector reads consumer lag, retry/DLQ depth and
    # token expiry (a few Kafka requests and two queries per pass, whatever the traffic).
    ops_collector_interval_s: float = 15.0

    # HTTP of each service (/metrics, health; the API's routes). Loopback unless deployed.
    http_host: str = "127.0.0.1"
    api_port: int = 8000
    webhook_ingest_port: int = 8001
    instagram_sender_port: int = 8002
    whatsapp_sender_port: int = 8003
    token_refresher_port: int = 8004
    public_base_url: str = "http://127.0.0.1:8000"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
