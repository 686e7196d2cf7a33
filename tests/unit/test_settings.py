"""The built-in development secrets never run outside local development."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from shared.platform.settings import Settings


def test_development_defaults_are_fine_locally() -> None:
    assert Settings(environment="local").instagram_app_secret.get_secret_value()


def test_production_refuses_every_development_secret_and_names_them() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(environment="production")
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
    settings = Settings(environment="production", **PRODUCTION_SECRETS)  # type: ignore[arg-type]
    assert settings.environment == "production"


def test_insecure_session_cookies_only_in_development() -> None:
    assert not Settings(environment="test", web_cookie_secure=False).web_cookie_secure
    with pytest.raises(ValidationError, match="web_cookie_secure"):
        Settings(environment="production", web_cookie_secure=False, **PRODUCTION_SECRETS)  # type: ignore[arg-type]
