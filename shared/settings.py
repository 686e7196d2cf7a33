"""The one place configuration comes from: environment variables prefixed ``AUTODM_``.

Every service reads the same model and uses the part it needs; nothing else in the code
base reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Environments where the built-in development secrets (the sandbox's) are acceptable.
DEVELOPMENT_ENVIRONMENTS = frozenset({"local", "test"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTODM_", env_file=".env", extra="ignore")

    environment: str = "local"
    log_level: str = "INFO"
    log_json: bool = True

    # Infrastructure
    kafka_bootstrap: str = "127.0.0.1:19092"
    database_url: SecretStr = SecretStr("postgresql+asyncpg://autodm:autodm@127.0.0.1:15432/autodm")
    db_pool_size: int = 10
    # Replicas of each registry topic and the in-sync replicas a write (acks=all) needs:
    # 1/1 for the one local broker of `make run`/`make test`; a 3-broker cluster (production,
    # `make drills`) uses 3/2 so one broker can die without refusing writes.
    # AUTODM_DATABASE_URL may name several hosts for a primary and its standby:
    # `...@/autodm?host=h1:5432&host=h2:5432&target_session_attrs=read-write` (asyncpg
    # connects to the first one that accepts writes, so it follows a promotion).
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_min_insync_replicas: int = Field(default=1, ge=1)

    # Meta hosts: the sandbox locally, graph.instagram.com / graph.facebook.com in production.
    instagram_graph_url: str = "http://127.0.0.1:18080"
    instagram_oauth_url: str = "http://127.0.0.1:18080"
    instagram_authorize_url: str = "http://127.0.0.1:18080/oauth/authorize"
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
    # Business Login: the redirect URI registered in the App Dashboard; empty means
    # `<public_base_url>/api/instagram/callback`.
    instagram_redirect_uri: str = ""
    instagram_webhook_fields: str = "messages,messaging_seen,messaging_referral,comments"
    # OAuth `state`: HMAC key, lifetime; each state is accepted once.
    oauth_state_key: SecretStr = SecretStr("local-oauth-state-key-change-me")
    oauth_state_ttl_s: int = 600

    # Webhooks (Meta's GET verification echoes hub.challenge when this token matches)
    webhook_verify_token: SecretStr = SecretStr("autodm-local-verify-token")
    # Where data-deletion requests can be followed (Meta shows this URL to the user).
    webhook_public_base_url: str = "http://127.0.0.1:8001"
    # A signed webhook is accepted once Kafka holds it (no database needed); if Kafka does
    # not acknowledge within this (Meta wants an answer within 5 s), the answer is 503 with
    # Retry-After so Meta retries (docs/RELIABILITY.md, "Webhook acceptance").
    webhook_accept_timeout_s: float = Field(default=3.0, gt=0)
    webhook_retry_after_s: int = Field(default=30, ge=1)
    # Active reconciliation of `unknown` Instagram DMs through the Conversations API: a DM
    # is looked up this long after it went `unknown` (its echo usually settles it first),
    # then again with doubling delays, at most this many times; passes run this often, and
    # call at most this often per account (Meta allows 2 Conversations API calls/s).
    instagram_reconcile_after_s: float = Field(default=120.0, ge=0)
    instagram_reconcile_interval_s: float = Field(default=15.0, gt=0)
    instagram_reconcile_max_checks: int = Field(default=6, ge=1)
    instagram_conversations_per_s: float = Field(default=1.5, gt=0, le=2)
    # Deauthorize / data-deletion `signed_request`s: refused when `issued_at` is further than
    # this from now (either way) or `expires` has passed; a replay within it is a no-op.
    signed_request_max_age_s: int = Field(default=600, ge=30)
    # Data deletion: how often webhook_ingest checks whether the topics' records of pending
    # requests are consumed and can be truncated (docs/RELIABILITY.md, Privacy).
    data_deletion_poll_interval_s: float = Field(default=5.0, gt=0)

    # Token refresher (platform facts §2: refresh >= 24 h old tokens before the 60 days end)
    token_refresh_interval_s: float = 3600.0
    token_refresh_window_days: float = 15.0
    token_refresh_batch_size: int = 50
    # A claimed account is left alone by other replicas this long (longer than one call).
    token_refresh_lease_s: float = 300.0
    # Tokens that still expire within this many days were not refreshed in time: listed on
    # the admin overview and counted by autodm_tokens_unrefreshed_accounts (an alert).
    token_unrefreshed_warning_days: float = 7.0

    # Keys for tokens at rest (Fernet, url-safe base64, 32 bytes); first one encrypts,
    # every one decrypts, so a key can be rotated without a flag day.
    token_encryption_keys: list[SecretStr] = Field(
        default_factory=lambda: [SecretStr("cmVwbGFjZS1tZS1pbi1wcm9kdWN0aW9uLTMyYnl0ZXM=")]
    )

    # Routing rules (platform facts §1b, §1e)
    instagram_dm_window_hours: int = 24
    private_reply_window_days: int = 7
    wa_link_max_text_chars: int = 500

    # WhatsApp Cloud API (platform facts §4). The customer-service window; how often due
    # deferred sends are re-requested; how many throttling answers in a row a DM waits out
    # before it fails. The daily tier is per number (whatsapp_numbers.daily_limit).
    whatsapp_window_hours: int = 24
    whatsapp_deferral_poll_s: float = Field(default=0.5, gt=0)
    whatsapp_max_throttle_retries: int = Field(default=6, ge=0)
    # WhatsApp webhooks are signed with the Meta app's secret (not the Instagram app's).
    whatsapp_app_secret: SecretStr = SecretStr("sandbox-app-secret")

    # Delivery guarantees (docs/RELIABILITY.md). Pacing stays below Meta's limits
    # (platform facts §1h, §4d): Instagram 100 sends/s and 750 private replies/h per
    # account; WhatsApp 80 msg/s per number and 1 msg per 6 s per recipient.
    instagram_send_per_s: float = Field(default=50.0, gt=0, le=100)
    instagram_send_burst: int = Field(default=10, ge=1, le=100)
    instagram_private_replies_per_h: float = Field(default=600.0, gt=0, le=750)
    instagram_private_reply_burst: int = Field(default=20, ge=1, le=150)
    whatsapp_send_per_s: float = Field(default=60.0, gt=0, le=80)
    whatsapp_pair_interval_s: float = Field(default=6.0, ge=6.0)
    # A send waits in-process for a rate-limit token at most this long; longer waits are
    # deferred to the retry topic so the partition moves on. Every inline wait also holds up
    # the other accounts on that partition: the bench's scale run (5/s accounts, 100 DMs
    # each) delayed cold accounts by tens of seconds at 1 s, so it is about a round trip.
    max_inline_wait_s: float = Field(default=0.05, ge=0)
    # Delivery attempts of one DM (each after the fast in-process retries) before the DLQ.
    delivery_max_attempts: int = Field(default=5, ge=1)
    retry_base_delay_s: float = 2.0
    retry_max_delay_s: float = 300.0
    # A throttle signal without a usable time blocks the account this long.
    throttle_default_block_s: float = 60.0
    # Circuit breaker: consecutive failures that open it, how long it stays open first
    # (doubling per failed probe, up to the max).
    circuit_account_failures: int = 5
    circuit_provider_failures: int = 20
    circuit_open_s: float = 5.0
    circuit_max_open_s: float = 300.0
    # How often each sender re-reads pauses and open circuits (shared across replicas).
    delivery_state_refresh_s: float = 1.0
    # A paused DM is looked at again this often; resume sends it within this delay.
    paused_recheck_s: float = 2.0
    # The retry consumer holds at most this many deferred records in memory.
    retry_max_held: int = 20000
    # A handler failing because PostgreSQL or Kafka is unreachable is retried this long
    # (holding its partition, as everything on it needs the same dependency) before the
    # record is parked in the DLQ with reason `outage` (shared.outages).
    outage_retry_s: float = Field(default=60.0, ge=0)

    # Outbox relay
    outbox_batch_size: int = 500
    outbox_poll_interval_s: float = 0.2
    # How often the relay refreshes autodm_outbox_backlog (one COUNT on a partial index).
    outbox_backlog_interval_s: float = 15.0
    # Published outbox rows are kept this long (to look at what went out), then deleted.
    outbox_retention_hours: float = Field(default=24.0, gt=0)
    # WhatsApp statuses that never met their send (e.g. of messages another tool sent from
    # the same number) are deleted after this long.
    whatsapp_status_backlog_retention_hours: float = Field(default=168.0, gt=0)

    # Operations: how often the API's collector reads consumer lag, retry/DLQ depth and
    # token expiry (a few Kafka requests and two queries per pass, whatever the traffic).
    ops_collector_interval_s: float = 15.0
    # The stuck-DM watchdog (shared/stuck_dms.py): a DM `queued` or `sending` longer than
    # this with no send in flight is reported (metric, alert, admin overview); checked
    # every `stuck_dm_interval_s`. Above the longest normal hold that has no intent (a
    # lead waiting for the router or a sender behind consumer lag).
    stuck_dm_after_s: float = Field(default=900.0, gt=0)
    stuck_dm_interval_s: float = Field(default=60.0, gt=0)

    # HTTP of each service (/metrics, health; the API's routes). Loopback unless deployed.
    http_host: str = "127.0.0.1"
    # Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client: behind
    # an ingress, set its addresses, or every visitor shares the ingress's IP and with it
    # the lead form's per-IP limit. Empty (the default): no proxy is trusted, so nothing on
    # the host can name its own client address (docs/WEB.md, "Proxy trust").
    trusted_proxies: str = ""
    api_port: int = 8000
    webhook_ingest_port: int = 8001
    instagram_sender_port: int = 8002
    whatsapp_sender_port: int = 8003
    token_refresher_port: int = 8004
    public_base_url: str = "http://127.0.0.1:8000"

    # API authentication: bearer JWTs checked against the identity provider's JWKS (Clerk or
    # any OIDC provider in production; local_issuer for `make run` and the tests).
    jwks_url: str = "http://127.0.0.1:18090/.well-known/jwks.json"
    jwt_issuer: str = "http://127.0.0.1:18090"
    jwt_audience: str = "autodm-api"
    # Other services call with tokens for this audience; they act for any creator.
    jwt_service_audience: str = "autodm-services"
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    jwt_leeway_s: int = 30
    jwt_role_claim: str = "role"
    jwt_creator_claim: str = "creator_id"
    jwks_cache_s: int = 300
    # Unknown kids force a JWKS refetch at most this often, so junk tokens can't hammer it.
    jwks_refresh_cooldown_s: float = 30.0

    # Web pages (docs/WEB.md). Sign-in is the identity provider's authorization-code flow
    # (the local issuer's /authorize in development); the provider's token is verified
    # once, and the session cookie names a server-side session (table web_sessions).
    web_authorize_url: str = "http://127.0.0.1:18090/authorize"
    web_token_url: str = "http://127.0.0.1:18090/oauth/token"  # noqa: S105 (a URL)
    web_client_id: str = "autodm-web"
    # Scopes asked for at sign-in; some providers need more than `openid` to put the role
    # claims in the access token.
    web_scope: str = "openid"
    # The `audience` asked for at sign-in. Auth0 issues a JWT access token for an API only
    # when asked for that API's identifier (set it to AUTODM_JWT_AUDIENCE there); providers
    # that take no such parameter (Keycloak, Clerk) leave it unset.
    web_audience: str | None = None
    # Sent with the code exchange when set (a confidential client); PKCE is always used.
    web_client_secret: SecretStr | None = None
    # Session and CSRF cookies are `Secure`; only a local/test environment on plain http
    # may turn that off.
    web_cookie_secure: bool = True
    # Signs CSRF tokens (bound to the web session), the sign-in state cookie and the public
    # form's tokens.
    web_csrf_key: SecretStr = SecretStr("local-web-csrf-key-change-me")
    # `Strict-Transport-Security: max-age=...` on every answer. Unset: one year outside
    # local/test, none there (plain http); 0 turns it off.
    web_hsts_max_age_s: int | None = Field(default=None, ge=0)
    # The OpenAPI UI at /docs (assets served by the API itself, no CDN); off hides it and
    # /openapi.json (e.g. in production, where the contract is in docs/FRONTEND.md).
    api_docs_enabled: bool = True
    # Public lead form abuse limits, shared by every API process: submissions per minute.
    lead_form_per_ip_per_minute: int = Field(default=10, ge=1)
    lead_form_per_creator_per_minute: int = Field(default=120, ge=1)
    # A public form's token is accepted this long after the form was served.
    lead_form_token_ttl_s: int = Field(default=7200, ge=60)
    # A phone or Instagram handle that got a DM from the creator within this many hours is
    # not messaged again because a public form names it (0: no such limit).
    lead_form_recipient_cooldown_hours: float = Field(default=24.0, ge=0)
    # A challenge the public form shows once its limits are under pressure (docs/WEB.md,
    # "Form limits"): "none" (default), "hcaptcha" or "turnstile", with the provider's site
    # key and secret; the verify URL is the provider's siteverify unless set (tests).
    lead_form_challenge: Literal["none", "hcaptcha", "turnstile"] = "none"
    lead_form_challenge_site_key: str = ""
    lead_form_challenge_secret: SecretStr = SecretStr("")
    lead_form_challenge_verify_url: str | None = None
    # "Under pressure": a client or the creator has used this share of its per-minute limit.
    lead_form_challenge_at: float = Field(default=0.5, gt=0, le=1)

    # API request limits
    api_max_body_bytes: int = 64 * 1024
    # GET /api/dm/events (live DM status): how often it reads the DM log, the keep-alive
    # comment's interval, and how long one stream lasts before the client resumes.
    status_stream_poll_s: float = Field(default=0.5, gt=0)
    status_stream_heartbeat_s: float = Field(default=15.0, gt=0)
    status_stream_max_s: float = Field(default=300.0, gt=0)
    # The lead ingress (leads.submitted): producer name (header `x-autodm-producer`) -> the
    # creator ids it may publish leads for, or ["*"] for any. Kafka ACLs decide who may
    # write to the topic at all; this decides for whom. Unlisted producers are refused.
    lead_ingress_producers: dict[str, list[str]] = Field(default_factory=dict)
    # Other frontends calling /api/ from a browser: exact origins (scheme://host[:port]),
    # none by default. Bearer tokens only; cookies are never allowed cross-origin.
    cors_allowed_origins: list[str] = Field(default_factory=list)
    cors_max_age_s: int = Field(default=600, ge=0, le=86400)
    # Per-caller limits of the JSON API (docs/FRONTEND.md, "Rate limits"): requests per
    # window per token subject and creator it acts for, by the token's role; 0 turns a
    # role's limit off. Counted in PostgreSQL, so every API process shares one count.
    api_rate_limit_creator: int = Field(default=1200, ge=0)
    api_rate_limit_admin: int = Field(default=1200, ge=0)
    api_rate_limit_service: int = Field(default=12000, ge=0)
    api_rate_limit_window_s: int = Field(default=60, ge=1, le=3600)
    # Request body limits of the other services (shared/body_limits.py; docs/RELIABILITY.md,
    # "Request body limits"). Meta batches at most 1000 updates per webhook POST, each well
    # under 1 KiB (an Instagram text is <= 1,000 bytes): 1 MiB holds a full batch.
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Deauthorize / data-deletion: one form field, a signed_request of a few hundred bytes.
    webhook_callback_max_body_bytes: int = Field(default=16 * 1024, ge=1024)
    # Services whose HTTP face is only /metrics, /healthz and /readyz (no route reads a body).
    internal_max_body_bytes: int = Field(default=16 * 1024, ge=1024)
    idempotency_in_flight_s: int = 30
    idempotency_ttl_hours: int = 24
    # How often each service deletes the rows it owns that can no longer matter
    # (expired idempotency keys, published outbox rows, ...: shared/db/retention.py).
    housekeeping_interval_s: float = Field(default=60.0, gt=0)

    @property
    def hsts_max_age_s(self) -> int:
        if self.web_hsts_max_age_s is not None:
            return self.web_hsts_max_age_s
        return 0 if self.environment in DEVELOPMENT_ENVIRONMENTS else 365 * 86400

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
    def _challenge_configured(self) -> Settings:
        """A challenge without its keys would refuse every visitor under pressure."""
        if self.lead_form_challenge != "none" and not (
            self.lead_form_challenge_site_key and self.lead_form_challenge_secret.get_secret_value()
        ):
            raise ValueError("lead_form_challenge needs its site key and secret")
        return self

    @model_validator(mode="after")
    def _no_development_secrets_outside_development(self) -> Settings:
        """The defaults are the local sandbox's secrets, so `make run` needs no setup; in any
        other environment each of them must have been replaced."""
        if self.environment in DEVELOPMENT_ENVIRONMENTS:
            return self
        if not self.web_cookie_secure:
            raise ValueError("web_cookie_secure may be off only in a local or test environment")
        left = [name for name in _secret_fields() if _is_default(self, name)]
        if left:
            raise ValueError(f"set these secrets for environment {self.environment!r}: {left}")
        return self


def _secret_fields() -> list[str]:
    return [
        name
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation) and (field.default or field.default_factory)
    ]


def _is_default(settings: Settings, name: str) -> bool:
    field = Settings.model_fields[name]
    default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
    return bool(getattr(settings, name) == default)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
