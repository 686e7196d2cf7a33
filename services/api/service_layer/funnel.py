"""The conversion funnel, read from the leads' rows: of the leads created in a period, how
many got their DM sent (or opened their link through /l/<ref>), read it and replied, by day,
by route and by source; for one creator, or across creators for an admin.

A lead counts on the day it was created (a cohort), so a day's bars never exceed its leads.
Its route is how it was approached: a lead given an ig.me or wa.me link counts under that
link's route even after the DM followed the open (ig_link, then ig_dm), so a link route's
click-through rate is `clicked / leads` of that route. Erased leads are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import String, and_, case, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.lifecycle import DmStatus, Route
from shared.db.models import Lead

MAX_DAYS = 90


@dataclass(frozen=True)
class Counts:
    leads: int = 0
    sent: int = 0  # the DM went out, or the lead opened its link
    clicked: int = 0
    read: int = 0
    replied: int = 0
    with_link: int = 0  # leads given an ig.me / wa.me link (the click-through's base)

    @property
    def click_through(self) -> float | None:
        return self.clicked / self.with_link if self.with_link else None


@dataclass(frozen=True)
class Funnel:
    since: date
    until: date  # exclusive
    totals: Counts
    by_day: list[tuple[date, Counts]]
    by_route: list[tuple[str, Counts]]
    by_source: list[tuple[str, Counts]]


def funnel_route() -> Any:
    """How the lead was approached (see the module's docstring)."""
    return case(
        (Lead.dm_link.like("https://ig.me/%"), Route.IG_LINK.value),
        (Lead.dm_link.like("https://wa.me/%"), Route.WA_LINK.value),
        else_=func.coalesce(Lead.dm_route, Route.NONE.value),
    )


def _measures() -> list[Any]:
    clicked = Lead.link_clicked_at.is_not(None)
    read = or_(
        Lead.read_at.is_not(None),
        Lead.dm_status.in_([DmStatus.READ.value, DmStatus.REPLIED.value]),
    )
    return [
        func.count(),
        func.count().filter(or_(Lead.sent_at.is_not(None), clicked)),
        func.count().filter(clicked),
        func.count().filter(read),
        func.count().filter(Lead.dm_status == DmStatus.REPLIED.value),
        func.count().filter(Lead.dm_link.is_not(None)),
    ]


def period(days: int, today: date) -> tuple[date, date]:
    """The last `days` days up to and including `today` (UTC)."""
    days = max(1, min(days, MAX_DAYS))
    return today - timedelta(days=days - 1), today + timedelta(days=1)


async def read_funnel(
    session: AsyncSession, creator_id: UUID | None, since: date, until: date
) -> Funnel:
    """The funnel of one creator's leads (None: every creator's) created in [since, until)."""
    where = [
        Lead.created_at >= _midnight(since),
        Lead.created_at < _midnight(until),
        Lead.erased_at.is_(None),
    ]
    if creator_id is not None:
        where.append(Lead.creator_id == creator_id)
    day = cast(func.date(func.timezone("UTC", Lead.created_at)), String)
    groups = {"day": day, "route": funnel_route(), "source": Lead.source}
    out: dict[str, list[tuple[str, Counts]]] = {}
    for name, key in groups.items():
        rows = await session.execute(
            select(key, *_measures()).where(and_(*where)).group_by(key).order_by(key)
        )
        out[name] = [(str(k), Counts(*values)) for k, *values in rows.all()]
    by_day = dict(out["day"])
    days = [since + timedelta(days=i) for i in range((until - since).days)]
    return Funnel(
        since=since,
        until=until,
        totals=_sum(c for _, c in out["source"]),
        by_day=[(d, by_day.get(d.isoformat(), Counts())) for d in days],
        by_route=out["route"],
        by_source=out["source"],
    )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _sum(counts: Any) -> Counts:
    total = Counts()
    for c in counts:
        total = Counts(*(getattr(total, f) + getattr(c, f) for f in Counts.__dataclass_fields__))
    return total
