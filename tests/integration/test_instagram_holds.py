"""The hold check of the Instagram sender's batches (services/instagram_sender/holds.py,
shared.delivery.dm_guard) on the real database: a batch reads its DMs' holds once, not per
DM, and still holds an opted-out person and one the creator is writing to; a read older
than its maximum age is read again, so an opt-out that came mid-batch holds the DMs after
it; suppressions and takeovers are one query."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.instagram_sender.batch import jobs_of, send_batch
from shared.contracts.events import DmRequested, utcnow
from shared.contracts.lifecycle import DmStatus
from shared.db.models import ConversationTakeover, Lead, SuppressedContact
from shared.delivery.dm_guard import held_leads
from shared.delivery.reasons import CREATOR_REPLIED, OPTED_OUT
from shared.providers.instagram import SentMessage
from tests.integration.test_instagram_batch import (
    ScriptedInstagram,
    World,
    _account,
    _records,
    _request,
)
from tests.settings import AllSettings
from tests.sql_statements import selects_from, statements

pytestmark = pytest.mark.integration


async def _opt_out(sessions: async_sessionmaker[AsyncSession], creator: UUID, igsid: str) -> None:
    async with sessions.begin() as session:
        session.add(
            SuppressedContact(
                id=uuid4(), creator_id=creator, igsid=igsid, source="test", created_by="test"
            )
        )


async def _take_over(
    sessions: async_sessionmaker[AsyncSession], creator: UUID, account: UUID, igsid: str
) -> None:
    async with sessions.begin() as session:
        session.add(
            ConversationTakeover(
                account_id=account,
                igsid=igsid,
                creator_id=creator,
                started_at=utcnow(),
                until=utcnow() + timedelta(hours=1),
            )
        )


def _skip_reason(world: World, request: DmRequested) -> str | None:
    (skipped,) = [
        e
        for e in world.published
        if e.payload.lead_id == request.payload.lead_id and e.payload.status == DmStatus.SKIPPED
    ]
    return skipped.payload.reason


async def test_a_batch_reads_its_holds_once_and_holds_the_opted_out_and_the_taken_over(
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings: AllSettings,
    creator: UUID,
) -> None:
    world = World(sessions, settings)
    account, ig = await _account(world, creator)
    requests = [await _request(world, creator, account, f"71{i}") for i in range(5)]
    await _opt_out(sessions, creator, "711")
    await _take_over(sessions, creator, account, "713")
    client = ScriptedInstagram({})
    # The batch's read serves every DM however slowly this machine sends them.
    deps = replace(world.deps(client), hold_max_age_s=3600.0)
    records = _records([r.model_dump_json().encode() for r in requests])

    with statements(engine) as seen:
        await send_batch(deps, await jobs_of(records, world.park), world.park)

    assert client.calls == [(ig, "710"), (ig, "712"), (ig, "714")]
    assert _skip_reason(world, requests[1]) == OPTED_OUT
    assert _skip_reason(world, requests[3]) == CREATOR_REPLIED
    for sent in (requests[0], requests[2], requests[4]):
        assert world.statuses(sent.payload.lead_id) == [DmStatus.SENDING, DmStatus.SENT]
    # One read of the leads, suppressions and takeovers for the five DMs, not one per DM.
    assert len(selects_from("suppressed_contacts", seen)) == 1
    assert len(selects_from("conversation_takeovers", seen)) == 1
    assert len(selects_from("leads", seen)) == 1


async def test_a_read_older_than_its_age_is_read_again_and_holds_a_later_opt_out(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    """The person of the second DM opts out while the first is being sent: with reads at
    most 0 s old the second DM's send reads again and is held."""
    world = World(sessions, settings)
    account, ig = await _account(world, creator)
    first, second = [await _request(world, creator, account, f"72{i}") for i in range(2)]

    class OptOutDuringFirst(ScriptedInstagram):
        async def send_text(
            self, account_ig_id: str, token: str, text: str, **to: str | None
        ) -> SentMessage:
            if to.get("igsid") == "720":
                await _opt_out(sessions, creator, "721")
            return await super().send_text(account_ig_id, token, text, **to)

    client = OptOutDuringFirst({})
    deps = replace(world.deps(client), hold_max_age_s=0.0)
    records = _records([r.model_dump_json().encode() for r in (first, second)])

    await send_batch(deps, await jobs_of(records, world.park), world.park)

    assert client.calls == [(ig, "720")]
    assert world.statuses(first.payload.lead_id) == [DmStatus.SENDING, DmStatus.SENT]
    assert _skip_reason(world, second) == OPTED_OUT


async def test_suppressions_and_takeovers_are_one_query_an_opt_out_first(
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings: AllSettings,
    creator: UUID,
) -> None:
    world = World(sessions, settings)
    account, _ = await _account(world, creator)
    both, taken, opted, free = [await _request(world, creator, account, f"73{i}") for i in range(4)]
    for igsid in ("730", "732"):
        await _opt_out(sessions, creator, igsid)
    for igsid in ("730", "731"):
        await _take_over(sessions, creator, account, igsid)
    ids = [r.payload.lead_id for r in (both, taken, opted, free)]
    async with sessions() as session:
        leads = [await session.get(Lead, lead_id) for lead_id in ids]
        with statements(engine) as seen:
            held = await held_leads(session, [lead for lead in leads if lead], utcnow())

    assert held == {ids[0]: OPTED_OUT, ids[1]: CREATOR_REPLIED, ids[2]: OPTED_OUT}
    assert len(seen) == 1
