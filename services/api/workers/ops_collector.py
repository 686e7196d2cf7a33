"""Operational gauges that no single handler sees: consumer lag per group, the depth of the
retry and dead-letter topics, how soon Instagram tokens expire, and how many of those expiring
soon could not be refreshed (shared.accounts.token_health).

One pass reads every registry topic's start and end offsets (two ListOffsets requests),
each `autodm-*` group's committed offsets (one OffsetFetch per group) and three aggregate
queries on social_accounts; it runs every `ops_collector_interval_s` in the API process,
so its cost is bounded by the number of groups and topics, not by traffic. Several API
replicas report the same values: dashboards and alerts take `max` over instances.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.accounts.token_health import count_unrefreshed
from shared.contracts.events import utcnow
from shared.contracts.topics import DLQ, TOPICS
from shared.db.models import SocialAccount
from shared.platform.logs import get_logger
from shared.platform.metrics import (
    COLLECTOR_LAST_SUCCESS,
    CONSUMER_LAG,
    TOKEN_EXPIRY_ACCOUNTS,
    TOKEN_EXPIRY_BUCKETS_DAYS,
    TOKEN_EXPIRY_SOONEST,
    TOKENS_UNREFRESHED,
    TOPIC_RECORDS,
)
from shared.platform.outage_log import OutageLog

log = get_logger(__name__)

GROUP_PREFIX = "autodm-"
SOONEST_TOKENS = 5


def is_parked_topic(name: str) -> bool:
    """Topics whose depth matters by itself: the DLQ and every retry topic."""
    return name == DLQ or "retry" in name or "retries" in name


def lag_by_topic(
    committed: Mapping[TopicPartition, int],
    start: Mapping[TopicPartition, int],
    end: Mapping[TopicPartition, int],
) -> dict[str, int]:
    """Records a group has yet to commit, per topic it consumes.

    A partition of a consumed topic without a commit counts from its start offset (the
    groups read from `earliest`); offsets past the end (a truncated topic) count as 0.
    """
    topics = {tp.topic for tp in committed}
    lag: dict[str, int] = dict.fromkeys(topics, 0)
    for tp, last in end.items():
        if tp.topic in topics:
            position = committed.get(tp, -1)
            position = start.get(tp, 0) if position < 0 else position
            lag[tp.topic] += max(last - position, 0)
    return lag


@dataclass(frozen=True)
class TokenExpiry:
    buckets: dict[tuple[str, int], int]  # (provider, within_days) -> accounts
    soonest: list[tuple[str, str, float]]  # (provider, account id, seconds left)


async def token_expiry(sessions: async_sessionmaker[AsyncSession], now: datetime) -> TokenExpiry:
    connected = (SocialAccount.status == "connected") & SocialAccount.token_expires_at.is_not(None)
    counts = [
        func.count().filter(SocialAccount.token_expires_at <= now + timedelta(days=days))
        for days in TOKEN_EXPIRY_BUCKETS_DAYS
    ]
    async with sessions() as session:
        rows = (
            await session.execute(
                select(SocialAccount.provider, *counts)
                .where(connected)
                .group_by(SocialAccount.provider)
            )
        ).all()
        soonest = (
            await session.execute(
                select(SocialAccount.provider, SocialAccount.id, SocialAccount.token_expires_at)
                .where(connected)
                .order_by(SocialAccount.token_expires_at)
                .limit(SOONEST_TOKENS)
            )
        ).all()
    buckets = {
        (row[0], days): int(row[i + 1])
        for row in rows
        for i, days in enumerate(TOKEN_EXPIRY_BUCKETS_DAYS)
    }
    return TokenExpiry(
        buckets=buckets,
        soonest=[(p, str(i), (at - now).total_seconds()) for p, i, at in soonest if at],
    )


class OpsCollector:
    def __init__(
        self,
        bootstrap: str,
        sessions: async_sessionmaker[AsyncSession],
        interval_s: float,
        unrefreshed_within: timedelta = timedelta(days=7),
    ) -> None:
        self._bootstrap = bootstrap
        self._sessions = sessions
        self._interval_s = interval_s
        self._outages = OutageLog("ops_collector")
        self._unrefreshed_within = unrefreshed_within

    async def run_forever(self) -> None:
        while True:
            try:
                await self._run_with_clients()
            except Exception as exc:  # a metrics pass must never take the API down: reconnect
                self._outages.failed(exc, "ops collector pass failed")
                await asyncio.sleep(self._interval_s)

    async def _run_with_clients(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id="autodm-ops")
        offsets = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, client_id="autodm-ops")
        try:
            await admin.start()
            await offsets.start()
            while True:
                await self.collect(admin, offsets)
                self._outages.succeeded()
                await asyncio.sleep(self._interval_s)
        finally:
            await offsets.stop()
            await admin.close()

    async def collect(self, admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer) -> None:
        partitions = [TopicPartition(s.name, p) for s in TOPICS for p in range(s.partitions)]
        start = await offsets.beginning_offsets(partitions)
        end = await offsets.end_offsets(partitions)
        for spec in TOPICS:
            if is_parked_topic(spec.name):
                TOPIC_RECORDS.labels(topic=spec.name).set(_depth(spec.name, start, end))
        for group in await _groups(admin):
            committed = await admin.list_consumer_group_offsets(group)
            commits = {tp: meta.offset for tp, meta in committed.items()}
            for topic, lag in lag_by_topic(commits, start, end).items():
                CONSUMER_LAG.labels(group=group, topic=topic).set(lag)
        self._publish_tokens(await token_expiry(self._sessions, utcnow()))
        async with self._sessions() as session:
            stuck = await count_unrefreshed(session, utcnow(), self._unrefreshed_within)
        TOKENS_UNREFRESHED.labels(provider="instagram").set(stuck)
        COLLECTOR_LAST_SUCCESS.set(time.time())

    @staticmethod
    def _publish_tokens(expiry: TokenExpiry) -> None:
        for (provider, days), accounts in expiry.buckets.items():
            TOKEN_EXPIRY_ACCOUNTS.labels(provider=provider, within_days=str(days)).set(accounts)
        # Clear first: an account that got refreshed must drop out of the soonest list.
        TOKEN_EXPIRY_SOONEST.clear()
        for provider, account_id, seconds in expiry.soonest:
            TOKEN_EXPIRY_SOONEST.labels(provider=provider, account_id=account_id).set(seconds)


def _depth(
    topic: str, start: Mapping[TopicPartition, int], end: Mapping[TopicPartition, int]
) -> int:
    return sum(end[tp] - start.get(tp, 0) for tp in end if tp.topic == topic)


async def _groups(admin: AIOKafkaAdminClient) -> Iterable[str]:
    listed = await admin.list_consumer_groups()
    return sorted(str(g[0]) for g in listed if str(g[0]).startswith(GROUP_PREFIX))
