"""A DM's reason is for the creator: what happened and what to do, never Meta's message or
AutoDM's plumbing (the DLQ). The technical detail rides in the event's `error`, for the
admin. Through the Instagram sender's real path (batch.py/sending.py) on the database."""

from __future__ import annotations

from uuid import UUID

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.instagram_sender.batch import jobs_of, send_batch
from shared.contracts.lifecycle import DmStatus
from shared.db.models import DeliveryCircuit
from shared.delivery.reasons import ACCESS_REFUSED
from shared.providers.meta_errors import ErrorClass, MetaError
from tests.integration.test_instagram_batch import (
    ScriptedInstagram,
    World,
    _account,
    _records,
    _request,
)
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

META_MESSAGE = "Error validating access token: Session has expired on Tuesday, 02-Dec-25."


def _reason(world: World, lead_id: UUID, status: DmStatus) -> tuple[str, str]:
    event = next(
        e for e in world.published if e.payload.lead_id == lead_id and e.payload.status == status
    )
    assert event.payload.reason is not None and event.payload.error is not None
    return event.payload.reason, event.payload.error.message


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (MetaError(ErrorClass.TOKEN, META_MESSAGE, code=190, subcode=463), "Reconnect Instagram"),
        (MetaError(ErrorClass.INVALID, "(#100) Invalid parameter", code=100), "Check your"),
    ],
)
async def test_a_refused_dm_tells_the_creator_what_to_do_and_keeps_metas_words_for_admins(
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
    creator: UUID,
    error: MetaError,
    words: str,
) -> None:
    world = World(sessions, settings)
    account, external = await _account(world, creator)
    first = await _request(world, creator, account, "401")
    later = await _request(world, creator, account, "402")
    client = ScriptedInstagram({external: error})
    values = [first.model_dump_json().encode(), later.model_dump_json().encode()]

    try:
        await send_batch(
            world.deps(client), await jobs_of(_records(values), world.park), world.park
        )
    finally:  # the refusals opened the account's breaker: leave no open breaker behind
        async with sessions.begin() as session:
            await session.execute(
                delete(DeliveryCircuit).where(DeliveryCircuit.account_id == account)
            )

    reason, detail = _reason(world, first.payload.lead_id, DmStatus.FAILED)
    assert words in reason
    for internal in (error.message, "DLQ", str(error.code)):
        assert internal not in reason
    assert detail == error.message  # the admin's detail, stored as dm_error_message
    if error.error_class == ErrorClass.TOKEN:  # the account needs reconnecting now
        (skipped,) = [e for e in world.published if e.payload.lead_id == later.payload.lead_id]
        assert skipped.payload.reason == ACCESS_REFUSED
