"""Comment to DM on real Kafka and PostgreSQL: instagram.comments -> the API's comment-leads
consumer -> a lead -> the router -> one private reply request per person, by comment id."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.workers.comment_to_dm import CONSUMER
from shared.contracts import topics
from shared.contracts.events import InstagramCommentPayload, InstagramCommentReceived
from shared.db.models import Creator, Lead, ProcessedEvent, SocialAccount
from shared.messaging.broker import event_headers
from tests.api_app import create_app
from tests.integration.conftest import connect_instagram, running
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


def _ig_id() -> str:
    return str(secrets.randbelow(10**16) + 17841400000000000)


def _comment(
    creator: UUID, account: UUID, igsid: str, text: str, *, days_ago: float = 0
) -> InstagramCommentReceived:
    return InstagramCommentReceived(
        correlation_id=f"comment-{secrets.token_hex(4)}",
        creator_id=creator,
        payload=InstagramCommentPayload(
            account_id=account,
            comment_id=str(secrets.randbelow(10**17) + 17900000000000000),
            igsid=igsid,
            username=f"fan_{igsid[-4:]}",
            text=text,
            media_id="17800000000000001",
            commented_at=datetime.now(UTC) - timedelta(days=days_ago),
        ),
    )


async def _publish(producer: AIOKafkaProducer, event: InstagramCommentReceived) -> None:
    headers = [(k, v.encode()) for k, v in event_headers(event).items()]
    await producer.send_and_wait(
        topics.INSTAGRAM_COMMENTS,
        event.model_dump_json().encode(),
        key=str(event.payload.account_id).encode(),  # as webhook_ingest keys them
        headers=headers,
    )


async def _set_trigger(
    sessions: async_sessionmaker[AsyncSession], creator: UUID, trigger: str, keywords: list[str]
) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(Creator)
            .where(Creator.id == creator)
            .values(comment_trigger=trigger, comment_keywords=keywords)
        )


async def test_keyword_comments_become_leads_once_per_person_and_get_a_private_reply(
    settings: AllSettings,
    creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    read_topic: Any,
) -> None:
    account = await connect_instagram(sessions, settings, creator, _ig_id(), "shop", "tok")
    await _set_trigger(sessions, creator, "keywords", ["guide", "send it"])
    requests = await read_topic(topics.DM_REQUESTED_INSTAGRAM)
    ann, bo, cy = "9000000000001", "9000000000002", "9000000000003"
    wants = _comment(creator, account, ann, "GUIDE please 🙏")
    comments = [
        _comment(creator, account, ann, "love these guidelines"),  # no keyword: no lead
        wants,
        wants,  # redelivered: still one lead
        _comment(creator, account, ann, "guide? guide!"),  # same person, same day: no lead
        _comment(creator, account, cy, "guide", days_ago=8),  # too late for a private reply
        _comment(creator, account, bo, "Please send it to me"),
    ]
    before = _outcomes()
    app = create_app(settings)
    async with running(app):
        for comment in comments:
            await _publish(producer, comment)
        # One partition (keyed by account), in order: Bo's comes last.
        bo_request = await requests.wait_for(
            lambda r: (
                json.loads(r.value)["payload"]["recipient"]["comment_id"]
                == comments[-1].payload.comment_id
            )
        )
        ann_request = await requests.wait_for(
            lambda r: (
                json.loads(r.value)["payload"]["recipient"]["comment_id"]
                == wants.payload.comment_id
            )
        )

    async with sessions() as session:
        leads = (await session.scalars(select(Lead).where(Lead.creator_id == creator))).all()
    assert sorted((lead.igsid, lead.comment_id) for lead in leads) == [
        (ann, wants.payload.comment_id),
        (bo, comments[-1].payload.comment_id),
    ]
    ann_lead = next(lead for lead in leads if lead.igsid == ann)
    assert (ann_lead.name, ann_lead.message) == (f"fan_{ann[-4:]}", "GUIDE please 🙏")
    body = json.loads(ann_request.value)["payload"]
    assert body["route"] == "ig_private_reply"
    assert body["text"] == f"Hi fan_{ann[-4:]}, here is the guide!"
    assert json.loads(bo_request.value)["payload"]["route"] == "ig_private_reply"
    assert ann_request.key == str(account).encode()
    counted = {k: v - before[k] for k, v in _outcomes().items()}
    assert counted == {"lead": 2, "not_counted": 1, "cool_down": 1, "too_old": 1}


def _outcomes() -> dict[str, float]:
    """autodm_comment_leads_total by outcome (the API runs in this process)."""
    return {
        outcome: REGISTRY.get_sample_value("autodm_comment_leads_total", {"outcome": outcome})
        or 0.0
        for outcome in ("lead", "not_counted", "cool_down", "too_old")
    }


async def test_with_comment_to_dm_off_no_comment_becomes_a_lead(
    settings: AllSettings,
    creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    read_topic: Any,
) -> None:
    account = await connect_instagram(sessions, settings, creator, _ig_id(), "shop", "tok")
    await _set_trigger(sessions, creator, "off", ["guide"])
    created = await read_topic(topics.LEADS_CREATED)
    ignored = _comment(creator, account, "9000000000004", "guide")
    app = create_app(settings)
    async with running(app):
        await _publish(producer, ignored)
        await _handled(sessions, ignored)
        # The control: with the trigger on, the next comment is a lead.
        await _set_trigger(sessions, creator, "any", [])
        control = _comment(creator, account, "9000000000005", "nice")
        await _publish(producer, control)
        await created.wait_for(lambda r: json.loads(r.value)["creator_id"] == str(creator))

    async with sessions() as session:
        leads = (await session.scalars(select(Lead).where(Lead.creator_id == creator))).all()
    assert [lead.comment_id for lead in leads] == [control.payload.comment_id]


async def _handled(
    sessions: async_sessionmaker[AsyncSession], event: InstagramCommentReceived
) -> None:
    """Until the consumer has claimed the event (committed with whatever it decided)."""
    for _ in range(200):
        async with sessions() as session:
            if await session.get(ProcessedEvent, (CONSUMER, event.id)):
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the comment was not handled within 20 s")


async def test_a_comment_reaching_a_disconnected_account_makes_no_lead(
    settings: AllSettings,
    creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
) -> None:
    account = await connect_instagram(sessions, settings, creator, _ig_id(), "shop", "tok")
    await _set_trigger(sessions, creator, "any", [])
    async with sessions.begin() as session:
        await session.execute(
            update(SocialAccount).where(SocialAccount.id == account).values(status="disconnected")
        )
    late = _comment(creator, account, "9000000000006", "guide")
    before = REGISTRY.get_sample_value(
        "autodm_comment_leads_total", {"outcome": "account_disconnected"}
    )
    async with running(create_app(settings)):
        await _publish(producer, late)
        await _handled(sessions, late)

    async with sessions() as session:
        assert (await session.scalars(select(Lead).where(Lead.creator_id == creator))).all() == []
    after = REGISTRY.get_sample_value(
        "autodm_comment_leads_total", {"outcome": "account_disconnected"}
    )
    assert (after or 0) - (before or 0) == 1
