"""`unknown` Instagram DMs settled by asking Instagram (the sandbox's Conversations API) on
the real database: the message in the conversation -> `sent` with its id; provably not
there -> `failed`, retryable; Meta unable to tell -> still `unknown`, looked at again later."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbox.app import create_app as create_sandbox
from sandbox.settings import SandboxSettings
from services.api.http.schemas import LeadIn
from services.api.service_layer.leads import create_lead
from services.webhook_ingest.conversations import ConversationReconciler, ReconcilePolicy
from shared.contracts.events import utcnow
from shared.contracts.lifecycle import DmStatus, Route
from shared.db.models import DmSend
from shared.delivery.ambiguous_sends import (
    CONVERSATION_SENT_REASON,
    NOT_SENT_REASON,
    text_digest,
)
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.crypto import DecryptedTokens, TokenCipher
from shared.providers.instagram import InstagramConversations
from tests.fake_uow import SessionWork
from tests.integration.conftest import connect_instagram
from tests.integration.outboxed import outboxed_statuses
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

TEXT = "Hi Ana, here is the guide!"


@pytest.fixture
async def sandbox() -> AsyncIterator[httpx.AsyncClient]:
    app = create_sandbox(SandboxSettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


@pytest.fixture
def reconciler(
    sandbox: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], settings: AllSettings
) -> ConversationReconciler:
    return ConversationReconciler(
        UnitOfWorkFactory(sessions),
        InstagramConversations(sandbox, "v23.0"),
        DecryptedTokens(TokenCipher.from_settings(settings)),
        ReconcilePolicy(after_s=60, max_checks=2, calls_per_s=1.5),
    )


class Case:
    def __init__(self, sandbox: httpx.AsyncClient, account: dict[str, Any], lead: UUID) -> None:
        self.sandbox, self.account, self.lead = sandbox, account, lead

    async def user_writes(self, username: str = "ana") -> str:
        body = {"account_id": self.account["ig_user_id"], "username": username, "text": "hi"}
        written = await self.sandbox.post("/_sandbox/instagram/users/message", json=body)
        return str(written.json()["igsid"])

    async def send(self, igsid: str, text: str = TEXT) -> str:
        body = {"recipient": {"id": igsid}, "message": {"text": text}}
        auth = {"Authorization": f"Bearer {self.account['access_token']}"}
        sent = await self.sandbox.post("/v23.0/me/messages", json=body, headers=auth)
        return str(sent.json()["message_id"])


@pytest.fixture
async def case(
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
    creator: UUID,
) -> Case:
    username = f"shop{creator.hex[:8]}"
    created = (
        await sandbox.post("/_sandbox/instagram/accounts", json={"username": username})
    ).json()
    account_id = await connect_instagram(
        sessions, settings, creator, created["ig_user_id"], username, created["access_token"]
    )
    data = LeadIn.model_validate(
        {"creator_id": creator, "name": "Ana", "instagram": {"username": "ana"}}
    )
    async with sessions.begin() as session:
        lead = await create_lead(SessionWork(session), data, "conversation-test")
    return Case(sandbox, {**created, "account_id": account_id}, lead.id)


async def _unknown(
    sessions: async_sessionmaker[AsyncSession], case: Case, igsid: str, age_s: float = 120
) -> None:
    """The sender's intent as a timed-out send leaves it, `age_s` ago."""
    at = utcnow() - timedelta(seconds=age_s)
    async with sessions.begin() as session:
        session.add(
            DmSend(
                lead_id=case.lead,
                route=Route.IG_DM,
                state="unknown",
                account_id=case.account["account_id"],
                recipient_igsid=igsid,
                text_sha256=text_digest(TEXT),
                created_at=at,
                updated_at=at,
            )
        )


async def _intent(sessions: async_sessionmaker[AsyncSession], case: Case) -> DmSend:
    async with sessions() as session:
        intent = await session.get(DmSend, (case.lead, Route.IG_DM))
    assert intent is not None
    return intent


async def test_a_dm_in_the_conversation_is_settled_sent_with_its_message_id(
    sessions: async_sessionmaker[AsyncSession], case: Case, reconciler: ConversationReconciler
) -> None:
    igsid = await case.user_writes()
    await case.send(igsid, "something else, typed in the app")
    mid = await case.send(igsid)  # reached Instagram; its answer (and echo) were lost
    await _unknown(sessions, case, igsid)

    await reconciler.run_once()

    intent = await _intent(sessions, case)
    assert (intent.state, intent.provider_message_id) == ("sent", mid)
    [status] = await outboxed_statuses(sessions, case.lead)
    assert status.payload.status == DmStatus.SENT
    assert status.payload.provider_message_id == mid
    assert status.payload.reason == CONVERSATION_SENT_REASON


async def test_a_dm_the_conversation_does_not_hold_was_not_sent_and_may_be_retried(
    sessions: async_sessionmaker[AsyncSession], case: Case, reconciler: ConversationReconciler
) -> None:
    igsid = await case.user_writes()
    await _unknown(sessions, case, igsid)  # the request never reached Instagram

    await reconciler.run_once()

    assert (await _intent(sessions, case)).state == "failed"
    [status] = await outboxed_statuses(sessions, case.lead)
    assert status.payload.status == DmStatus.FAILED
    assert status.payload.reason == NOT_SENT_REASON
    # "transient": the creator may retry it (services/api/service_layer/retry_policy.py)
    assert status.payload.error is not None and status.payload.error.error_class == "transient"


async def test_when_instagram_cannot_tell_the_dm_stays_unknown_and_is_asked_again_later(
    sessions: async_sessionmaker[AsyncSession],
    case: Case,
    reconciler: ConversationReconciler,
    sandbox: httpx.AsyncClient,
) -> None:
    igsid = await case.user_writes()
    await case.send(igsid)
    await _unknown(sessions, case, igsid)
    fault = {"error": "5xx", "http_status": 500, "scope": "instagram"}
    (await sandbox.put("/_sandbox/faults", json=fault)).raise_for_status()

    await reconciler.run_once()
    intent = await _intent(sessions, case)
    assert (intent.state, intent.reconcile_checks) == ("unknown", 1)
    assert await outboxed_statuses(sessions, case.lead) == []

    # Not due again yet (each look doubles the wait), even with Instagram back.
    await sandbox.delete("/_sandbox/faults")
    await reconciler.run_once()
    assert (await _intent(sessions, case)).state == "unknown"

    # Due again: Instagram answers now, and the DM was there.
    async with sessions.begin() as session:
        await session.execute(
            update(DmSend)
            .where(DmSend.lead_id == case.lead)
            .values(updated_at=utcnow() - timedelta(seconds=121))
        )
    await reconciler.run_once()
    assert (await _intent(sessions, case)).state == "sent"


async def test_no_conversation_with_the_person_cannot_tell(
    sessions: async_sessionmaker[AsyncSession], case: Case, reconciler: ConversationReconciler
) -> None:
    await _unknown(sessions, case, "5550001234")  # nobody Instagram has a conversation with
    await reconciler.run_once()
    assert (await _intent(sessions, case)).state == "unknown"


async def test_a_settled_or_fresh_dm_is_left_alone(
    sessions: async_sessionmaker[AsyncSession], case: Case, reconciler: ConversationReconciler
) -> None:
    igsid = await case.user_writes()
    await _unknown(sessions, case, igsid, age_s=5)  # its echo may still come: not yet
    await reconciler.run_once()
    intent = await _intent(sessions, case)
    assert (intent.state, intent.reconcile_checks) == ("unknown", 0)
