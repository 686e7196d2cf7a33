"""What a conversation's listing says about an `unknown` DM (services/webhook_ingest/
conversations.py), without Instagram: found, provably absent, or Meta cannot tell."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from services.webhook_ingest.conversations import CannotTell, NotSent, Pace, Sent, look_up
from shared.db.models import DmSend
from shared.delivery.ambiguous_sends import text_digest
from shared.providers.instagram import ListedMessage, MessageDetail

ACCOUNT, IGSID, TEXT = "17841400000000001", "5550001", "Hi Ana, here is the guide!"
SENT_AT = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Conversation:
    """The Conversations API of one conversation, newest first, as Instagram lists it."""

    def __init__(self, details: list[MessageDetail], exists: bool = True) -> None:
        self.details = sorted(details, key=lambda d: d.created_at, reverse=True)
        self.exists = exists
        self.detail_calls = 0

    async def conversation_with(self, *_: Any) -> str | None:
        return "aWdfdconv" if self.exists else None

    async def messages(self, *_: Any) -> list[ListedMessage]:
        return [ListedMessage(d.message_id, d.created_at) for d in self.details[:20]]

    async def message(self, message_id: str, _: str) -> MessageDetail:
        self.detail_calls += 1
        return next(d for d in self.details if d.message_id == message_id)


def _intent() -> DmSend:
    return DmSend(
        lead_id=uuid4(),
        route="ig_dm",
        state="unknown",
        recipient_igsid=IGSID,
        text_sha256=text_digest(TEXT),
        created_at=SENT_AT,
    )


def _message(n: int, minutes: float, text: str = "hey", ours: bool = False) -> MessageDetail:
    sender, recipient = (ACCOUNT, IGSID) if ours else (IGSID, ACCOUNT)
    at = SENT_AT + timedelta(minutes=minutes)
    return MessageDetail(f"m_{n}", at, sender, (recipient,), text)


async def _look(conversation: Conversation) -> Any:
    return await look_up(conversation, ACCOUNT, "token", _intent(), Pace(1000.0))  # type: ignore[arg-type]


async def test_our_message_is_found_with_its_id() -> None:
    conversation = Conversation(
        [_message(1, -60), _message(2, 0.01, TEXT, ours=True), _message(3, 1)]
    )
    assert await _look(conversation) == Sent("m_2")


async def test_the_same_text_from_the_person_is_not_ours() -> None:
    conversation = Conversation([_message(1, -60), _message(2, 0.01, TEXT)])
    assert await _look(conversation) == NotSent()


async def test_absent_from_a_listing_that_reaches_back_past_the_send_is_not_sent() -> None:
    conversation = Conversation([_message(1, -60), _message(2, 1, "another text", ours=True)])
    assert await _look(conversation) == NotSent()
    assert conversation.detail_calls == 1  # only what was created since the send


async def test_twenty_newer_messages_hide_the_send_meta_cannot_tell() -> None:
    conversation = Conversation([_message(n, 1 + n) for n in range(25)])
    assert isinstance(await _look(conversation), CannotTell)


async def test_no_conversation_cannot_tell() -> None:
    assert isinstance(await _look(Conversation([], exists=False)), CannotTell)


@pytest.mark.parametrize("per_s", [2.0, 1.5])
async def test_pace_spaces_calls(per_s: float) -> None:
    pace = Pace(per_s)
    started = time.monotonic()
    for _ in range(3):
        await pace.wait()
    assert time.monotonic() - started >= 2 / per_s - 0.01
