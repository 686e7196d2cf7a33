"""The API's settings (both its processes): auth, web pages, the form, limits, the stream."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from shared.platform.settings import DEVELOPMENT_ENVIRONMENTS, Settings


class ApiSettings(Settings):
    instagram_authorize_url: str = "http://127.0.0.1:18080/oauth/authorize"
    instagram_webhook_fields: str = "messages,messaging_seen,messaging_referral,comments"
    # OAuth `state`: HMAC key, lifetime; each state is accepted once.
    oauth_state_key: SecretStr = SecretStr("local-oauth-state-key-change-me")
    oauth_state_ttl_s: int = 600
    # Tokens that still expire within this many days were not refreshed in time: listed on
    # the admin overview and counted by autodm_tokens_unrefreshed_accounts (an alert).
    token_unrefreshed_warning_days: float = 7.0
    # Routing rules (platform facts §1b, §1e)
    instagram_dm_window_hours: int = 24
    private_reply_window_days: int = 7
    # How often the relay refreshes autodm_outbox_backlog (one COUNT on a partial index).
    outbox_backlog_interval_s: float = 15.0
    # Published outbox rows are kept this long (to look at what went out), then deleted.
    outbox_retention_hours: float = Field(default=24.0, gt=0)
    # Operations: how often the API's collector reads consumer lag, retry/DLQ depth and
    # token expiry (a few Kafka requests and two queries per pass, whatever the traffic).
    ops_collector_interval_s: float = 15.0
    # The stuck-DM watchdog (services/api/service_layer/stuck_dms.py): a DM `queued` or
    # `sending` longer than this with no send in flight is reported (metric, alert, admin
    # overview); checked every `stuck_dm_interval_s`. Above the longest normal hold that has
    # no intent (a lead waiting for the router or a sender behind consumer lag).
    stuck_dm_after_s: float = Field(default=900.0, gt=0)
    stuck_dm_interval_s: float = Field(default=60.0, gt=0)
    api_port: int = 8000
    api_workers_port: int = 8005  # the API's event workers: /metrics, /healthz, /readyz only
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
    idempotency_in_flight_s: int = 30
    idempotency_ttl_hours: int = 24

    @property
    def hsts_max_age_s(self) -> int:
        if self.web_hsts_max_age_s is not None:
            return self.web_hsts_max_age_s
        return 0 if self.environment in DEVELOPMENT_ENVIRONMENTS else 365 * 86400

    @model_validator(mode="after")
    def _challenge_configured(self) -> Self:
        """A challenge without its keys would refuse every visitor under pressure."""
        if self.lead_form_challenge != "none" and not (
            self.lead_form_challenge_site_key and self.lead_form_challenge_secret.get_secret_value()
        ):
            raise ValueError("lead_form_challenge needs its site key and secret")
        return self

    @model_validator(mode="after")
    def _secure_cookies_outside_development(self) -> Self:
        if self.environment not in DEVELOPMENT_ENVIRONMENTS and not self.web_cookie_secure:
            raise ValueError("web_cookie_secure may be off only in a local or test environment")
        return self


@lru_cache(maxsize=1)
def get_settings() -> ApiSettings:
    return ApiSettings()
