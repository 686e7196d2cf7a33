"""dm.requested.instagram a poll at a time: what a poll returned is read in one query per
kind of row, sent concurrently across accounts and committed to Kafka once
(docs/BENCHMARKS.md: per record, the sender's SQL reads, Kafka offset commits and
per-message framework overhead cost more than the send itself).

Each DM goes through `sending.send_known`, a re-requested deferred one too, so the rules
are one set: the intent is claimed right before its own call and finished right
after its answer (a crash leaves at most the DMs then in flight `unknown`, as before), and
an account's DMs go one after the other under the account's lock, each through the
delivery gate (kill switch, buckets, breakers) after the previous answer was recorded.
Across accounts, up to `concurrency` calls are in flight. A request whose DM is already in
the batch (a redelivery, a replay) waits for a pass of its own after it, so it sees what
the first one did. A record that fails is parked alone; a dependency outage stops new
sends and is raised once the others have settled, for the dead-letter middleware to retry
the whole batch (every step is idempotent by intent).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aiokafka import ConsumerRecord
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.trace import SpanKind
from sqlalchemy import and_, select, tuple_

from services.instagram_sender.holds import AccountHolds, HoldKey, Holds, read_holds
from services.instagram_sender.sending import (
    NO_ACCOUNT,
    Known,
    SenderDeps,
    claim_and_finish_skipped,
    send_known,
)
from shared.accounts.lifecycle import AccountState
from shared.contracts.events import DmRequested, utcnow
from shared.contracts.lifecycle import Route
from shared.db.models import DmSend, InstagramComment, Lead, SocialAccount
from shared.delivery.gate import DeliveryGate
from shared.messaging.batches import Park, records_of
from shared.messaging.dead_letters import DeliveryFailed
from shared.messaging.delayed_retries import DeliveryContext
from shared.platform.logs import bind_correlation_id
from shared.platform.outages import is_outage
from shared.platform.tracing import continued, headers_traceparent


@dataclass(frozen=True)
class Job:
    request: DmRequested
    record: ConsumerRecord[Any, Any]

    @property
    def key(self) -> tuple[UUID, str]:
        return self.request.payload.lead_id, self.request.payload.route


def decoder(park: Park) -> Callable[..., Awaitable[list[DmRequested]]]:
    """faststream decoder of the batch subscriber: a malformed record is parked here."""

    async def decode(msg: KafkaMessage, _: Any = None) -> list[DmRequested]:
        return [job.request for job in await jobs_of(records_of(msg), park)]

    return decode


async def jobs_of(records: Sequence[ConsumerRecord[Any, Any]], park: Park | None) -> list[Job]:
    """The batch's requests with their records; a malformed one is parked if `park` is given
    (the decoder) and skipped otherwise (the handler: the decoder parked it already)."""
    jobs = []
    for record in records:
        try:
            jobs.append(Job(DmRequested.model_validate_json(record.value or b""), record))
        except ValueError as exc:  # pydantic's ValidationError included
            if park is not None:
                await park(record, exc)
    return jobs


async def paired(
    requests: Sequence[DmRequested], records: Sequence[ConsumerRecord[Any, Any]]
) -> list[Job]:
    """The decoder's requests with their records, without parsing them again: in record
    order, so paired one to one unless the decoder parked a malformed one (then parsed)."""
    if len(requests) == len(records):
        return [Job(request, record) for request, record in zip(requests, records, strict=True)]
    return await jobs_of(records, park=None)


async def send_batch(deps: SenderDeps, jobs: Sequence[Job], park: Park) -> None:
    first, repeats = _split_repeats(jobs)
    await _send_distinct(deps, first, park)
    if repeats:
        await send_batch(deps, repeats, park)


def _split_repeats(jobs: Sequence[Job]) -> tuple[list[Job], list[Job]]:
    """The first request of each DM (lead, route), and the later ones, in order."""
    seen: set[tuple[UUID, str]] = set()
    first: list[Job] = []
    later: list[Job] = []
    for job in jobs:
        (later if job.key in seen else first).append(job)
        seen.add(job.key)
    return first, later


@dataclass
class _Outcomes:
    park: Park
    outage: BaseException | None = None

    async def guard(self, job: Job, work: Awaitable[object]) -> BaseException | None:
        """Run one job's work; its failure is parked with its record (an outage is kept for
        the batch). Parking itself failing propagates: the batch is then redelivered."""
        bind_correlation_id(job.request.correlation_id)
        try:
            # The lead's own trace (its record's context), linked to the batch's span.
            with continued(
                "instagram send", headers_traceparent(job.record.headers), kind=SpanKind.CONSUMER
            ):
                await work
        except Exception as exc:
            if is_outage(exc):
                self.outage = self.outage or exc
            else:
                await self.park(job.record, exc)
            return exc
        return None


async def _send_distinct(deps: SenderDeps, jobs: Sequence[Job], park: Park) -> None:
    outcomes = _Outcomes(park)
    by_account: dict[UUID, list[Job]] = {}
    unaddressed = []
    for job in jobs:
        account_id = job.request.payload.account_id
        if account_id is None:
            unaddressed.append(job)
        else:
            by_account.setdefault(account_id, []).append(job)
    async with _locked(deps.gate, by_account):
        # Read under the locks, as a single request is: another handler of the account (a
        # redelivered batch in another replica during a rebalance) may have just moved one.
        known = await _read(deps, [job for group in by_account.values() for job in group])
        limit = asyncio.Semaphore(deps.concurrency)
        results = await asyncio.gather(
            *(
                outcomes.guard(job, claim_and_finish_skipped(deps, job.request, NO_ACCOUNT))
                for job in unaddressed
            ),
            *(_send_account(deps, group, known, limit, outcomes) for group in by_account.values()),
            return_exceptions=True,
        )
    for result in results:
        if isinstance(result, BaseException):
            raise result  # parking failed: the batch is redelivered
    if outcomes.outage is not None:
        raise outcomes.outage


@contextlib.asynccontextmanager
async def _locked(gate: DeliveryGate, accounts: dict[UUID, list[Job]]) -> Any:
    """Every account of the batch locked, in id order (a single send takes one lock at a
    time, so no two holders ever wait on each other in a cycle)."""
    async with contextlib.AsyncExitStack() as stack:
        for account_id in sorted(accounts):
            await stack.enter_async_context(gate.lock(account_id))
        yield


@dataclass(frozen=True)
class _Read:
    intents: dict[tuple[UUID, str], DmSend]
    accounts: dict[UUID, SocialAccount]
    commenters: dict[str, str]  # comment id -> its author's IGSID
    holds: Holds | None = None  # the batch's DMs' hold reasons (holds.py)

    def recipient(self, request: DmRequested) -> str | None:
        p = request.payload
        if p.route == Route.IG_PRIVATE_REPLY and p.recipient.comment_id:
            return self.commenters.get(p.recipient.comment_id)
        return p.recipient.igsid

    def hold_key(self, request: DmRequested) -> HoldKey:
        return request.payload.lead_id, self.recipient(request)

    def of(self, request: DmRequested) -> Known:
        p = request.payload
        account = self.accounts.get(p.account_id) if p.account_id else None
        return Known(self.intents.get((p.lead_id, p.route)), account, self.recipient(request))


async def _read(deps: SenderDeps, jobs: Sequence[Job]) -> _Read:
    if not jobs:
        return _Read({}, {}, {})
    read_at = time.monotonic()
    keys = sorted({job.key for job in jobs})
    account_ids = {job.request.payload.account_id for job in jobs}
    comment_ids = {
        job.request.payload.recipient.comment_id
        for job in jobs
        if job.request.payload.route == Route.IG_PRIVATE_REPLY
        and job.request.payload.recipient.comment_id
    }
    async with deps.uow() as work:
        session = work.session
        # The leads (for the holds) with their intents, one query: an intent has its lead.
        ours = and_(DmSend.lead_id == Lead.id, tuple_(DmSend.lead_id, DmSend.route).in_(keys))
        pairs = (
            await session.execute(
                select(Lead, DmSend)
                .outerjoin(DmSend, ours)
                .where(Lead.id.in_({lead_id for lead_id, _ in keys}))
            )
        ).all()
        accounts = await session.scalars(
            select(SocialAccount).where(SocialAccount.id.in_(account_ids))
        )
        commenters = (
            await session.execute(
                select(InstagramComment.comment_id, InstagramComment.igsid).where(
                    InstagramComment.comment_id.in_(comment_ids)
                )
            )
            if comment_ids
            else ()
        )
        read = _Read(
            intents={(i.lead_id, i.route): i for _, i in pairs if i is not None},
            accounts={a.id: a for a in accounts},
            commenters={comment: igsid for comment, igsid in commenters},
        )
        # Every DM's hold in the same pass: one more query a batch (holds.py), not three a DM.
        people = [read.hold_key(job.request) for job in jobs]
        leads = {lead.id: lead for lead, _ in pairs}
        holds = Holds(await read_holds(session, people, utcnow(), leads), read_at)
        return dataclasses.replace(read, holds=holds)


async def _send_account(
    deps: SenderDeps,
    jobs: Sequence[Job],
    known: _Read,
    limit: asyncio.Semaphore,
    outcomes: _Outcomes,
) -> None:
    """One account's DMs, one after the other, each through the gate."""
    async with limit:
        keys = [known.hold_key(job.request) for job in jobs]
        holds = AccountHolds(deps.sessions, keys, known.holds, deps.hold_max_age_s)
        for index, job in enumerate(jobs):
            if outcomes.outage is not None:
                return  # no new send while a dependency is down: the batch is retried
            ctx = DeliveryContext.from_record(job.record)
            facts = dataclasses.replace(
                known.of(job.request), hold=functools.partial(holds.reason, index)
            )
            error = await outcomes.guard(job, send_known(deps, job.request, ctx, facts))
            if isinstance(error, DeliveryFailed) and error.reason == "token" and facts.account:
                # The account was flagged for reconnecting in the database; its later DMs
                # in this batch are skipped as a fresh read would have them.
                facts.account.status = AccountState.RECONNECT_REQUIRED
