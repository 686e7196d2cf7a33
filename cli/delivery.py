"""`autodm dlq ...` and `autodm sending ...`: dead letters and the kill switch from a shell.

The same service functions as the admin API (shared.messaging.dlq_operations,
shared.delivery.kill_switch); a replay
writes to the outbox, which the API's relay publishes (so the API must be running).
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.contracts.events import utcnow
from shared.db.session import make_engine, make_sessionmaker
from shared.delivery.circuit import circuit_states
from shared.delivery.kill_switch import list_pauses, pause_sending, resume_sending
from shared.messaging.dlq_operations import (
    DlqFilter,
    get_entry,
    list_entries,
    replay_batches,
    replay_entry,
)
from shared.messaging.unit_of_work import UnitOfWorkFactory, UnitsOfWork
from shared.platform.settings import get_settings

dlq_app = typer.Typer(help="Dead letters: list, inspect, replay (each entry at most once).")
sending_app = typer.Typer(help="Kill switch and circuit breakers of the senders.")
console = Console()
T = TypeVar("T")

Reason = Annotated[str | None, typer.Option(help="only this x-error-reason")]
Account = Annotated[UUID | None, typer.Option(help="only this sending account")]
OlderThan = Annotated[float | None, typer.Option(help="failed at least this many minutes ago")]
NewerThan = Annotated[float | None, typer.Option(help="failed within this many minutes")]


def _run(job: Callable[[UnitsOfWork], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = make_engine(get_settings())
        try:
            # No relay in the CLI: a replay's commit NOTIFYs the API workers' relay.
            return await job(UnitOfWorkFactory(make_sessionmaker(engine), notify=True))
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _filter(
    reason: str | None, account: UUID | None, older: float | None, newer: float | None
) -> DlqFilter:
    now = utcnow()
    return DlqFilter(
        reason=reason,
        account_id=account,
        older_than=now - timedelta(minutes=older) if older is not None else None,
        newer_than=now - timedelta(minutes=newer) if newer is not None else None,
    )


def _operator() -> str:
    return f"cli:{getpass.getuser()}"


@dlq_app.command("list")
def dlq_list(
    reason: Reason = None,
    account: Account = None,
    older_than: OlderThan = None,
    newer_than: NewerThan = None,
    limit: int = 50,
) -> None:
    """Entries not replayed yet, oldest first."""
    f = _filter(reason, account, older_than, newer_than)

    async def job(uow: UnitsOfWork) -> list[Any]:
        async with uow() as work:
            return list(await list_entries(work.session, f, limit))

    table = Table("entry", "failed at", "topic", "reason", "class", "code", "attempts", "lead")
    for e in _run(job):
        table.add_row(
            f"{e.dlq_partition}/{e.dlq_offset}",
            e.failed_at.isoformat(timespec="seconds"),
            e.original_topic,
            e.reason,
            e.error_class or "",
            str(e.error_code or ""),
            str(e.attempts),
            str(e.lead_id or ""),
        )
    console.print(table)


@dlq_app.command("show")
def dlq_show(entry: Annotated[str, typer.Argument(help="partition/offset")]) -> None:
    """One entry with its headers and payload."""
    partition, offset = (int(x) for x in entry.split("/"))

    async def job(uow: UnitsOfWork) -> Any:
        async with uow() as work:
            return await get_entry(work.session, partition, offset)

    found = _run(job)
    if found is None:
        console.print(f"no entry {entry}")
        raise typer.Exit(1)
    console.print_json(
        json.dumps({"headers": found.headers, "payload": found.payload.decode(errors="replace")})
    )


@dlq_app.command("replay")
def dlq_replay(
    entry: Annotated[str | None, typer.Argument(help="partition/offset; omit with --all")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every matching entry")] = False,
    reason: Reason = None,
    account: Account = None,
    older_than: OlderThan = None,
    newer_than: NewerThan = None,
) -> None:
    """Replay one entry, or all matching ones with a progress bar. Idempotent."""
    if entry is not None:
        partition, offset = (int(x) for x in entry.split("/"))

        async def one(uow: UnitsOfWork) -> bool:
            async with uow() as work:
                return await replay_entry(work.session, partition, offset, _operator())

        console.print("replayed" if _run(one) else "already replayed (or no such entry)")
        return
    if not all_:
        raise typer.BadParameter("name an entry or pass --all (with filters)")
    f = _filter(reason, account, older_than, newer_than)
    replayed = _run(lambda uow: _replay_with_progress(uow, f))
    console.print(f"replayed {replayed}")


async def _replay_with_progress(uow: UnitsOfWork, f: DlqFilter) -> int:
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    replayed = 0
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("replay", total=None)
        async for replayed, total in replay_batches(uow, f, _operator()):
            progress.update(task, completed=replayed, total=total)
    return replayed


@sending_app.command("pause")
def pause(
    account: Annotated[UUID | None, typer.Option(help="one account; omit for all")] = None,
    reason: str = "paused from the CLI",
) -> None:
    """Pause sending; DMs wait in the retry topic, nothing is dropped."""

    async def job(uow: UnitsOfWork) -> bool:
        async with uow() as work:
            return await pause_sending(work.session, account, reason, _operator())

    _run(job)
    console.print(f"paused {account or 'all sending'}")


@sending_app.command("resume")
def resume(
    account: Annotated[UUID | None, typer.Option(help="one account; omit for global")] = None,
) -> None:
    """Resume sending; deferred DMs go out within AUTODM_PAUSED_RECHECK_S."""

    async def job(uow: UnitsOfWork) -> bool:
        async with uow() as work:
            return await resume_sending(work.session, account)

    changed = _run(job)
    console.print(f"resumed {account or 'all sending'}" if changed else "was not paused")


@sending_app.command("status")
def status() -> None:
    """Pauses and circuit breakers that are not closed."""

    async def job(uow: UnitsOfWork) -> tuple[list[Any], list[Any]]:
        async with uow() as work:
            return list(await list_pauses(work.session)), list(
                await circuit_states(work.session, utcnow())
            )

    pauses, circuits = _run(job)
    table = Table("scope", "state", "until", "reason")
    for p in pauses:
        table.add_row(p.scope, "paused", "", p.reason)
    for c in circuits:
        until = c.blocked_until.isoformat(timespec="seconds") if c.blocked_until else ""
        table.add_row(c.scope, c.state, until, c.reason or "")
    console.print(table)
