"""webhook_ingest's settings: webhook acceptance, signed requests, reconciliation, deletion."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr

from shared.platform.settings import Settings


class WebhookIngestSettings(Settings):
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
    # WhatsApp webhooks are signed with the Meta app's secret (not the Instagram app's).
    whatsapp_app_secret: SecretStr = SecretStr("sandbox-app-secret")
    webhook_ingest_port: int = 8001
    # Request body limits of the other services (shared/platform/body_limits.py;
    # docs/RELIABILITY.md,
    # "Request body limits"). Meta batches at most 1000 updates per webhook POST, each well
    # under 1 KiB (an Instagram text is <= 1,000 bytes): 1 MiB holds a full batch.
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Deauthorize / data-deletion: one form field, a signed_request of a few hundred bytes.
    webhook_callback_max_body_bytes: int = Field(default=16 * 1024, ge=1024)


@lru_cache(maxsize=1)
def get_settings() -> WebhookIngestSettings:
    return WebhookIngestSettings()
