"""The Instagram sender's batch path (services/instagram_sender/batch.py) on the real
database: a batch with a duplicate, a malformed record, an expired token and a throttled
account in it sends each DM at most once, parks exactly the bad records one by one, and
defers the throttled account's DMs without calling Instagram again; a deferred DM comes
back through the request topic when due and goes out once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.schemas import LeadIn
from services.api.service_layer.leads import create_lead
from services.instagram_sender.batch import jobs_of, send_batch
from services.instagram_sender.sending import RetryPolicy, SenderDeps
from shared.contracts.events import (
    DmRequested,
    DmRequestedPayload,
    DmStatusChanged,
    Recipient,
    utcnow,
)
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.topics import DM_REQUESTED_INSTAGRAM
from shared.db.models import DeferredSend, DmSend, SocialAccount
from shared.delivery.deferrals import DeferralPoller
from shared.delivery.gate import DeliveryGate
from shared.messaging.dead_letters import H_ATTEMPTS, H_TOPIC, DeliveryFailed
from shared.messaging.delayed_retries import H_DEFERRED_FOR
from shared.platform.crypto import DecryptedTokens, TokenCipher
from shared.providers.instagram import SentMessage
from shared.providers.meta_errors import ErrorClass, MetaError
from tests.fake_uow import SessionWork
from tests.integration.conftest import connect_instagram
from tests.records import consumer_record
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


class ScriptedInstagram:
    """Instagram as the test scripts it: an error per account's external id, or accepted;
    records every call and how many were in flight at once."""

    def __init__(self, errors: dict[str, MetaError]) -> None:
        self.errors = errors
        self.calls: list[tuple[str, str | None]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def send_text(
        self, account_ig_id: str, token: str, text: str, **to: str | None
    ) -> SentMessage:
        self.calls.append((account_ig_id, to.get("igsid")))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.02)
        finally:
            self.in_flight -= 1
        if account_ig_id in self.errors:
            raise self.errors[account_ig_id]
        return SentMessage(message_id=f"m_{uuid4().hex}", recipient_id=to.get("igsid"))


class World:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: AllSettings) -> None:
        self.sessions, self.settings = sessions, settings
        self.published: list[DmStatusChanged] = []
        self.parked: list[tuple[int, BaseException]] = []

    def deps(self, client: ScriptedInstagram) -> SenderDeps:
        async def publish(event: DmStatusChanged) -> None:
            self.published.append(event)

        return SenderDeps(
            sessions=self.sessions,
            client=client,  # type: ignore[arg-type]
            tokens=DecryptedTokens(TokenCipher.from_settings(self.settings)),
            publish=publish,
            gate=DeliveryGate(self.sessions, Provider.INSTAGRAM, self.settings),
            policy=RetryPolicy(max_inline_wait_s=0),
            fast_retries=1,
            concurrency=4,
        )

    async def park(self, record: ConsumerRecord[Any, Any], exc: BaseException) -> None:
        self.parked.append((record.offset, exc))

    def statuses(self, lead_id: UUID) -> list[DmStatus]:
        return [e.payload.status for e in self.published if e.payload.lead_id == lead_id]

    async def deferred(self, *requests: DmRequested) -> list[DeferredSend]:
        async with self.sessions() as session:
            rows = [
                await session.get(DeferredSend, (r.payload.lead_id, r.payload.route))
                for r in requests
            ]
        return [row for row in rows if row is not None]


async def _account(world: World, creator: UUID) -> tuple[UUID, str]:
    external = uuid4().hex[:16]
    account = await connect_instagram(
        world.sessions, world.settings, creator, external, "shop", "token"
    )
    return account, external


async def _request(world: World, creator: UUID, account: UUID, igsid: str) -> DmRequested:
    async with world.sessions.begin() as session:
        lead = await create_lead(
            SessionWork(session),
            LeadIn(creator_id=creator, name="Ann", instagram={"igsid": igsid}),
            "b",
        )
    return DmRequested(
        correlation_id="batch",
        creator_id=creator,
        payload=DmRequestedPayload(
            lead_id=lead.id,
            route=Route.IG_DM,
            provider=Provider.INSTAGRAM,
            account_id=account,
            recipient=Recipient(igsid=igsid),
            text="Hi Ann",
        ),
    )


def _records(values: list[bytes]) -> list[ConsumerRecord[Any, Any]]:
    return [consumer_record(v, offset, DM_REQUESTED_INSTAGRAM) for offset, v in enumerate(values)]


async def _intent(world: World, lead_id: UUID) -> DmSend | None:
    async with world.sessions() as session:
        return await session.get(DmSend, (lead_id, Route.IG_DM))


async def test_a_mixed_batch_sends_once_parks_alone_and_defers_the_throttled_account(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    world = World(sessions, settings)
    (ok, ok_ig), (hot, hot_ig), (expired, expired_ig) = [
        await _account(world, creator) for _ in range(3)
    ]
    first = await _request(world, creator, ok, "101")
    second = await _request(world, creator, ok, "102")
    hot_first = await _request(world, creator, hot, "201")
    hot_second = await _request(world, creator, hot, "202")
    stale = await _request(world, creator, expired, "301")
    stale_later = await _request(world, creator, expired, "302")
    client = ScriptedInstagram(
        {
            hot_ig: MetaError(ErrorClass.THROTTLED, "slow down", code=613, retry_after_s=60),
            expired_ig: MetaError(ErrorClass.TOKEN, "expired", code=190),
        }
    )
    values = [
        first.model_dump_json().encode(),
        hot_first.model_dump_json().encode(),
        b"{not json",  # offset 2: malformed
        stale.model_dump_json().encode(),  # offset 3: token expired -> failed, parked
        first.model_dump_json().encode(),  # a redelivery of offset 0 in the same batch
        hot_second.model_dump_json().encode(),
        stale_later.model_dump_json().encode(),
        second.model_dump_json().encode(),
    ]
    records = _records(values)

    await send_batch(world.deps(client), await jobs_of(records, world.park), world.park)

    # Instagram was called once per DM that could go: never for the duplicate, never for
    # the throttled account's second DM, never after the token was found expired.
    assert sorted(client.calls) == sorted(
        [(ok_ig, "101"), (ok_ig, "102"), (hot_ig, "201"), (expired_ig, "301")]
    )
    assert client.most_in_flight > 1  # accounts are sent concurrently
    assert [offset for offset, _ in world.parked] == [2, 3]
    failed = world.parked[1][1]
    assert isinstance(failed, DeliveryFailed) and failed.reason == "token"

    assert world.statuses(first.payload.lead_id) == [
        DmStatus.SENDING,
        DmStatus.SENT,
        DmStatus.SENT,  # the duplicate re-announces the outcome
    ]
    assert world.statuses(second.payload.lead_id) == [DmStatus.SENDING, DmStatus.SENT]
    assert world.statuses(stale.payload.lead_id) == [DmStatus.SENDING, DmStatus.FAILED]
    assert world.statuses(stale_later.payload.lead_id) == [DmStatus.SKIPPED]
    assert world.statuses(hot_first.payload.lead_id) == [DmStatus.SENDING]
    assert world.statuses(hot_second.payload.lead_id) == []
    deferred = await world.deferred(hot_first, hot_second)
    assert sorted(row.headers[H_DEFERRED_FOR] for row in deferred) == ["throttled", "throttled"]
    # Where each was first read and how many attempts failed travel with the deferral.
    assert {row.headers[H_TOPIC] for row in deferred} == {DM_REQUESTED_INSTAGRAM}
    assert sorted(row.headers[H_ATTEMPTS] for row in deferred) == ["0", "1"]

    for request, state in [(first, "sent"), (second, "sent"), (hot_second, "deferred")]:
        intent = await _intent(world, request.payload.lead_id)
        assert intent is not None and intent.state == state
    sent = await _intent(world, first.payload.lead_id)
    assert sent is not None and sent.provider_message_id
    async with sessions() as session:
        flagged = await session.get(SocialAccount, expired)
    assert flagged is not None and flagged.status == "reconnect_required"


async def test_a_redelivered_batch_sends_nothing_again(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    world = World(sessions, settings)
    account, _ = await _account(world, creator)
    requests = [await _request(world, creator, account, f"40{i}") for i in range(5)]
    records = _records([r.model_dump_json().encode() for r in requests])
    client = ScriptedInstagram({})
    deps = world.deps(client)

    await send_batch(deps, await jobs_of(records, world.park), world.park)
    await send_batch(deps, await jobs_of(records, world.park), world.park)

    assert len(client.calls) == 5
    assert [c[1] for c in client.calls] == [f"40{i}" for i in range(5)]  # in partition order
    for request in requests:
        assert world.statuses(request.payload.lead_id) == [
            DmStatus.SENDING,
            DmStatus.SENT,
            DmStatus.SENT,
        ]
    assert world.parked == []


async def test_a_send_cut_off_by_an_outage_is_unknown_on_the_retried_batch(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    """Kafka gone while publishing `sending`: the outage is raised for the middleware to
    retry the batch, and no further DM of the batch is claimed meanwhile; the retried
    batch reports the one claimed mid-outage `unknown` and sends the others once."""
    world = World(sessions, settings)
    account, _ = await _account(world, creator)
    requests = [await _request(world, creator, account, f"50{i}") for i in range(3)]
    records = _records([r.model_dump_json().encode() for r in requests])
    client = ScriptedInstagram({})
    deps = world.deps(client)
    healthy = deps.publish
    calls = 0

    async def broken_once(event: DmStatusChanged) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionRefusedError("kafka down")
        await healthy(event)

    down = replace(deps, publish=broken_once)
    with pytest.raises(ConnectionRefusedError):
        await send_batch(down, await jobs_of(records, world.park), world.park)
    assert client.calls == []
    await send_batch(down, await jobs_of(records, world.park), world.park)

    assert world.statuses(requests[0].payload.lead_id) == [DmStatus.UNKNOWN]
    for request in requests[1:]:
        assert world.statuses(request.payload.lead_id) == [DmStatus.SENDING, DmStatus.SENT]
    assert len(client.calls) == 2
    assert world.parked == []


async def test_a_deferred_dm_comes_back_when_due_and_goes_out_once(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    world = World(sessions, settings)
    account, ig = await _account(world, creator)
    request = await _request(world, creator, account, "601")
    throttle = MetaError(ErrorClass.THROTTLED, "slow down", code=613, retry_after_s=0.3)
    client = ScriptedInstagram({ig: throttle})
    deps = world.deps(client)
    records = _records([request.model_dump_json().encode()])
    await send_batch(deps, await jobs_of(records, world.park), world.park)
    (row,) = await world.deferred(request)
    assert (await _intent(world, request.payload.lead_id)).state == "deferred"  # type: ignore[union-attr]

    again: list[tuple[DmRequested, dict[str, str]]] = []

    async def request_again(due: DmRequested, headers: dict[str, str]) -> None:
        if due.payload.lead_id == request.payload.lead_id:  # other tests' rows stay
            again.append((due, headers))

    poller = DeferralPoller(
        sessions, request_again, poll_s=1, routes=[Route.IG_DM], provider="instagram"
    )
    await poller.dispatch_due(row.not_before - timedelta(seconds=1))
    assert again == []  # not due yet
    await asyncio.sleep(0.4)  # Instagram's throttle (0.3 s) is over
    client.errors.clear()
    await poller.dispatch_due(utcnow())
    ((due, headers),) = again
    assert headers[H_ATTEMPTS] == "1" and headers[H_DEFERRED_FOR] == "throttled"

    redelivered = consumer_record(
        due.model_dump_json().encode(), 7, DM_REQUESTED_INSTAGRAM, headers
    )
    await send_batch(deps, await jobs_of([redelivered], world.park), world.park)
    await send_batch(deps, await jobs_of([redelivered], world.park), world.park)  # twice

    assert client.calls == [(ig, "601"), (ig, "601")]  # the throttled try, then the send
    assert world.statuses(request.payload.lead_id) == [
        DmStatus.SENDING,
        DmStatus.SENDING,
        DmStatus.SENT,
        DmStatus.SENT,  # the second re-request re-announces it
    ]
    assert await world.deferred(request) == []  # taken: nothing re-requests it again
    assert world.parked == []
