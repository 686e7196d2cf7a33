"""`GET /l/<ref>`: the short link AutoDM shares instead of the raw ig.me / wa.me link (lead
page, QR code, thank-you screen). It counts the open on the lead (link_clicks, the first
one's time for the funnel) and redirects to the lead's stored link
(services.api.service_layer.tracked_links: only https ig.me / wa.me, never a target from the
request). Anyone holding the link may open it, as they could the ig.me link itself; an unknown ref
is a 404 like any address."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, update

from services.api.http.web.pages_deps import PageError, Web
from services.api.service_layer.funnel_stages import Stage, count
from services.api.service_layer.tracked_links import link_route, safe_target
from shared.db.models import Lead

router = APIRouter(include_in_schema=False)
Ref = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
GONE = ("Link not found", "This link is not, or no longer, one AutoDM made.")


@router.get("/l/{ref}")
async def open_link(ref: Ref, web: Web) -> Response:
    async with web.api.uow() as work:
        session = work.session
        row = (
            await session.execute(
                update(Lead)
                .where(
                    Lead.ref == ref,
                    Lead.erased_at.is_(None),
                    Lead.dm_link.is_not(None),
                )
                .values(
                    link_clicks=Lead.link_clicks + 1,
                    link_clicked_at=func.coalesce(Lead.link_clicked_at, func.now()),
                )
                .returning(Lead.dm_link, Lead.source, Lead.link_clicks)
            )
        ).one_or_none()
        target = safe_target(row.dm_link) if row else None
        if row is None or target is None:
            raise PageError(404, *GONE)  # rolls the count back: nothing was opened
    if row.link_clicks == 1:  # the lead's first open: a step of the funnel
        count(Stage.CLICKED, link_route(target), row.source)
    # The lead's link stays valid after the DM followed its open (a QR code printed once).
    # Not cached, so every open reaches AutoDM and counts; the lead's ref stays out of
    # the next site's Referer.
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return RedirectResponse(target, status_code=302, headers=headers)
