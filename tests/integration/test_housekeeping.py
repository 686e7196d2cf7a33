"""Housekeeping on real PostgreSQL: what expired goes, what may still matter stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.workers.housekeeping import PROCESSED_EVENT_RETENTION, Retention, api_sweeps
from services.whatsapp_sender.housekeeping import whatsapp_sweeps
from shared.contracts.topics import TOPICS
from shared.db.models import (
    ApiRateCount,
    FormRateCount,
    IdempotencyKey,
    OAuthStateUse,
    OutboxRecord,
    ProcessedEvent,
    WhatsAppStatusBacklog,
)
from shared.db.retention import sweep_all

pytestmark = pytest.mark.integration

RETENTION = Retention(
    idempotency_keys=timedelta(hours=24),
    oauth_states=timedelta(minutes=10),
    published_outbox=timedelta(hours=24),
)
SWEEPS = api_sweeps(RETENTION)


def _key(owner: str, created_at: datetime) -> IdempotencyKey:
    return IdempotencyKey(
        creator_id=uuid4(),
        owner=owner,
        key=uuid4().hex,
        request_hash="0" * 64,
        state="done",
        status_code=201,
        response_body={},
        locked_at=created_at,
        created_at=created_at,
    )


async def test_a_sweep_deletes_only_what_expired(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    owner = f"housekeeping-{uuid4().hex[:8]}"
    fresh_nonce, old_nonce = uuid4().hex, uuid4().hex
    async with sessions.begin() as session:
        session.add_all([_key(owner, now - timedelta(hours=25)) for _ in range(3)])
        session.add(kept := _key(owner, now - timedelta(hours=23)))
        session.add(
            OAuthStateUse(nonce=old_nonce, creator_id=uuid4(), used_at=now - timedelta(minutes=11))
        )
        session.add(
            OAuthStateUse(nonce=fresh_nonce, creator_id=uuid4(), used_at=now - timedelta(minutes=9))
        )
        for minutes_ago in (0, 1, 2, 3):
            start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
            session.add(FormRateCount(key=f"creator:{owner}", window_start=start, hits=1))

    removed = await sweep_all(sessions, SWEEPS, now)

    assert removed["idempotency_keys"] >= 3 and removed["oauth_state_uses"] >= 1
    async with sessions() as session:
        keys = set(
            await session.scalars(select(IdempotencyKey.key).where(IdempotencyKey.owner == owner))
        )
        nonces = set(
            await session.scalars(
                select(OAuthStateUse.nonce).where(OAuthStateUse.nonce.in_([old_nonce, fresh_nonce]))
            )
        )
        windows = (
            await session.scalars(
                select(FormRateCount.window_start).where(FormRateCount.key == f"creator:{owner}")
            )
        ).all()
    assert keys == {kept.key}
    assert nonces == {fresh_nonce}
    assert len(windows) == 2  # this window and the previous one: the sliding estimate's
    assert (await sweep_all(sessions, SWEEPS, now))["idempotency_keys"] == 0


async def test_api_rate_counts_go_once_their_window_has_ended(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now, subject = datetime.now(UTC), f"hk-{uuid4().hex[:12]}"
    current = now.replace(second=0, microsecond=0)
    async with sessions.begin() as session:
        for start in (current, current - timedelta(minutes=1), current - timedelta(minutes=2)):
            session.add(ApiRateCount(subject=subject, creator="", window_start=start, hits=1))

    assert (await sweep_all(sessions, SWEEPS, now))["api_rate_counts"] >= 1

    async with sessions() as session:
        left = set(
            await session.scalars(
                select(ApiRateCount.window_start).where(ApiRateCount.subject == subject)
            )
        )
    # The window one minute back ended less than a minute ago at most, or exactly: only the
    # one two minutes back is surely done with.
    assert current in left and current - timedelta(minutes=2) not in left


def _outbox(marker: str, created_at: datetime, published_at: datetime | None) -> OutboxRecord:
    return OutboxRecord(
        topic="leads.created",
        key=marker,
        payload=b"{}",
        correlation_id=marker,
        created_at=created_at,
        published_at=published_at,
    )


async def test_published_outbox_rows_go_after_their_retention_unpublished_ones_never(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now, marker = datetime.now(UTC), f"hk-{uuid4().hex[:12]}"
    day = timedelta(hours=24)
    async with sessions.begin() as session:
        session.add(_outbox(marker, now - 3 * day, now - 3 * day + timedelta(seconds=1)))
        session.add(fresh := _outbox(marker, now - 2 * day, now - timedelta(hours=23)))
        # Kafka was down for days: the row must wait for the relay, however old it is.
        session.add(waiting := _outbox(marker, now - 3 * day, None))

    assert (await sweep_all(sessions, SWEEPS, now))["outbox"] >= 1

    async with sessions() as session:
        left = set(await session.scalars(select(OutboxRecord.id).where(OutboxRecord.key == marker)))
    assert left == {fresh.id, waiting.id}


async def test_a_claim_outlives_every_topic_that_could_redeliver_its_event(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    longest = timedelta(milliseconds=max(spec.retention_ms for spec in TOPICS))
    assert longest < PROCESSED_EVENT_RETENTION
    now, consumer = datetime.now(UTC), f"hk-{uuid4().hex[:12]}"
    async with sessions.begin() as session:
        session.add(ProcessedEvent(consumer=consumer, event_id=uuid4(), processed_at=now - longest))
        session.add(
            gone := ProcessedEvent(
                consumer=consumer,
                event_id=uuid4(),
                processed_at=now - PROCESSED_EVENT_RETENTION - timedelta(minutes=1),
            )
        )

    assert (await sweep_all(sessions, SWEEPS, now))["processed_events"] >= 1

    async with sessions() as session:
        left = set(
            await session.scalars(
                select(ProcessedEvent.event_id).where(ProcessedEvent.consumer == consumer)
            )
        )
    assert len(left) == 1 and gone.event_id not in left


async def test_whatsapp_statuses_that_never_met_their_send_go_after_the_retention(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now, wamid = datetime.now(UTC), f"wamid.hk{uuid4().hex}"
    week = timedelta(days=7)
    async with sessions.begin() as session:
        for age in (week + timedelta(minutes=1), week - timedelta(minutes=1)):
            session.add(
                WhatsAppStatusBacklog(
                    wamid=wamid, event_id=uuid4(), item={"id": wamid}, received_at=now - age
                )
            )

    removed = await sweep_all(sessions, whatsapp_sweeps(week), now)

    assert removed["whatsapp_status_backlog"] >= 1
    async with sessions() as session:
        left = (
            await session.scalars(
                select(WhatsAppStatusBacklog.received_at).where(
                    WhatsAppStatusBacklog.wamid == wamid
                )
            )
        ).all()
    assert left == [now - week + timedelta(minutes=1)]
