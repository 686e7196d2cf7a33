"""Sandbox configuration (environment variables prefixed with ``SANDBOX_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SandboxSettings(BaseSettings):
    """Startup configuration; most fields can also be changed at runtime through
    ``PATCH /_sandbox/settings`` so end-to-end tests can tune a running sandbox."""

    model_config = SettingsConfigDict(env_prefix="SANDBOX_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = 18080

    # The Instagram app id / secret (Business Login uses the *Instagram* app id as client_id).
    app_id: str = "990602627938098"
    app_secret: str = "sandbox-app-secret"  # noqa: S105 - a fake secret for a fake Meta
    # WhatsApp webhooks are signed with the Meta app secret; defaults to app_secret.
    whatsapp_app_secret: str | None = None

    instagram_webhook_url: str | None = None
    whatsapp_webhook_url: str | None = None

    # Any `vX.Y` prefix is accepted; this one decides version-dependent payload details
    # (WhatsApp statuses omit `conversation` from v24.0 on).
    graph_api_version: str = "v23.0"
    # Added to every Graph/WhatsApp API call (control API is never delayed).
    latency_ms: int = Field(default=0, ge=0)

    # Instagram messaging limits, per professional account (platform-facts §1h).
    instagram_send_per_second: int = Field(default=100, ge=1)
    instagram_private_replies_per_hour: int = Field(default=750, ge=1)
    # Conversations API: "2 calls per second per Instagram professional account".
    instagram_conversations_per_second: int = Field(default=2, ge=1)
    # WhatsApp throughput per business number and pair rate per (number, user) (§4d).
    whatsapp_messages_per_second: int = Field(default=80, ge=1)
    whatsapp_pair_interval_seconds: float = Field(default=6.0, ge=0)
    # Extra messages that may be "borrowed" beyond 1 per interval; Meta allows a burst of
    # 45 messages (= 44 extra). Set 0 for a strict 1 message / interval.
    whatsapp_pair_burst: int = Field(default=44, ge=0)

    # Meta does not document the HTTP status of throttling errors; clients must key on
    # error.code, so this is configurable.
    rate_limit_http_status: int = 400
    token_error_http_status: int = 401

    # api.instagram.com/oauth/access_token: documented `{"data":[...]}` vs the flat object
    # many live implementations report.
    oauth_exchange_response_shape: Literal["data", "flat"] = "data"

    # "sync": free-form WhatsApp text outside the window is refused with 131047 in the HTTP
    # response. "async": accepted (200 + wamid) and then failed via a status webhook.
    # Meta usually accepts the send and reports 131047 in a `failed` status later (issue 19).
    whatsapp_window_error_mode: Literal["sync", "async"] = "async"
    # Share of WhatsApp users (met by phone for the first time) who adopted a username and
    # hide their phone: their webhooks carry their BSUID alone (sandbox/wa_users.py).
    whatsapp_username_share: float = Field(default=0.0, ge=0, le=1)
    # Status webhooks of an accepted message: spacing (plus up to `jitter`), and the share
    # of messages whose `delivered` never comes (read implies it) or comes after `read`.
    # A test that PUTs /_sandbox/whatsapp/status_order gets exactly that order instead.
    whatsapp_status_delay_ms: int = Field(default=150, ge=0)
    whatsapp_status_jitter_ms: int = Field(default=100, ge=0)
    whatsapp_missing_delivered_share: float = Field(default=0.05, ge=0, le=1)
    whatsapp_out_of_order_share: float = Field(default=0.05, ge=0, le=1)

    # Timeout fault defaults (overridable per fault).
    timeout_fault_seconds: float = Field(default=30.0, ge=0)
    timeout_fault_records_message: bool = True

    # Webhook delivery (sandbox/webhooks.py): the immediate retries after a failure ("a
    # few more times"), spaced by a doubling backoff; then, except for Instagram messaging,
    # retries of decreasing frequency until 36 h (Instagram) / 7 days (WhatsApp).
    webhook_retries: int = Field(default=2, ge=0)
    webhook_retry_backoff_ms: int = Field(default=500, ge=0)
    # Multiplies Meta's periods (the later retries, 15 min to an alert, 1 h of failures
    # to a disabled subscription): 0.001 makes the hour 3.6 s for a test.
    webhook_time_scale: float = Field(default=1.0, gt=0)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    # Meta echoes the business's own sends in the `messages` webhook with is_echo=true.
    instagram_echo_webhooks: bool = True
    # When true, Instagram webhooks are only sent for fields the account subscribed to
    # through POST /{ig_id}/subscribed_apps (like Meta); default off for convenience.
    require_webhook_subscription: bool = False

    whatsapp_waba_id: str = "102290129340398"

    @property
    def whatsapp_signing_secret(self) -> str:
        return self.whatsapp_app_secret or self.app_secret
