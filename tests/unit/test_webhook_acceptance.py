"""webhook_ingest's answer when Kafka does not take a signed webhook: 503 with Retry-After
(Meta retries), counted for the AutoDMWebhooksRefused alert; never a 500."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
from typing import Any

import pytest
from aiokafka import errors as kafka_errors
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from services.webhook_ingest.accept import Acceptance
from services.webhook_ingest.app import create_app
from tests.settings import AllSettings


class FailingBroker:
    """Kafka as the producer sees it in an outage: an error, or no acknowledgement."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error

    async def publish(self, *_: Any, **__: Any) -> None:
        if self.error is not None:
            raise self.error
        await asyncio.sleep(3600)


def _client(broker: FailingBroker) -> TestClient:
    app = create_app(AllSettings())
    # No lifespan: nothing connects; only the publishing broker is swapped for the failing one.
    acceptance = Acceptance(broker, timeout_s=0.2, retry_after_s=30)  # type: ignore[arg-type]
    app.state.deps = dataclasses.replace(app.state.deps, acceptance=acceptance)
    app.state.whatsapp_deps = dataclasses.replace(app.state.whatsapp_deps, acceptance=acceptance)
    return TestClient(app, raise_server_exceptions=False)


def _signed(payload: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": f"sha256={digest}"}


INSTAGRAM = {
    "object": "instagram",
    "entry": [
        {
            "id": "17841400000000001",
            "time": 1,
            "messaging": [{"sender": {"id": "5551"}, "message": {"mid": "m_1", "text": "hi"}}],
        }
    ],
}
WHATSAPP = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "1",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "metadata": {"phone_number_id": "106540352242922"},
                        "statuses": [{"id": "wamid.X", "status": "sent"}],
                    },
                }
            ],
        }
    ],
}


def _refused(provider: str) -> float:
    value = REGISTRY.get_sample_value("autodm_webhooks_refused_total", {"provider": provider})
    return value or 0.0


@pytest.mark.parametrize(
    ("path", "payload", "provider"),
    [("/webhooks/instagram", INSTAGRAM, "instagram"), ("/webhooks/whatsapp", WHATSAPP, "whatsapp")],
)
@pytest.mark.parametrize(
    "error",
    [kafka_errors.KafkaConnectionError("down"), kafka_errors.KafkaTimeoutError(), None],
    ids=["refused", "timed-out", "no-ack"],
)
def test_kafka_unavailable_is_a_503_with_retry_after_and_counted(
    path: str, payload: dict[str, Any], provider: str, error: Exception | None
) -> None:
    secret = AllSettings().instagram_app_secret.get_secret_value()
    body, headers = _signed(payload, secret)
    before = _refused(provider)
    answer = _client(FailingBroker(error)).post(path, content=body, headers=headers)
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "30"
    assert _refused(provider) == before + 1


def test_a_bug_while_publishing_stays_a_500_and_is_not_counted() -> None:
    body, headers = _signed(INSTAGRAM, AllSettings().instagram_app_secret.get_secret_value())
    before = _refused("instagram")
    answer = _client(FailingBroker(ValueError("bug"))).post(
        "/webhooks/instagram", content=body, headers=headers
    )
    assert answer.status_code == 500
    assert _refused("instagram") == before


def test_an_unsigned_webhook_is_refused_before_kafka_is_asked() -> None:
    answer = _client(FailingBroker(None)).post("/webhooks/instagram", content=b"{}")
    assert answer.status_code == 401
