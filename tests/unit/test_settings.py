"""The built-in development secrets never run outside local development."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from tests.settings import AllSettings


def test_development_defaults_are_fine_locally() -> None:
    assert AllSettings(environment="local").instagram_app_secret.get_secret_value()


def test_production_refuses_every_development_secret_and_names_them() -> None:
    with pytest.raises(ValidationError) as refused:
        AllSettings(environment="production")
    for name in (
        "instagram_app_secret",
        "token_encryption_keys",
        "oauth_state_key",
        "web_csrf_key",
    ):
        assert name in str(refused.value)


PRODUCTION_SECRETS: dict[str, object] = {
    "database_url": SecretStr("postgresql+asyncpg://u:p@db/autodm"),
    "instagram_app_secret": SecretStr("real"),
    "whatsapp_app_secret": SecretStr("real-wa"),
    "oauth_state_key": SecretStr("state-key"),
    "web_csrf_key": SecretStr("csrf-key"),
    "webhook_verify_token": SecretStr("verify"),
    "token_encryption_keys": [SecretStr("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")],
}


def test_production_starts_once_every_secret_is_set() -> None:
    settings = AllSettings(environment="production", **PRODUCTION_SECRETS)  # type: ignore[arg-type]
    assert settings.environment == "production"


def test_insecure_session_cookies_only_in_development() -> None:
    assert not AllSettings(environment="test", web_cookie_secure=False).web_cookie_secure
    with pytest.raises(ValidationError, match="web_cookie_secure"):
        AllSettings(environment="production", web_cookie_secure=False, **PRODUCTION_SECRETS)  # type: ignore[arg-type]


def test_each_service_reads_only_the_shared_settings_and_its_own() -> None:
    from services.api.settings import ApiSettings
    from services.instagram_sender.settings import InstagramSenderSettings
    from services.token_refresher.settings import TokenRefresherSettings
    from services.webhook_ingest.settings import WebhookIngestSettings
    from services.whatsapp_sender.settings import WhatsAppSenderSettings
    from shared.delivery.settings import SenderSettings
    from shared.platform.settings import Settings as Common

    common = set(Common.model_fields)
    own = {
        cls.__name__: set(cls.model_fields) - common
        for cls in (
            ApiSettings,
            SenderSettings,
            WebhookIngestSettings,
            TokenRefresherSettings,
        )
    }
    # No field is declared by two services (it would belong in the shared part).
    names = [name for fields in own.values() for name in fields]
    assert len(names) == len(set(names))
    assert "jwks_url" in own["ApiSettings"] and "jwks_url" not in WebhookIngestSettings.model_fields
    assert "circuit_open_s" not in ApiSettings.model_fields
    assert "webhook_verify_token" not in InstagramSenderSettings.model_fields
    assert "token_refresh_window_days" in TokenRefresherSettings.model_fields
    assert set(SenderSettings.model_fields) <= set(WhatsAppSenderSettings.model_fields)
