"""Domain metrics, defined once and shared by every service (Prometheus naming)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DMS = Counter(
    "autodm_dm_status_total",
    "DM status transitions recorded, by provider, route and status",
    ["provider", "route", "status"],
)
PROVIDER_LATENCY = Histogram(
    "autodm_provider_request_seconds",
    "Latency of calls to Meta's APIs",
    ["provider", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PROVIDER_ERRORS = Counter(
    "autodm_provider_errors_total",
    "Errors returned by Meta's APIs, by class and code",
    ["provider", "error_class", "code"],
)
DEAD_LETTERS = Counter(
    "autodm_dead_letters_total",
    "Records parked in the dead-letter topic, by source topic and reason",
    ["topic", "reason"],
)
OUTBOX_PUBLISHED = Counter("autodm_outbox_published_total", "Outbox records published to Kafka")
OUTBOX_BACKLOG = Gauge("autodm_outbox_backlog", "Outbox records not yet published")
DUPLICATES_SKIPPED = Counter(
    "autodm_duplicate_events_total",
    "Events seen again and skipped by an idempotent consumer",
    ["consumer"],
)
