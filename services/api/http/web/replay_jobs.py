"""DLQ replays started from the admin pages run in the background; the page polls their
progress. In memory: a job belongs to the API process that started it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from uuid import uuid4

from shared.messaging.dlq_operations import DlqFilter, replay_batches
from shared.messaging.unit_of_work import UnitsOfWork
from shared.platform.logs import get_logger

log = get_logger(__name__)
KEEP_JOBS = 50


@dataclass
class ReplayJob:
    id: str
    label: str
    replayed: int = 0
    total: int | None = None
    done: bool = False
    error: str | None = None

    @property
    def percent(self) -> int:
        if self.done and not self.total:
            return 100
        return int(100 * self.replayed / self.total) if self.total else 0


@dataclass
class ReplayJobs:
    uow: UnitsOfWork  # each batch's commit wakes the relay
    jobs: dict[str, ReplayJob] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self, f: DlqFilter, label: str, replayed_by: str) -> ReplayJob:
        job = ReplayJob(id=uuid4().hex, label=label)
        self.jobs[job.id] = job
        while len(self.jobs) > KEEP_JOBS:
            del self.jobs[next(iter(self.jobs))]
        task = asyncio.create_task(self._run(job, f, replayed_by))
        self._tasks.add(task)  # keep a reference until it ends
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: ReplayJob, f: DlqFilter, replayed_by: str) -> None:
        try:
            async for replayed, total in replay_batches(self.uow, f, replayed_by, 50):
                job.replayed, job.total = replayed, total
        except Exception as exc:  # the page shows it; the entries left stay replayable
            log.exception("dlq replay job failed", job=job.id)
            job.error = type(exc).__name__
        finally:
            job.done = True
