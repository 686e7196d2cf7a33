"""Configuration from environment variables prefixed ``AUTODM_``: what every process shares.

Each service has its own subclass with what only it reads (services/<service>/settings.py;
the senders' common part in shared/delivery/settings.py); nothing else in the code base
reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Environments where the built-in development secrets (the sandbox's) are acceptable.
DEVELOPMENT_ENVIRONMENTS = frozenset({"local", "test"})


class Settings(BaseSettings):
    """What every AutoDM process reads: infrastructure, Meta's hosts and app, logs, HTTP."""

    model_config = SettingsConfigDict(env_prefix="AUTODM_", env_file=".env", extra="ignore")

    environment: str = "local"
    log_level: str = "INFO"
    log_json: bool = True
    # Tracing (shared/platform/tracing.py), off by default: on when an exporter is named. The
    # OTEL_* names are OpenTelemetry's standard ones (the OTLP exporter reads its own
    # OTEL_EXPORTER_OTLP_* endpoint/headers); AUTODM_TRACE_DIR writes JSON lines for
    # `autodm trace` (make run: no network needed).
    otel_traces_exporter: str = Field(default="none", validation_alias="OTEL_TRACES_EXPORTER")
    otel_sdk_disabled: bool = Field(default=False, validation_alias="OTEL_SDK_DISABLED")
    otel_traces_sampler: str = Field(
        default="parentbased_always_on", validation_alias="OTEL_TRACES_SAMPLER"
    )
    otel_traces_sampler_arg: str = Field(default="", validation_alias="OTEL_TRACES_SAMPLER_ARG")
    trace_dir: str = ""
    # Infrastructure
    kafka_bootstrap: str = "127.0.0.1:19092"
    # Replicas of each registry topic and the in-sync replicas a write (acks=all) needs:
    # 1/1 for the one local broker of `make run`/`make test`; a 3-broker cluster (production,
    # `make drills`) uses 3/2 so one broker can die without refusing writes.
    # AUTODM_DATABASE_URL may name several hosts for a primary and its standby:
    # `...@/autodm?host=h1:5432&host=h2:5432&target_session_attrs=read-write` (asyncpg
    # connects to the first one that accepts writes, so it follows a promotion).
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_min_insync_replicas: int = Field(default=1, ge=1)
    # Handled records' offsets are committed together at most this often per consumer
    # (shared/messaging/offset_commits.py): a crash redelivers up to this much, which the
    # idempotent consumers absorb. 0: one commit after each handler (batch or record).
    kafka_commit_interval_ms: int = Field(default=1000, ge=0)
    # A batch consumer that got a part-filled batch waits this long for more before handling
    # it (shared/messaging/batch_polling.py): fewer transactions and fetches per record at
    # moderate rates, for this much latency per batched hop (docs/BENCHMARKS.md: -9 % CPU
    # per DM flat out with 10). 0: handle what came at once.
    kafka_batch_linger_ms: int = Field(default=10, ge=0, le=1000)
    database_url: SecretStr = SecretStr("postgresql+asyncpg://autodm:autodm@127.0.0.1:15432/autodm")
    db_pool_size: int = 10
    # How long work waits for a pooled connection before it is an outage (the API answers
    # 503 with Retry-After): under overload a client hears "later" in seconds instead of
    # timing out on a request queued behind the pool (SQLAlchemy's default is 30 s).
    db_pool_timeout_s: float = Field(default=5.0, gt=0)
    # Meta hosts: the sandbox locally, graph.instagram.com / graph.facebook.com in production.
    instagram_graph_url: str = "http://127.0.0.1:18080"
    instagram_oauth_url: str = "http://127.0.0.1:18080"
    whatsapp_graph_url: str = "http://127.0.0.1:18080"
    graph_api_version: str = "v23.0"
    provider_timeout_s: float = 10.0
    provider_pool_size: int = 8
    # Instagram app credentials (Business Login for Instagram). The defaults are the local
    # Meta sandbox's, so `make run` works without configuration.
    instagram_app_id: str = "990602627938098"
    instagram_app_secret: SecretStr = SecretStr("sandbox-app-secret")
    # Rotation: webhooks and signed requests signed with this one are accepted too, so the
    # app secret can be reset in the App Dashboard without rejecting in-flight retries.
    instagram_app_secret_previous: SecretStr | None = None
    # Keys for tokens at rest (Fernet, url-safe base64, 32 bytes); first one encrypts,
    # every one decrypts, so a key can be rotated without a flag day.
    token_encryption_keys: list[SecretStr] = Field(
        default_factory=lambda: [SecretStr("cmVwbGFjZS1tZS1pbi1wcm9kdWN0aW9uLTMyYnl0ZXM=")]
    )
    # WhatsApp Cloud API (platform facts §4). The customer-service window; how often due
    # deferred sends are re-requested; how many throttling answers in a row a DM waits out
    # before it fails. The daily tier is per number (whatsapp_numbers.daily_limit).
    whatsapp_window_hours: int = 24
    # Delivery guarantees (docs/RELIABILITY.md). Pacing stays below Meta's limits
    # (platform facts §1h, §4d): Instagram 100 sends/s and 750 private replies/h per
    # account; WhatsApp 80 msg/s per number and 1 msg per 6 s per recipient.
    instagram_send_per_s: float = Field(default=50.0, gt=0, le=100)
    instagram_private_replies_per_h: float = Field(default=600.0, gt=0, le=750)
    whatsapp_send_per_s: float = Field(default=60.0, gt=0, le=80)
    whatsapp_pair_interval_s: float = Field(default=6.0, ge=6.0)
    # A handler failing because PostgreSQL or Kafka is unreachable is retried this long
    # (holding its partition, as everything on it needs the same dependency) before the
    # record is parked in the DLQ with reason `outage` (shared.platform.outages).
    outage_retry_s: float = Field(default=60.0, ge=0)
    # Outbox relay
    outbox_batch_size: int = 500
    outbox_poll_interval_s: float = 0.2
    # HTTP of each service (/metrics, health; the API's routes). Loopback unless deployed.
    http_host: str = "127.0.0.1"
    # Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client: behind
    # an ingress, set its addresses, or every visitor shares the ingress's IP and with it
    # the lead form's per-IP limit. Empty (the default): no proxy is trusted, so nothing on
    # the host can name its own client address (docs/WEB.md, "Proxy trust").
    trusted_proxies: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    # Services whose HTTP face is only /metrics, /healthz and /readyz (no route reads a body).
    internal_max_body_bytes: int = Field(default=16 * 1024, ge=1024)
    # How often each service deletes the rows it owns that can no longer matter
    # (expired idempotency keys, published outbox rows, ...: shared/db/retention.py).
    housekeeping_interval_s: float = Field(default=60.0, gt=0)

    # Business Login: the redirect URI registered in the App Dashboard; empty means
    # `<public_base_url>/api/instagram/callback`.
    instagram_redirect_uri: str = ""

    @property
    def oauth_redirect_uri(self) -> str:
        return self.instagram_redirect_uri or f"{self.public_base_url}/api/instagram/callback"

    @property
    def instagram_app_secrets(self) -> list[str]:
        """Every secret a Meta signature may use: the current one first, then the old one."""
        previous = self.instagram_app_secret_previous
        return [
            self.instagram_app_secret.get_secret_value(),
            *([previous.get_secret_value()] if previous else []),
        ]

    @model_validator(mode="after")
    def _no_development_secrets_outside_development(self) -> Self:
        """The defaults are the local sandbox's secrets, so `make run` needs no setup; in any
        other environment each of them (in this process's settings) must have been replaced."""
        if self.environment in DEVELOPMENT_ENVIRONMENTS:
            return self
        left = [name for name in _secret_fields(type(self)) if _is_default(self, name)]
        if left:
            raise ValueError(f"set these secrets for environment {self.environment!r}: {left}")
        return self


def _secret_fields(cls: type[Settings]) -> list[str]:
    return [
        name
        for name, field in cls.model_fields.items()
        if "SecretStr" in str(field.annotation) and (field.default or field.default_factory)
    ]


def _is_default(settings: Settings, name: str) -> bool:
    field = type(settings).model_fields[name]
    default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
    return bool(getattr(settings, name) == default)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The shared part alone (the operator CLI, scripts); services use their own class."""
    return Settings()
