"""The API's housekeeping: forget what can no longer matter, so these tables stay small.

- Idempotency keys older than their TTL: a retry that late is a new request anyway.
- Redeemed OAuth `state` nonces older than a state's lifetime: an older state is refused
  for its expiry before its nonce is looked at.
- Web sessions past their expiry: they are refused already; the row only takes space.
- Lead-form counters of windows before the previous one: the sliding estimate reads only
  this window and the one before.
- API rate counts of windows that have ended (services/api/http/rate_limits.py).
- Spent lead-form tokens older than a token's lifetime: by then it is refused as expired.
- Published outbox rows older than `outbox` retention (kept a while to be looked at).
- Consumers' claims of processed events older than any topic keeps its records: no
  redelivery can bring such an event back.

The last two tables are written by every service; the API (always deployed) sweeps them
for all. How rows are deleted: shared/db/retention.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from services.api.service_layer.form_windows import WINDOW, window_start
from shared.contracts.topics import TOPICS
from shared.db.models import (
    ApiRateCount,
    FormRateCount,
    IdempotencyKey,
    LeadFormTokenUse,
    OAuthStateUse,
    OutboxRecord,
    ProcessedEvent,
    WebSession,
)
from shared.db.retention import Sweep, older_than

# A claim must outlive every record that could redeliver its event.
PROCESSED_EVENT_RETENTION = timedelta(
    milliseconds=max(spec.retention_ms for spec in TOPICS)
) + timedelta(days=1)


@dataclass(frozen=True)
class Retention:
    idempotency_keys: timedelta
    oauth_states: timedelta
    published_outbox: timedelta
    form_tokens: timedelta = timedelta(hours=2)
    # A window's API rate counts are done with once it has ended.
    api_rate_counts: timedelta = timedelta(minutes=1)
    processed_events: timedelta = PROCESSED_EVENT_RETENTION


def api_sweeps(r: Retention) -> dict[str, Sweep]:
    """The sweeps the API runs, by table."""
    return {
        "idempotency_keys": older_than(
            IdempotencyKey, IdempotencyKey.created_at, lambda now: now - r.idempotency_keys
        ),
        "oauth_state_uses": older_than(
            OAuthStateUse, OAuthStateUse.used_at, lambda now: now - r.oauth_states
        ),
        "web_sessions": older_than(WebSession, WebSession.expires_at, lambda now: now),
        "form_rate_counts": older_than(
            FormRateCount, FormRateCount.window_start, lambda now: window_start(now) - WINDOW
        ),
        "api_rate_counts": older_than(
            ApiRateCount, ApiRateCount.window_start, lambda now: now - r.api_rate_counts
        ),
        "lead_form_token_uses": older_than(
            LeadFormTokenUse, LeadFormTokenUse.used_at, lambda now: now - r.form_tokens
        ),
        # Unpublished rows are never old enough: `published_at` is NULL until the relay has
        # handed them to Kafka (NULL < anything is not true).
        "outbox": older_than(
            OutboxRecord, OutboxRecord.published_at, lambda now: now - r.published_outbox
        ),
        "processed_events": older_than(
            ProcessedEvent, ProcessedEvent.processed_at, lambda now: now - r.processed_events
        ),
    }
