"""Body limits of webhook_ingest (shared/platform/body_limits.py): Meta's event POSTs must carry
their signature header before a byte of the body is read, and no body may outgrow what
Meta really sends; the deauthorize / data-deletion callbacks and anything else get the
small limit of a one-field form."""

from __future__ import annotations

from fastapi import FastAPI

from services.webhook_ingest.settings import WebhookIngestSettings
from services.webhook_ingest.signatures import SIGNATURE_HEADER, SignatureCheck
from shared.platform.body_limits import UNSIGNED, BodyLimits, BodyRule
from shared.platform.logs import get_logger
from shared.platform.metrics import WEBHOOK_SIGNATURE_FAILURES

log = get_logger(__name__)

EVENT_PATHS = {"instagram": "/webhooks/instagram", "whatsapp": "/webhooks/whatsapp"}


def body_rules(settings: WebhookIngestSettings) -> list[BodyRule]:
    return [
        BodyRule(path, settings.webhook_max_body_bytes, SIGNATURE_HEADER, label=provider)
        for provider, path in EVENT_PATHS.items()
    ]


def _count_unsigned(rule: BodyRule | None, reason: str) -> None:
    # The same count and log line as a missing signature found by the route used to get.
    if rule is not None and rule.label and reason == UNSIGNED:
        log.warning("webhook rejected", provider=rule.label, signature=SignatureCheck.MISSING)
        WEBHOOK_SIGNATURE_FAILURES.labels(provider=rule.label, reason=SignatureCheck.MISSING).inc()


def install_body_limits(app: FastAPI, settings: WebhookIngestSettings) -> None:
    app.add_middleware(
        BodyLimits,
        default_max_bytes=settings.webhook_callback_max_body_bytes,
        rules=body_rules(settings),
        on_refused=_count_unsigned,
    )
