"""Domain metrics, defined once and shared by every service (Prometheus naming).

Who updates what (define new metrics HERE, never in the module that updates them, so the
dashboard, the alert rules and tests/unit/test_ops_artifacts.py see one list; that test
fails until deploy/grafana/autodm.json shows a new metric):
- shared/delivery/pacing.py (delivery engineer): observe RATE_LIMIT_WAIT with the wait a send
  had to take for a permit (0 when none), labelled provider and scope ("account" | "app");
  deferrals (a row in deferred_sends) count in DELIVERIES_DEFERRED; each sender's
  deferral poller sets DEFERRED_SENDS to how many of its DMs wait there.
- shared/delivery/circuit.py (delivery engineer): CIRCUIT_STATE on every transition. Alerts read
  `kind="provider"` as critical and count open `kind="account"` breakers.
- services/webhook_ingest (Instagram lifecycle engineer): WEBHOOK_SIGNATURE_FAILURES for
  every webhook whose X-Hub-Signature-256 is missing or wrong; WEBHOOKS_REFUSED for every
  signed webhook answered 503 (Kafka unavailable).
- services/api/workers/ops_collector.py: topic depth, consumer lag, token expiry (periodically).
- shared/messaging/outbox.py: outbox backlog and the age of its oldest record (periodically).
- services/api/service_layer/stuck_dms.py: DMs `queued`/`sending` too long with nothing in flight
(periodically).
deploy/prometheus/alerts.yml and deploy/grafana/autodm.json reference these names.
"""

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
OUTBOX_OLDEST_AGE = Gauge(
    "autodm_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox record (0 when the backlog is empty)",
)
DUPLICATES_SKIPPED = Counter(
    "autodm_duplicate_events_total",
    "Events seen again and skipped by an idempotent consumer",
    ["consumer"],
)

# Delivery: rate limiting and circuit breaking (updated by shared/delivery/pacing.py, circuit.py).
RATE_LIMIT_WAIT = Histogram(
    "autodm_rate_limit_wait_seconds",
    "Time a send waited for a rate-limiter permit (0 when none was needed)",
    ["provider", "scope"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


# Kafka, from offsets (services/api/workers/ops_collector.py; one collector per deployment, in the
# API's workers).
TOPIC_RECORDS = Gauge(
    "autodm_topic_records",
    "Records retained in a retry or dead-letter topic (end minus start offsets)",
    ["topic"],
)
CONSUMER_LAG = Gauge(
    "autodm_consumer_lag_records",
    "Records not yet committed by a consumer group (end minus committed offsets)",
    ["group", "topic"],
)
COLLECTOR_LAST_SUCCESS = Gauge(
    "autodm_ops_collector_last_success_timestamp_seconds",
    "When the offsets/token collector last completed a pass (Unix time)",
)

# Tokens: per-account series would be unbounded, so accounts are counted into cumulative
# buckets of time left (like a histogram's `le`); the few soonest are named for the runbook.
TOKEN_EXPIRY_BUCKETS_DAYS = (0, 1, 3, 7, 15, 30, 60)
TOKEN_EXPIRY_ACCOUNTS = Gauge(
    "autodm_token_expiry_accounts",
    "Connected accounts whose token expires within `within_days` (cumulative; 0 = expired)",
    ["provider", "within_days"],
)
TOKEN_EXPIRY_SOONEST = Gauge(
    "autodm_token_expiry_soonest_seconds",
    "Seconds to expiry of the soonest-expiring tokens (at most 5 series in all)",
    ["provider", "account_id"],
)

# Connected Instagram tokens expiring within token_unrefreshed_warning_days (an unknown
# expiry counted 60 days after issue): the refresher renews them earlier, so these failed.
TOKENS_UNREFRESHED = Gauge(
    "autodm_tokens_unrefreshed_accounts",
    "Connected accounts whose token expires soon and could not be refreshed",
    ["provider"],
)

WEBHOOK_SIGNATURE_FAILURES = Counter(
    "autodm_webhook_signature_failures_total",
    "Webhook deliveries rejected for a missing or wrong X-Hub-Signature-256",
    ["provider", "reason"],
)
WEBHOOKS_REFUSED = Counter(
    "autodm_webhooks_refused_total",
    "Signed webhooks answered 503 because Kafka did not take them (Meta retries, then gives up)",
    ["provider"],
)
CIRCUIT_STATE = Gauge(
    "autodm_circuit_state",
    "Circuit breaker of a sending account or provider: 0 closed, 1 half-open, 2 open",
    ["provider", "kind", "scope"],
)
DELIVERIES_DEFERRED = Counter(
    "autodm_deliveries_deferred_total",
    "DMs deferred (deferred_sends), by provider and why (transient, throttled, paused, ...)",
    ["provider", "reason"],
)
COMMENT_LEADS = Counter(
    "autodm_comment_leads_total",
    "Comments on creators' posts, by what Comment to DM made of them: lead, not_counted "
    "(trigger off or no keyword), cool_down, too_old, unknown_account, account_disconnected",
    ["outcome"],
)
DEFERRED_SENDS = Gauge(
    "autodm_deferred_sends", "DMs waiting in deferred_sends until due, by provider", ["provider"]
)
# shared/platform/body_limits.py: requests refused before their body was read or buffered.
HTTP_BODIES_REFUSED = Counter(
    "autodm_http_bodies_refused_total",
    "Requests refused on their body: too_large (413, over the path's limit) or unsigned "
    "(401, the webhook's signature header missing); path is the limit's rule, * the default",
    ["path", "reason"],
)
# shared/platform/outage_log.py: background loops (outbox relays, sweepers...) meeting an outage.
BACKGROUND_OUTAGE = Gauge(
    "autodm_background_outage",
    "1 while a background loop cannot reach PostgreSQL or Kafka, else 0",
    ["loop"],
)
BACKGROUND_OUTAGES = Counter(
    "autodm_background_outages_total",
    "Outages met by a background loop (counted when each starts)",
    ["loop"],
)

# The stuck-DM watchdog (services/api/service_layer/stuck_dms.py, in the API's workers):
# every (status, provider) series is set on each pass, 0 when none is stuck.
DMS_STUCK = Gauge(
    "autodm_dms_stuck",
    "DMs queued or sending longer than stuck_dm_after_s with no send in flight",
    ["status", "provider"],
)
# The conversion funnel (services/api/service_layer/funnel_stages.py): a lead routed the first time
# (`lead`), its DM sent (`sent`) or its link opened through /l/<ref> (`clicked`), `read`, `replied`;
# by the lead's route and source. Updated by the router, dm_state.record_transition and the
# redirect.
FUNNEL = Counter(
    "autodm_funnel_total",
    "Leads reaching each step of the funnel (lead, sent, clicked, read, replied), by route "
    "and source",
    ["stage", "route", "source"],
)
