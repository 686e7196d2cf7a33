"""GET /api/dm/events on the real app, database and broker: a creator's status changes as
Server-Sent Events; `Last-Event-ID` resumes with every change after it, none twice; another
creator's changes never appear."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.status_stream import Cursor
from shared.db.models import Creator, DmLogEntry, Lead
from tests.api_app import create_app
from tests.integration.issuer import Issuer
from tests.integration.served import free_port, served
from tests.settings import AllSettings
from tests.sse import sse_events

pytestmark = pytest.mark.integration


@pytest.fixture
def api_url(settings: AllSettings) -> Iterator[str]:
    fast = {"status_stream_poll_s": 0.1, "status_stream_heartbeat_s": 0.5}
    with served(create_app(settings.model_copy(update=fast)), free_port()) as url:
        yield url


async def _events(
    url: str, headers: dict[str, str], *, idle_s: float, until: int | None = None
) -> list[dict[str, Any]]:
    """Events read until `until` of them came, or no event came for `idle_s`."""
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        return await sse_events(client, "/api/dm/events", idle_s=idle_s, until=until)


async def _post_lead(url: str, headers: dict[str, str], name: str) -> str:
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        answer = await client.post("/api/leads", json={"name": name, "phone": "+14155550177"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def _log_after(
    sessions: async_sessionmaker[AsyncSession], creator: UUID, cursor: Cursor
) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(
            select(DmLogEntry)
            .join(Lead, Lead.id == DmLogEntry.lead_id)
            .where(
                Lead.creator_id == creator,
                tuple_(DmLogEntry.txid, DmLogEntry.id) > tuple_(cursor.txid, cursor.row_id),
            )
            .order_by(DmLogEntry.txid, DmLogEntry.id)
        )
        return [f"{r.txid}-{r.id}" for r in rows]


async def _other_creator(sessions: async_sessionmaker[AsyncSession]) -> UUID:
    from uuid import uuid4

    other = uuid4()
    async with sessions.begin() as session:
        session.add(Creator(id=other, name="O", slug=f"o-{other.hex[:12]}", dm_template="Hi"))
    return other


async def test_a_resumed_stream_has_every_change_after_its_last_event_once(
    api_url: str,
    issuer: Issuer,
    creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = issuer.creator(creator)
    other = issuer.creator(await _other_creator(sessions))
    listening = asyncio.create_task(_events(api_url, mine, idle_s=10, until=1))
    await asyncio.sleep(1)  # the stream is open: it starts with what happens next
    first = await _post_lead(api_url, mine, "Ann")
    [seen] = await listening
    assert seen["data"]["lead_id"] == first and seen["data"]["status"] == "queued"

    # While nobody listens: two more leads of this creator, one of another's.
    later = {await _post_lead(api_url, mine, "Bo"), await _post_lead(api_url, mine, "Cy")}
    await _post_lead(api_url, other, "Zed")

    resumed = await _events(api_url, mine | {"Last-Event-ID": seen["id"]}, idle_s=2.5)
    ids = [e["id"] for e in resumed]
    cursor = Cursor.parse(seen["id"])
    assert cursor is not None
    assert ids == await _log_after(sessions, creator, cursor)  # in order, none missing
    assert len(ids) == len(set(ids))
    queued = {e["data"]["lead_id"] for e in resumed if e["data"]["status"] == "queued"}
    assert queued == later  # not the first lead again, nobody else's


async def test_a_creator_may_not_listen_to_another_creator(
    api_url: str, issuer: Issuer, creator: UUID, sessions: async_sessionmaker[AsyncSession]
) -> None:
    other = await _other_creator(sessions)
    async with httpx.AsyncClient(base_url=api_url, headers=issuer.creator(creator)) as client:
        answer = await client.get("/api/dm/events", params={"creator_id": str(other)})
    assert answer.status_code == 403
