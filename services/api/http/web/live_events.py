"""The pages' live DM status changes: `GET /app/events`, the same Server-Sent Events as the
API's `GET /api/dm/events` (services/api/http/status_stream.py), signed in by the session cookie
(which is no API credential). A creator gets their own DMs' changes; an admin gets every
creator's, which the overview uses as its cue to refresh. app.js refreshes the live region
a change concerns; polling is only its fallback when the stream cannot be opened.

The session is checked again while the stream runs (at least every heartbeat), so signing
out elsewhere ends a page's stream too.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.http.auth import Role
from services.api.http.status_stream import Cursor, start_cursor, stream
from services.api.http.web.pages_deps import PageError, SessionUser, Web

router = APIRouter(prefix="/app", include_in_schema=False)
RECHECK_S = 15.0  # how stale a signed-out session's stream may be, at most


async def events_url(session: AsyncSession) -> str:
    """The stream's URL for a page about to be read in `session`: it starts at what the page
    cannot show yet (a change is sent twice at worst, never lost between page and stream)."""
    return f"/app/events?since={await start_cursor(session)}"


async def while_signed_in(
    events: AsyncIterator[str],
    signed_in: Callable[[], Awaitable[bool]],
    clock: Callable[[], float] = time.monotonic,
    every_s: float = RECHECK_S,
) -> AsyncIterator[str]:
    """`events` until the session ends (checked when something is due to be sent, and the
    stream sends at least a keep-alive per heartbeat)."""
    checked = clock()
    async for event in events:
        if clock() - checked >= every_s:
            if not await signed_in():
                return
            checked = clock()
        yield event


@router.get("/events")
async def page_events(
    request: Request,
    web: Web,
    user: SessionUser,
    since: Annotated[str | None, Query(max_length=64)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
) -> StreamingResponse:
    """`since`: the page's cursor (events_url), for the first connection; EventSource's
    Last-Event-ID, after a reconnect, is further on and wins."""
    owner = None if user.role == Role.ADMIN else user.creator_id
    if owner is None and user.role != Role.ADMIN:
        raise PageError(403, "Not allowed", "These pages are for creators and admins.")
    token = request.cookies.get(web.security.session_cookie, "")

    async def signed_in() -> bool:
        return await web.web_sessions.user(token) is not None

    cursor = Cursor.parse(last_event_id) or Cursor.parse(since)
    body = stream(web.api.sessions, owner, cursor, web.api.stream)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    live = while_signed_in(body, signed_in)
    return StreamingResponse(live, media_type="text/event-stream", headers=headers)
