"""The relational model. Migrations in shared/db/migrations mirror it; a test checks they agree."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.platform.tracing import current_traceparent


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, datetime: DateTime(timezone=True)}


class Creator(Base):
    __tablename__ = "creators"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    dm_template: Mapped[str] = mapped_column(Text, default="Hi {name}, thanks for reaching out!")
    # Which provider's routes the router tries first (shared.contracts.route_choice.RouteOrder).
    route_order: Mapped[str] = mapped_column(
        String(32), default="instagram_first", server_default="instagram_first"
    )
    # The creator's own pacing: at most this many DMs per hour from each of their accounts,
    # evenly spaced (None: as fast as the operator's limits allow). Senders re-read it.
    dm_pace_per_h: Mapped[int | None] = mapped_column(Integer)
    # Comment to DM (services/api/workers/comment_to_dm.py): which comments on the account's posts
    # become leads, who then get a private reply. "off", "keywords" or "any".
    comment_trigger: Mapped[str] = mapped_column(String(16), default="off", server_default="off")
    comment_keywords: Mapped[list[str]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    # A message per lead source (shared.contracts.lead_sources): {"comment": "Here is the
    # guide..."}; a source without one gets dm_template.
    source_templates: Mapped[dict[str, str]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Opt-out (shared/delivery/suppression.py): the creator's own stop words beside the built-in
    # ones, and how long a conversation stays in their hands after they write themselves.
    opt_out_words: Mapped[list[str]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    takeover_hours: Mapped[int] = mapped_column(Integer, default=24, server_default="24")


class SocialAccount(Base):
    """A creator's connected sending account: an Instagram professional account or a
    WhatsApp Business number. The token is stored encrypted (shared.platform.crypto)."""

    __tablename__ = "social_accounts"
    __table_args__ = (
        Index("uq_social_accounts_provider_external", "provider", "external_id", unique=True),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    creator_id: Mapped[UUID] = mapped_column(
        ForeignKey("creators.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default="connected")
    access_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_expires_at: Mapped[datetime | None]
    token_refreshed_at: Mapped[datetime | None]
    # Instagram: GET /me `id` (app-scoped), what deauthorize/data-deletion requests name.
    app_scoped_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Token refresher: a replica that claimed the account owns its refresh until then.
    token_refresh_lease_until: Mapped[datetime | None]
    # Token refresher: the last refresh that failed (cleared by a success), for the admin.
    token_refresh_failed_at: Mapped[datetime | None]
    token_refresh_error: Mapped[str | None] = mapped_column(String(500))
    # When and why the account last left AutoDM (the creator, Meta's deauthorize or deletion).
    disconnected_at: Mapped[datetime | None]
    disconnect_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class InstagramContact(Base):
    """A person known to an account by IGSID, with the last time they wrote (the window)."""

    __tablename__ = "instagram_contacts"

    account_id: Mapped[UUID] = mapped_column(
        ForeignKey("social_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    igsid: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str | None] = mapped_column(String(64))
    last_inbound_at: Mapped[datetime | None]


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_creator_status", "creator_id", "dm_status", "created_at"),
        Index("ix_leads_creator_created", "creator_id", "created_at"),
        # The stuck-DM watchdog (services/api/stuck_dms.py): DMs still in progress by age.
        Index(
            "ix_leads_in_progress_updated",
            "updated_at",
            postgresql_where=text("dm_status IN ('queued', 'sending')"),
        ),
        # A person's recent leads (one lead per commenter per cool-down: comment_leads.py).
        Index(
            "ix_leads_creator_igsid",
            "creator_id",
            "igsid",
            "created_at",
            postgresql_where=text("igsid IS NOT NULL"),
        ),
        Index("ix_leads_creator_source", "creator_id", "source", "created_at"),
        Index("ix_leads_created", "created_at"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    creator_id: Mapped[UUID] = mapped_column(ForeignKey("creators.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(32))
    whatsapp_opt_in: Mapped[bool] = mapped_column(Boolean, default=False)
    instagram_username: Mapped[str | None] = mapped_column(String(30))
    igsid: Mapped[str | None] = mapped_column(String(32))
    last_inbound_at: Mapped[datetime | None]
    comment_id: Mapped[str | None] = mapped_column(String(32))
    commented_at: Mapped[datetime | None]
    # The ig.me `ref` naming this lead: unguessable, so a link can't be forged for another.
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    # "form" for the public lead form (a phone typed there is nobody's consent); NULL for a
    # lead a creator's or a service's token vouched for (docs/WEB.md, "WhatsApp consent").
    origin: Mapped[str | None] = mapped_column(String(16))
    # Where the WhatsApp opt-in came from ("api", an import's own words, "form").
    whatsapp_consent_source: Mapped[str | None] = mapped_column(String(200))
    # When the owner of the number wrote to the creator naming this lead (its ref).
    contact_proven_at: Mapped[datetime | None]
    # The WhatsApp BSUID that wrote naming this lead (a username user may show no phone).
    whatsapp_user_id: Mapped[str | None] = mapped_column(String(160))
    # Where the lead came from (shared.contracts.lead_sources) and, for a comment, the post's media
    # id.
    source: Mapped[str] = mapped_column(String(16), default="api", server_default="api")
    source_post: Mapped[str | None] = mapped_column(String(64))
    # Opens of the lead's link through AutoDM's redirect (/l/<ref>: services/api/http/web/links.py).
    link_clicks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    link_clicked_at: Mapped[datetime | None]

    dm_status: Mapped[str] = mapped_column(String(32), default="queued")
    dm_route: Mapped[str | None] = mapped_column(String(32))
    dm_provider: Mapped[str | None] = mapped_column(String(16))
    # The provider the caller asked for (POST /api/dm/send), if any: routing keeps to it.
    dm_requested_provider: Mapped[str | None] = mapped_column(String(16))
    dm_account_id: Mapped[UUID | None]
    dm_attempt: Mapped[int] = mapped_column(Integer, default=1)
    dm_attempts: Mapped[int] = mapped_column(Integer, default=0)
    dm_link: Mapped[str | None] = mapped_column(Text)
    dm_reason: Mapped[str | None] = mapped_column(Text)
    dm_error_code: Mapped[int | None]
    dm_error_subcode: Mapped[int | None]
    dm_error_message: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    sent_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # W3C traceparent of what created the lead (NULL when tracing is off): `autodm status`
    # prints its trace id; a webhook about the lead's DM continues this trace.
    traceparent: Mapped[str | None] = mapped_column(String(55), default=current_traceparent)
    # Data deletion anonymised it (services/webhook_ingest/erasure.py): events still in a
    # topic about it are ignored, so nothing writes the person back.
    erased_at: Mapped[datetime | None]


class DmLogEntry(Base):
    """Append-only history of a DM: every accepted transition, never updated or deleted."""

    __tablename__ = "dm_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    lead_id: Mapped[UUID] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[UUID]
    status: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The writing transaction's id: the live status stream sends a row only once no older
    # transaction is running, so a resumed stream has no gaps (services/api/http/status_stream.py).
    txid: Mapped[int | None] = mapped_column(
        BigInteger, server_default=text("(pg_current_xact_id())::text::bigint")
    )

    __table_args__ = (
        Index("ix_dm_log_txid", "txid", "id", postgresql_where=text("txid IS NOT NULL")),
    )


class OutboxRecord(Base):
    """Events written in the same transaction as the state they describe; the relay
    publishes them to Kafka and stamps `published_at`."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        # Published rows are deleted after a while (services/api/workers/housekeeping.py).
        Index(
            "ix_outbox_published_at",
            "published_at",
            postgresql_where=text("published_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(128))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    correlation_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    published_at: Mapped[datetime | None]
    # W3C traceparent of the request or record that wrote the row: the relay's publish
    # continues that trace (shared/platform/tracing.py); NULL when tracing is off.
    traceparent: Mapped[str | None] = mapped_column(String(55), default=current_traceparent)


class ProcessedEvent(Base):
    """Idempotent consumers: (consumer, event id) is recorded in the handler's transaction."""

    __tablename__ = "processed_events"
    # Old claims are deleted (services/api/workers/housekeeping.py).
    __table_args__ = (Index("ix_processed_events_processed_at", "processed_at"),)

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[UUID] = mapped_column(primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DmSend(Base):
    """The send intent, written before the provider is called: one DM per (lead, route)."""

    __tablename__ = "dm_sends"

    lead_id: Mapped[UUID] = mapped_column(
        ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    route: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    # What was sent, to whom, from which account: an ambiguous send (`unknown`) is matched
    # to Instagram's echo of it by these (services/webhook_ingest/inbound.py).
    account_id: Mapped[UUID | None]
    recipient_igsid: Mapped[str | None] = mapped_column(String(32))
    text_sha256: Mapped[str | None] = mapped_column(String(64))
    # A `deferred` intent says why it waits (paused, rate_limited, throttled, circuit_open,
    # transient) and until when: the API shows it, so a waiting DM is never unexplained.
    waiting_for: Mapped[str | None] = mapped_column(String(32))
    not_before: Mapped[datetime | None]
    # How often an `unknown` DM was looked up in its Instagram conversation without an
    # answer (services/webhook_ingest/conversations.py): each look waits twice as long.
    reconcile_checks: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        Index(
            "ix_dm_sends_unreconciled",
            "account_id",
            "recipient_igsid",
            "text_sha256",
            postgresql_where=text("state IN ('sending', 'unknown')"),
        ),
        # An echo's "did AutoDM send this?": by message id, or the account's same text.
        Index("ix_dm_sends_account_message", "account_id", "provider_message_id"),
        Index("ix_dm_sends_account_text", "account_id", "text_sha256"),
    )


# Read receipts name the DM by the message id Meta returned when it was sent.
Index("ix_leads_provider_message_id", Lead.provider_message_id)
# A comment's private reply is looked up by comment, whichever lead sent it.
Index("ix_leads_comment_id", Lead.comment_id, postgresql_where=text("comment_id IS NOT NULL"))


class InstagramComment(Base):
    """A comment on a creator's media, from the `comments` webhook: the 7-day window of one
    private reply starts at `commented_at`."""

    __tablename__ = "instagram_comments"

    comment_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[UUID] = mapped_column(
        ForeignKey("social_accounts.id", ondelete="CASCADE"), index=True
    )
    igsid: Mapped[str] = mapped_column(String(32))
    username: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    media_id: Mapped[str | None] = mapped_column(String(64))
    commented_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DataDeletionRequest(Base):
    """A Meta data-deletion callback; the user follows it by its confirmation code. It keeps
    no identifier of the user: `pending` (the topics' records are not truncated yet),
    `completed` or `not_found`, with counts of what was removed."""

    __tablename__ = "data_deletion_requests"
    __table_args__ = (
        Index(
            "ix_data_deletion_requests_pending",
            "requested_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    confirmation_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[UUID | None]
    status: Mapped[str] = mapped_column(String(16))
    summary: Mapped[dict[str, Any]] = mapped_column(
        default=dict, server_default=text("'{}'::jsonb")
    )
    # Topic erasure (services/webhook_ingest/topic_erasure.py): the end offsets it waits for
    # every consumer group to pass ({"topic:partition": offset}), and which of its 2 passes.
    kafka_offsets: Mapped[dict[str, Any] | None]
    kafka_pass: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    requested_at: Mapped[datetime] = mapped_column(server_default=func.now())
    completed_at: Mapped[datetime | None]


class SignedRequestUse(Base):
    """A deauthorize / data-deletion `signed_request` already processed, kept for twice the
    accepted window so a replay is a no-op. `subject` is a hash of the user id."""

    __tablename__ = "signed_request_uses"

    callback: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    issued_at: Mapped[datetime] = mapped_column(primary_key=True)
    confirmation_code: Mapped[str | None] = mapped_column(String(32))
    used_at: Mapped[datetime] = mapped_column(index=True)


class OAuthStateUse(Base):
    """OAuth `state` nonces already redeemed: a state is accepted once."""

    __tablename__ = "oauth_state_uses"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    creator_id: Mapped[UUID]
    used_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)


class WebSession(Base):
    """A signed-in browser: the `autodm_session` cookie holds a random token, this row its
    SHA-256 and who signed in. Sign-out deletes the row, so a copied cookie dies with it."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    creator_id: Mapped[UUID | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LeadFormTokenUse(Base):
    """Public form tokens already spent (by hash): each token brings one submission."""

    __tablename__ = "lead_form_token_uses"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(index=True)


class FormRateCount(Base):
    """Public lead-form submissions per key (hashed client IP, or creator) per one-minute
    window, shared by every API process. Short-lived rows: an UNLOGGED table."""

    __tablename__ = "form_rate_counts"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)


class ApiRateCount(Base):
    """JSON API requests per caller (token subject, and the creator it acts for) per fixed
    window, shared by every API process (services/api/http/rate_limits.py). Short-lived rows:
    an UNLOGGED table."""

    __tablename__ = "api_rate_counts"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    # The creator's id, or "" when the request names none (an admin's cross-creator list).
    creator: Mapped[str] = mapped_column(String(36), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)


class IdempotencyKey(Base):
    """An `Idempotency-Key` of an API caller: the request it was first used with and the
    response it got, so a retried request is answered the same and never acts twice.
    Scoped to (tenant, caller): the creator the request acts for and the token's subject."""

    __tablename__ = "idempotency_keys"

    creator_id: Mapped[UUID] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None]
    locked_at: Mapped[datetime]
    # Indexed for the API's housekeeping, which deletes keys past their TTL.
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)


# --- WhatsApp (Cloud API) -------------------------------------------------------------------


class WhatsAppNumber(Base):
    """A connected WhatsApp Business number: the limits of its own (social_accounts holds
    the phone number id as external_id and the encrypted token)."""

    __tablename__ = "whatsapp_numbers"

    account_id: Mapped[UUID] = mapped_column(
        ForeignKey("social_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    display_phone_number: Mapped[str | None] = mapped_column(String(32))
    waba_id: Mapped[str | None] = mapped_column(String(64))
    # Unique recipients of business-initiated messages per moving 24 h (Meta's tier).
    daily_limit: Mapped[int] = mapped_column(Integer, default=250)
    messages_per_second: Mapped[int] = mapped_column(Integer, default=80)


class WhatsAppTemplate(Base):
    """An approved message template and which lead field fills each body parameter."""

    __tablename__ = "whatsapp_templates"
    __table_args__ = (
        Index(
            "uq_whatsapp_templates_account_name_lang", "account_id", "name", "language", unique=True
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    account_id: Mapped[UUID] = mapped_column(
        ForeignKey("social_accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    # Lead fields in body-parameter order, e.g. ["first_name", "creator_name"].
    parameters: Mapped[list[str]] = mapped_column(JSONB, default=list)
    # approved | rejected (Meta answered 132000/132001: the creator must fix it).
    status: Mapped[str] = mapped_column(String(16), default="approved")
    status_reason: Mapped[str | None] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class WhatsAppContact(Base):
    """A WhatsApp user as one business number knows them: the customer-service window,
    the pair-rate pacing and when they last counted against the daily tier."""

    __tablename__ = "whatsapp_contacts"

    account_id: Mapped[UUID] = mapped_column(
        ForeignKey("social_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    # The contact's key for life: its phone if one was shown when first met, else its BSUID
    # (services/whatsapp_sender/identities.py); it is matched by `user_id`, then `phone`.
    wa_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    profile_name: Mapped[str | None] = mapped_column(String(200))
    last_inbound_at: Mapped[datetime | None]
    # Earliest time the next message to this user may leave (1 per pair interval).
    next_send_at: Mapped[datetime | None]
    # Last business-initiated (template) message: counts toward the tier for 24 h.
    tier_counted_at: Mapped[datetime | None]
    # Meta's business-scoped user id (BSUID), phone digits when shared, username, parent
    # BSUID (managed businesses): a username user may never show a phone (issue 19).
    user_id: Mapped[str | None] = mapped_column(String(160))
    phone: Mapped[str | None] = mapped_column(String(20))
    username: Mapped[str | None] = mapped_column(String(100))
    parent_user_id: Mapped[str | None] = mapped_column(String(160))


Index(
    "ix_whatsapp_contacts_tier",
    WhatsAppContact.account_id,
    WhatsAppContact.tier_counted_at,
)
Index(
    "uq_whatsapp_contacts_user_id",
    WhatsAppContact.account_id,
    WhatsAppContact.user_id,
    unique=True,
    postgresql_where=text("user_id IS NOT NULL"),
)
Index(
    "uq_whatsapp_contacts_phone",
    WhatsAppContact.account_id,
    WhatsAppContact.phone,
    unique=True,
    postgresql_where=text("phone IS NOT NULL"),
)


class WhatsAppMessage(Base):
    """A message the Cloud API accepted: status webhooks name it by wamid only."""

    __tablename__ = "whatsapp_messages"
    __table_args__ = (Index("ix_whatsapp_messages_account_wa_id", "account_id", "wa_id"),)

    wamid: Mapped[str] = mapped_column(String(128), primary_key=True)
    account_id: Mapped[UUID] = mapped_column(ForeignKey("social_accounts.id", ondelete="CASCADE"))
    lead_id: Mapped[UUID] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    creator_id: Mapped[UUID]
    route: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    wa_id: Mapped[str] = mapped_column(String(160))  # the contact's key
    # Known by a status webhook, not by Meta's answer (an ambiguous send reconciled,
    # services/whatsapp_sender/reconciliation.py): never followed by another message.
    reconciled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class WhatsAppStatusBacklog(Base):
    """Status webhooks that arrived before the send that caused them was recorded (Meta
    may call back before its HTTP answer reaches us); applied when the send is recorded."""

    __tablename__ = "whatsapp_status_backlog"
    # A send that timed out looks here for its statuses by the send they name.
    __table_args__ = (
        Index(
            "ix_whatsapp_status_backlog_send_ref",
            "send_ref",
            postgresql_where=text("send_ref IS NOT NULL"),
        ),
        # Statuses that never met their send are deleted (whatsapp_sender/housekeeping.py).
        Index("ix_whatsapp_status_backlog_received_at", "received_at"),
    )

    wamid: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_id: Mapped[UUID] = mapped_column(primary_key=True)
    item: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The send intent's attempt the item's `biz_opaque_callback_data` names, and the number
    # the item came for (services/whatsapp_sender/reconciliation.py).
    send_ref: Mapped[str | None] = mapped_column(String(128))
    account_id: Mapped[UUID | None]
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DeferredSend(Base):
    """A DM that must wait (Instagram: pacing, throttling, a pause, an open breaker,
    transient errors; WhatsApp: pair rate, daily tier, throttling): re-requested on its
    request topic at `not_before` by its sender's poller, never dropped
    (shared/delivery/deferrals.py)."""

    __tablename__ = "deferred_sends"
    __table_args__ = (
        Index("ix_deferred_sends_not_before", "not_before"),
        Index("ix_deferred_sends_recipient", "account_id", "wa_id", "queued_at"),
    )

    lead_id: Mapped[UUID] = mapped_column(
        ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    route: Mapped[str] = mapped_column(String(32), primary_key=True)
    not_before: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200))
    # The request, as its contract serialises it (republished unchanged but for `retries`).
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Consecutive throttling answers (131056 backs off 4^x s).
    retries: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Whom it is for (number, wa_id) and when its lead came: a person's DMs go out in the
    # order their leads came (services/whatsapp_sender/sending.py, `_queue_ahead`).
    account_id: Mapped[UUID | None]
    wa_id: Mapped[str | None] = mapped_column(String(160))
    queued_at: Mapped[datetime | None]
    # Instagram: the delivery headers the re-request carries (x-attempts, where the request
    # was first read, why it waits), so attempts count on and a dead letter names its origin.
    headers: Mapped[dict[str, Any]] = mapped_column(
        default=dict, server_default=text("'{}'::jsonb")
    )


# The name before Instagram deferred here too (migration 0030_deferred_sends).
WhatsAppDeferredSend = DeferredSend


class DeliveryCircuit(Base):
    """A circuit breaker of one sending account or one whole provider (shared.delivery.circuit),
    shared by every sender replica and read by the admin API. `blocked_until` is also the
    throttle signal: no send for the scope before it."""

    __tablename__ = "delivery_circuits"

    scope: Mapped[str] = mapped_column(String(80), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[UUID | None]
    state: Mapped[str] = mapped_column(String(16))
    blocked_until: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[int | None]
    opened_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SendingPause(Base):
    """Kill switch: sending paused globally (scope `global`), for one account (its id) or
    for one creator (`creator:<id>`, every account of theirs).
    Paused DMs wait in the retry topic; nothing is dropped."""

    __tablename__ = "sending_pauses"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    paused_by: Mapped[str] = mapped_column(String(128))
    paused_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DeadLetter(Base):
    """A record of the `dlq` topic, indexed for the admin tools; `replayed_at` makes a
    replay happen once."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_failed_at", "failed_at"),)

    dlq_partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    dlq_offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    original_topic: Mapped[str] = mapped_column(String(128))
    original_partition: Mapped[int | None]
    original_offset: Mapped[int | None] = mapped_column(BigInteger)
    key: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(64))
    error_class: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[int | None]
    detail: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    account_id: Mapped[UUID | None] = mapped_column(index=True)
    lead_id: Mapped[UUID | None]
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    failed_at: Mapped[datetime]
    replayed_at: Mapped[datetime | None]
    replayed_by: Mapped[str | None] = mapped_column(String(128))


class SuppressedContact(Base):
    """A person who must get nothing more from a creator (they wrote STOP, WhatsApp said
    they stopped marketing messages, or the creator marked them): matched by any of the
    identities kept (shared/delivery/suppression.py). Removing the row lifts it."""

    __tablename__ = "suppressed_contacts"
    __table_args__ = tuple(
        Index(
            f"ix_suppressed_contacts_{column}",
            "creator_id",
            column,
            postgresql_where=text(f"{column} IS NOT NULL"),
        )
        for column in ("igsid", "whatsapp", "handle")
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    creator_id: Mapped[UUID] = mapped_column(ForeignKey("creators.id", ondelete="CASCADE"))
    igsid: Mapped[str | None] = mapped_column(String(32))
    whatsapp: Mapped[str | None] = mapped_column(String(64))  # suppression.whatsapp_key
    handle: Mapped[str | None] = mapped_column(String(64))  # Instagram username, lower case
    source: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ConversationTakeover(Base):
    """The creator wrote to this person from the app (an echo AutoDM did not send): the
    conversation is theirs until `until` (shared/delivery/takeover.py)."""

    __tablename__ = "conversation_takeovers"

    account_id: Mapped[UUID] = mapped_column(primary_key=True)
    igsid: Mapped[str] = mapped_column(String(32), primary_key=True)
    creator_id: Mapped[UUID] = mapped_column(ForeignKey("creators.id", ondelete="CASCADE"))
    started_at: Mapped[datetime]
    until: Mapped[datetime]
    message_id: Mapped[str | None] = mapped_column(String(128))
    handed_back_by: Mapped[str | None] = mapped_column(String(255))
