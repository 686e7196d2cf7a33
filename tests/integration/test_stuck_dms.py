"""The stuck-DM watchdog on the real database: a DM `queued` or `sending` too long with
nothing in flight is found (gauge, admin overview block); one that waits for a deferred
send, or is being sent right now, or moved recently, is not."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.web.rendering import make_environment
from services.api.service_layer.stuck_dms import StuckDmWatchdog
from shared.contracts.events import utcnow
from shared.db.models import DmSend, Lead

pytestmark = pytest.mark.integration

AFTER = timedelta(minutes=15)


def _lead(creator: UUID, status: str, idle: timedelta, route: str = "wa_text") -> Lead:
    moved = utcnow() - idle
    return Lead(
        id=uuid4(),
        creator_id=creator,
        name="Stu Ck",
        message="hi",
        phone="+44 20 7946 0958",
        ref=uuid4().hex,
        dm_status=status,
        dm_route=route,
        dm_provider="whatsapp" if route.startswith("wa_") else "instagram",
        dm_attempt=1,
        created_at=moved,
        updated_at=moved,
    )


def _intent(lead: Lead, route: str, state: str, idle: timedelta) -> DmSend:
    return DmSend(lead_id=lead.id, route=route, state=state, attempt=1, updated_at=utcnow() - idle)


async def test_the_watchdog_reports_dms_in_progress_with_nothing_in_flight(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    hour = timedelta(hours=1)
    # Issue 21's lead: `sending` on wa_text, its intents ended (skipped, link): stuck.
    fallback_dropped = _lead(creator, "sending", hour)
    # A request that never reached a sender: stuck.
    lost = _lead(creator, "queued", hour, route="ig_dm")
    # A sender that died mid-send an hour ago and was never redelivered: stuck.
    interrupted = _lead(creator, "sending", hour, route="ig_dm")
    # Waiting for the pair rate / pacing: a deferred send is in flight.
    deferred = _lead(creator, "queued", hour)
    # Being sent right now (the intent moved a second ago).
    sending_now = _lead(creator, "sending", hour)
    # Moved recently: not stuck yet.
    fresh = _lead(creator, "sending", timedelta(minutes=2))
    # Ended: never stuck.
    done = _lead(creator, "link_ready", hour, route="wa_link")
    leads = [fallback_dropped, lost, interrupted, deferred, sending_now, fresh, done]
    async with sessions.begin() as session:
        session.add_all(leads)
        await session.flush()
        session.add_all(
            [
                _intent(fallback_dropped, "wa_text", "skipped", hour),
                _intent(fallback_dropped, "wa_template", "link", hour),
                _intent(interrupted, "ig_dm", "sending", hour),
                _intent(deferred, "wa_text", "deferred", hour),
                _intent(sending_now, "wa_text", "sending", timedelta(seconds=1)),
            ]
        )

    report = await StuckDmWatchdog(sessions, AFTER, interval_s=60).check()

    mine = {dm.lead_id: dm for dm in report.oldest if dm.creator_id == creator}
    assert set(mine) == {fallback_dropped.id, lost.id, interrupted.id}
    assert mine[fallback_dropped.id].status == "sending"
    assert mine[fallback_dropped.id].route == "wa_text"
    stuck_wa = REGISTRY.get_sample_value(
        "autodm_dms_stuck", {"status": "sending", "provider": "whatsapp"}
    )
    assert stuck_wa is not None and stuck_wa >= 1
    stuck_ig = REGISTRY.get_sample_value(
        "autodm_dms_stuck", {"status": "queued", "provider": "instagram"}
    )
    assert stuck_ig is not None and stuck_ig >= 1

    # The admin overview's block lists them (its own partial template).
    html = (
        make_environment()
        .get_template("_admin_stuck_dms.html")
        .render(stuck=report, stuck_after_min=15)
    )
    assert f'data-lead="{fallback_dropped.id}"' in html
    assert f'data-lead="{deferred.id}"' not in html
    assert f'<span class="count" id="stuck-count">{report.total}</span>' in html
