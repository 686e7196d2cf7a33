"""The admin DLQ browser: list and filter dead letters, inspect one, replay one, the
filtered set or all of them; bulk replays run in the background with a progress page.
Replays use shared.messaging.dlq_operations, like the JSON API and the CLI (a replayed entry
replays once)."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.api.http.web.pages_deps import AdminUser, PageError, Web
from shared.messaging.dlq_operations import (
    DlqFilter,
    NotReplayable,
    count_entries,
    get_entry,
    list_entries,
    replay_entry,
)

router = APIRouter(prefix="/admin/dlq", include_in_schema=False)
PAGE_SIZE = 50
REASON_PATTERN = r"^[a-z0-9_.-]{0,64}$"
Partition = Annotated[int, Path(ge=0, le=2**31 - 1)]
Offset = Annotated[int, Path(ge=0, le=2**63 - 1)]
NOTICES = {
    "replayed": ("notice", "The entry was replayed."),
    "already": ("warning", "That entry had been replayed already."),
    "not-replayable": ("alert", "That entry's topic is not one AutoDM consumes."),
}


def _filter(reason: str | None, account: str | None) -> DlqFilter:
    try:
        account_id = UUID(account) if account else None
    except ValueError as exc:
        raise PageError(400, "Bad filter", "The account must be an account id.") from exc
    return DlqFilter(reason=reason or None, account_id=account_id)


@router.get("")
async def dlq_page(
    request: Request,
    web: Web,
    _: AdminUser,
    reason: Annotated[str | None, Query(pattern=REASON_PATTERN)] = None,
    account: Annotated[str | None, Query(max_length=64)] = None,
    notice: Annotated[str | None, Query(max_length=32)] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> Response:
    f = _filter(reason, account)
    async with web.api.sessions() as session:
        entries = await list_entries(session, f, PAGE_SIZE, offset)
        matching = await count_entries(session, f)
        waiting = await count_entries(session, DlqFilter())
        replayable = await count_entries(session, DlqFilter(replayable_only=True))
    context: dict[str, Any] = {
        "replayable": replayable,
        "nav": "dlq",
        "entries": entries,
        "matching": matching,
        "waiting": waiting,
        "reason": reason or "",
        "account": account or "",
        "filtered": bool(reason or account),
        "notice": NOTICES.get(notice or ""),
        "first": offset + 1,
        "previous_url": _page_url(reason, account, offset - PAGE_SIZE) if offset else None,
        "next_url": _page_url(reason, account, offset + PAGE_SIZE)
        if offset + PAGE_SIZE < matching
        else None,
    }
    return web.pages.render(request, "admin_dlq.html", context)


def _page_url(reason: str | None, account: str | None, offset: int) -> str:
    query = {"reason": reason or "", "account": account or "", "offset": max(offset, 0)}
    return "/admin/dlq?" + urlencode({k: v for k, v in query.items() if v})


@router.get("/jobs/{job_id}")
async def job_page(job_id: str, request: Request, web: Web, _: AdminUser) -> Response:
    job = web.replays.jobs.get(job_id[:64])
    if job is None:
        raise PageError(404, "Not found", "No such replay (jobs live in one API process).")
    return web.pages.render(request, "admin_dlq_job.html", {"nav": "dlq", "job": job})


@router.get("/jobs/{job_id}/progress")
async def job_progress(job_id: str, request: Request, web: Web, _: AdminUser) -> Response:
    job = web.replays.jobs.get(job_id[:64])
    if job is None:
        raise PageError(404, "Not found", "No such replay.")
    return web.pages.render(request, "_dlq_progress.html", {"job": job})


@router.get("/replay-all")
async def confirm_replay_all(request: Request, web: Web, _: AdminUser) -> Response:
    """Replaying everything is the one bulk action without a filter: asked first."""
    async with web.api.sessions() as session:
        waiting = await count_entries(session, DlqFilter())
        replayable = await count_entries(session, DlqFilter(replayable_only=True))
    context = {"nav": "dlq", "replayable": replayable, "kept": waiting - replayable}
    return web.pages.render(request, "admin_dlq_replay_all.html", context)


@router.post("/replay")
async def replay_many(request: Request, web: Web, admin: AdminUser) -> Response:
    """Every waiting entry matching the form's filter; all of them only when confirmed."""
    await web.security.check_csrf(request)
    form = await request.form()
    reason, account = str(form.get("reason", "")), str(form.get("account", ""))
    if len(reason) > 64 or not all(c.isalnum() or c in "_.-" for c in reason):
        raise PageError(400, "Bad filter", "The reason is a code like retries_exhausted.")
    if not (reason or account) and form.get("confirm") != "all":
        return RedirectResponse("/admin/dlq/replay-all", status_code=303)
    f = _filter(reason, account)
    label = "the filtered entries" if (reason or account) else "every entry"
    job = web.replays.start(f, label, admin.subject)
    return RedirectResponse(f"/admin/dlq/jobs/{job.id}", status_code=303)


@router.get("/{partition}/{offset}")
async def inspect(
    partition: Partition, offset: Offset, request: Request, web: Web, _: AdminUser
) -> Response:
    async with web.api.sessions() as session:
        entry = await get_entry(session, partition, offset)
    if entry is None:
        raise PageError(404, "Not found", "There is no dead letter at this position.")
    try:
        payload = json.dumps(json.loads(entry.payload), indent=2, ensure_ascii=False)
    except ValueError:
        payload = entry.payload.decode(errors="replace")
    context = {"nav": "dlq", "entry": entry, "payload": payload}
    return web.pages.render(request, "admin_dlq_entry.html", context)


@router.post("/{partition}/{offset}/replay")
async def replay_one(
    partition: Partition, offset: Offset, request: Request, web: Web, admin: AdminUser
) -> Response:
    await web.security.check_csrf(request)
    try:
        async with web.api.uow() as uow:
            done = await replay_entry(uow.session, partition, offset, admin.subject)
    except NotReplayable:
        return RedirectResponse("/admin/dlq?notice=not-replayable", status_code=303)
    notice = urlencode({"notice": "replayed" if done else "already"})
    return RedirectResponse(f"/admin/dlq?{notice}", status_code=303)
