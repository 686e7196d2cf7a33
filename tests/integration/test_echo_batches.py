"""A batch of Instagram echoes on the real database (services/webhook_ingest/echoes.py):
one look-up for all of them settles the right ambiguous sends, leaves AutoDM's own echoes
alone and hands the conversation of the human-typed one to the creator, as echo by echo."""

from __future__ import annotations

import random
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.api.http.schemas import LeadIn
from services.api.service_layer.leads import create_lead
from services.webhook_ingest.inbound import handle_webhooks
from shared.contracts.events import InstagramWebhookReceived
from shared.contracts.lifecycle import DmStatus, Route
from shared.db.models import ConversationTakeover, DmSend
from shared.delivery.ambiguous_sends import text_digest
from tests.fake_uow import SessionWork
from tests.integration.conftest import connect_instagram
from tests.integration.outboxed import outboxed_statuses
from tests.records import instagram_echo
from tests.settings import AllSettings
from tests.sql_statements import selects_from, statements

pytestmark = pytest.mark.integration


class Account:
    def __init__(self, creator: UUID, account: UUID, ig_id: str) -> None:
        self.creator, self.account, self.ig_id = creator, account, ig_id

    def echo(self, igsid: str, mid: str, text: str) -> InstagramWebhookReceived:
        return instagram_echo(self.creator, self.account, self.ig_id, igsid, mid, text)


@pytest.fixture
async def account(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> Account:
    ig_id = str(random.randint(17_841_400_000_000_000, 17_841_499_999_999_999))
    account_id = await connect_instagram(sessions, settings, creator, ig_id, f"eb{ig_id[-6:]}", "t")
    return Account(creator, account_id, ig_id)


async def _lead_with_intent(
    sessions: async_sessionmaker[AsyncSession],
    a: Account,
    text: str,
    state: str,
    mid: str | None = None,
) -> tuple[UUID, str]:
    """A lead and its send intent in `state`; returns (lead id, the person's IGSID)."""
    igsid = str(random.randint(10**15, 10**16 - 1))
    data = LeadIn.model_validate(
        {"creator_id": a.creator, "name": "Ana", "instagram": {"username": "ana", "igsid": igsid}}
    )
    async with sessions.begin() as session:
        lead = await create_lead(SessionWork(session), data, "echo-batch-test")
        session.add(
            DmSend(
                lead_id=lead.id,
                route=Route.IG_DM,
                state=state,
                account_id=a.account,
                recipient_igsid=igsid,
                text_sha256=text_digest(text),
                provider_message_id=mid,
            )
        )
    return lead.id, igsid


async def _intent(sessions: async_sessionmaker[AsyncSession], lead: UUID) -> tuple[str, Any]:
    async with sessions() as session:
        intent = await session.get(DmSend, (lead, Route.IG_DM))
    assert intent is not None
    return intent.state, intent.provider_message_id


async def _taken_over(sessions: async_sessionmaker[AsyncSession], a: Account) -> set[str]:
    async with sessions() as session:
        rows = await session.scalars(
            select(ConversationTakeover.igsid).where(ConversationTakeover.account_id == a.account)
        )
        return set(rows)


def dm_sends_reads(sent: list[str]) -> list[str]:
    """The SELECTs on dm_sends among `sent` (not the pending leads' query of a takeover,
    whose filter looks at dm_sends too)."""
    return [sql for sql in selects_from("dm_sends", sent) if "FROM leads" not in sql]


async def test_one_batch_of_echoes_settles_the_ambiguous_sends_and_flags_the_typed_one(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine, account: Account
) -> None:
    a = account
    unknown, unknown_igsid = await _lead_with_intent(sessions, a, "Hi Ana (1)", "unknown")
    sending, sending_igsid = await _lead_with_intent(sessions, a, "Hi Ana (2)", "sending")
    sent, sent_igsid = await _lead_with_intent(sessions, a, "Hi Ana (3)", "sent", "mid.sent")
    # Same text as `sent`'s, to another person, mid not recorded yet: still ours by its text.
    later, later_igsid = await _lead_with_intent(sessions, a, "Hi Ana (4)", "sent")
    batch = [
        a.echo(unknown_igsid, "mid.unknown", "Hi Ana (1)"),
        a.echo(sent_igsid, "mid.sent", "Hi Ana (3)"),
        a.echo(sent_igsid, "mid.typed", "hey, it's me, from the app"),
        a.echo(sending_igsid, "mid.sending", "Hi Ana (2)"),
        a.echo(later_igsid, "mid.later", "Hi Ana (4)"),
    ]
    with statements(engine) as sql:
        async with sessions.begin() as session:
            assert await handle_webhooks(SessionWork(session), batch) == 5
    reads = dm_sends_reads(sql)
    # One look-up for the five echoes and one lock of the two unsettled intents (echo by
    # echo it was two statements each).
    assert len(reads) == 2, reads
    assert await _intent(sessions, unknown) == ("sent", "mid.unknown")
    [status] = [e.payload for e in await outboxed_statuses(sessions, unknown)]
    assert (status.status, status.provider_message_id) == (DmStatus.SENT, "mid.unknown")
    # A `sending` intent only gets the id: its sender settles it.
    assert await _intent(sessions, sending) == ("sending", "mid.sending")
    assert await _intent(sessions, sent) == ("sent", "mid.sent")
    assert await _intent(sessions, later) == ("sent", None)
    assert await _taken_over(sessions, a) == {sent_igsid}  # the typed message only


async def test_two_echoes_of_one_batch_settle_two_identical_ambiguous_sends(
    sessions: async_sessionmaker[AsyncSession], account: Account
) -> None:
    # The same text twice to one person, both ambiguous: each echo settles one of them
    # (the second takes the per-echo path), as two batches of one would.
    a = account
    first, igsid = await _lead_with_intent(sessions, a, "Hi again", "unknown")
    data = LeadIn.model_validate(
        {"creator_id": a.creator, "name": "Ana", "instagram": {"username": "ana", "igsid": igsid}}
    )
    async with sessions.begin() as session:
        lead = await create_lead(SessionWork(session), data, "echo-batch-test")
        session.add(
            DmSend(
                lead_id=lead.id,
                route=Route.IG_DM,
                state="unknown",
                account_id=a.account,
                recipient_igsid=igsid,
                text_sha256=text_digest("Hi again"),
            )
        )
    second = lead.id
    batch = [a.echo(igsid, "mid.one", "Hi again"), a.echo(igsid, "mid.two", "Hi again")]
    async with sessions.begin() as session:
        assert await handle_webhooks(SessionWork(session), batch) == 2
    states = {await _intent(sessions, first), await _intent(sessions, second)}
    assert states == {("sent", "mid.one"), ("sent", "mid.two")}
    assert await _taken_over(sessions, a) == set()


async def test_a_redelivered_batch_of_echoes_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], account: Account
) -> None:
    a = account
    unknown, igsid = await _lead_with_intent(sessions, a, "Hi Bo", "unknown")
    batch = [a.echo(igsid, "mid.bo", "Hi Bo"), a.echo(igsid, "mid.typed.bo", "typed")]
    for _ in range(2):
        async with sessions.begin() as session:
            await handle_webhooks(SessionWork(session), batch)
    assert await _intent(sessions, unknown) == ("sent", "mid.bo")
    assert len(await outboxed_statuses(sessions, unknown)) == 1
    assert await _taken_over(sessions, a) == {igsid}


async def test_the_echo_of_a_settled_send_does_not_settle_another_with_the_same_text(
    sessions: async_sessionmaker[AsyncSession], account: Account
) -> None:
    # Two DMs with the same text to one person: B went out (its message id recorded), A's
    # answer never came. B's echo is B's, so it must not give A B's message id (A is
    # settled by its own echo, or by the Conversations API).
    a = account
    first, igsid = await _lead_with_intent(sessions, a, "Same text", "unknown")
    data = LeadIn.model_validate(
        {"creator_id": a.creator, "name": "Ana", "instagram": {"username": "ana", "igsid": igsid}}
    )
    async with sessions.begin() as session:
        lead = await create_lead(SessionWork(session), data, "echo-batch-test")
        session.add(
            DmSend(
                lead_id=lead.id,
                route=Route.IG_DM,
                state="sent",
                account_id=a.account,
                recipient_igsid=igsid,
                text_sha256=text_digest("Same text"),
                provider_message_id="mid.b",
            )
        )
    async with sessions.begin() as session:
        await handle_webhooks(SessionWork(session), [a.echo(igsid, "mid.b", "Same text")])
    assert await _intent(sessions, first) == ("unknown", None)
    assert await _taken_over(sessions, a) == set()
    async with sessions.begin() as session:
        await handle_webhooks(SessionWork(session), [a.echo(igsid, "mid.a", "Same text")])
    assert await _intent(sessions, first) == ("sent", "mid.a")
