"""Background jobs and cron schedules: enqueue, claim, run, retry with backoff, log, list.

A job is a row; ``pending`` rows are the queue, so work survives a restart. Capabilities
register a handler per job kind (``handle``); the runner (``jobs/runner.py``) claims due jobs
with a conditional UPDATE (several processes may share the queue), runs the handler and
records the outcome. A failing job is tried again after ``backoff_seconds * 2**(attempt-1)``
(at most ``MAX_BACKOFF``) until ``max_attempts``; ``PermanentFailure`` stops it at once.
Schedules enqueue a job each time their cron expression comes due.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db import jobs as qj
from moorage.db.engine import Database
from moorage.db.jobs import JobRow, ScheduleRow
from moorage.jobs import cron
from moorage.services.clock import Clock
from moorage.services.errors import InvalidInput, NotFound

log = logging.getLogger("moorage.jobs")

MAX_BACKOFF = dt.timedelta(hours=1)
#: Longest job log kept; older lines are cut from the front.
MAX_LOG_CHARS = 64 * 1024


class PermanentFailure(Exception):
    """Raised by a handler when trying again cannot help (bad configuration, refused input)."""


@dataclass
class JobContext:
    """What a handler gets: its job, and a log that is visible while it runs."""

    job: JobRow
    service: JobService

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    async def log(self, line: str) -> None:
        await self.service.append_log(self.job.id, line)


JobHandler = Callable[[JobContext], Awaitable[dict[str, Any] | None]]


@dataclass
class JobService:
    db: Database
    clock: Clock
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    handlers: dict[str, JobHandler] = field(default_factory=dict)

    def handle(self, kind: str, handler: JobHandler) -> None:
        if kind in self.handlers:
            raise ValueError(f"job kind {kind!r} has a handler already")
        self.handlers[kind] = handler

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        conn: AsyncConnection | None = None,
        run_after: dt.datetime | None = None,
        max_attempts: int = 1,
        backoff_seconds: float = 5.0,
        dedupe_key: str | None = None,
    ) -> int | None:
        """Queue a job (inside ``conn``'s transaction when given); ``None`` if ``dedupe_key`` exists."""
        now = self.clock()
        args = (kind, payload, now, run_after or now, max_attempts, backoff_seconds, dedupe_key)
        if conn is not None:
            job_id = await qj.insert_job(conn, *args)
        else:
            async with self.db.write() as own:
                job_id = await qj.insert_job(own, *args)
        self.wake.set()
        return job_id

    async def claim_next(self) -> JobRow | None:
        """A due job of a kind this process handles, now ``running``; ``None`` when there is none."""
        if not self.handlers:
            return None
        now = self.clock()
        async with self.db.read() as conn:
            candidates = await qj.due_job_ids(conn, self.handlers.keys(), now, 8)
        for job_id in candidates:
            async with self.db.write() as conn:
                if await qj.claim(conn, job_id, now):
                    return await qj.job(conn, job_id)
        return None

    async def run(self, job: JobRow) -> None:
        """Run a claimed job to its outcome: succeeded, failed, or pending again for a retry."""
        handler = self.handlers[job.kind]
        try:
            result = await handler(JobContext(job, self))
        except asyncio.CancelledError:
            # Shutting down: leave it for the next start (requeue_stale) rather than failing it.
            raise
        except PermanentFailure as exc:
            await self._failed(job, str(exc), retry=False)
        except Exception as exc:
            log.warning("job %d (%s) attempt %d failed: %s", job.id, job.kind, job.attempts, exc)
            await self._failed(job, f"{type(exc).__name__}: {exc}", retry=True)
        else:
            async with self.db.write() as conn:
                await qj.finish(conn, job.id, qj.SUCCEEDED, self.clock(), result=result or {})

    async def _failed(self, job: JobRow, error: str, retry: bool) -> None:
        now = self.clock()
        async with self.db.write() as conn:
            await qj.append_log(conn, job.id, f"{now.isoformat()} attempt {job.attempts} failed: {error}\n")
            if retry and job.attempts < job.max_attempts:
                delay = min(dt.timedelta(seconds=job.backoff_seconds * 2 ** (job.attempts - 1)), MAX_BACKOFF)
                await qj.retry_later(conn, job.id, now + delay, error)
            else:
                await qj.finish(conn, job.id, qj.FAILED, now, error=error)

    async def append_log(self, job_id: int, line: str) -> None:
        text = f"{self.clock().isoformat()} {line.rstrip()}\n"
        async with self.db.write() as conn:
            await qj.append_log(conn, job_id, text[-MAX_LOG_CHARS:])

    async def requeue_stale(self, started_before: dt.datetime) -> int:
        async with self.db.write() as conn:
            return await qj.requeue_stale(conn, started_before)

    async def get(self, job_id: int) -> JobRow:
        async with self.db.read() as conn:
            found = await qj.job(conn, job_id)
        if found is None:
            raise NotFound(f"job {job_id} does not exist")
        return found

    async def wait(self, job_id: int, poll: float = 0.05) -> JobRow:
        """The job once it has finished (succeeded, failed, cancelled); wrap in ``asyncio.timeout``."""
        while True:
            job = await self.get(job_id)
            if job.status in (qj.SUCCEEDED, qj.FAILED, qj.CANCELLED):
                return job
            await asyncio.sleep(poll)

    async def cancel(self, job_id: int) -> bool:
        async with self.db.write() as conn:
            return await qj.cancel(conn, job_id, self.clock())

    async def jobs(
        self, kinds: tuple[str, ...] = (), statuses: tuple[str, ...] = (), offset: int = 0, limit: int = 50
    ) -> tuple[list[JobRow], int]:
        async with self.db.read() as conn:
            return await qj.list_jobs(conn, kinds, statuses, offset, limit)

    async def status_counts(self) -> dict[str, dict[str, int]]:
        async with self.db.read() as conn:
            return await qj.count_by_status(conn)

    # --- schedules ---

    async def schedule(
        self, name: str, kind: str, expression: str, payload: dict[str, Any], enabled: bool = True
    ) -> ScheduleRow:
        """Create or replace the schedule ``name``; ``InvalidInput`` (field ``cron``) if it does not parse."""
        try:
            expression = cron.validate(expression)
        except cron.CronError as exc:
            raise InvalidInput(str(exc), "cron") from None
        now = self.clock()
        async with self.db.write() as conn:
            await qj.upsert_schedule(
                conn, name, kind, expression, payload, enabled, cron.next_after(expression, now), now
            )
            found = await qj.schedule(conn, name)
        assert found is not None
        return found

    async def unschedule(self, name: str) -> bool:
        async with self.db.write() as conn:
            return await qj.delete_schedule(conn, name)

    async def schedules(self, prefix: str | None = None) -> list[ScheduleRow]:
        async with self.db.read() as conn:
            return await qj.list_schedules(conn, prefix)

    async def get_schedule(self, name: str) -> ScheduleRow | None:
        async with self.db.read() as conn:
            return await qj.schedule(conn, name)

    async def fire_due_schedules(self) -> list[int]:
        """Enqueue a job for each schedule that has come due; returns their ids.

        A schedule that was due several times while the registry was down fires once.
        """
        now = self.clock()
        async with self.db.read() as conn:
            due = await qj.due_schedules(conn, now)
        fired = []
        for s in due:
            async with self.db.write() as conn:
                if not await qj.advance_schedule(
                    conn, s.id, s.next_run_at, cron.next_after(s.cron, now), now
                ):
                    continue  # another process fired it
                job_id = await qj.insert_job(
                    conn,
                    s.kind,
                    {**s.payload, "schedule": s.name},
                    now,
                    now,
                    1,
                    5.0,
                    f"schedule:{s.id}:{s.next_run_at.isoformat()}",
                )
                if job_id is not None:
                    await qj.set_schedule_job(conn, s.id, job_id)
                    fired.append(job_id)
        if fired:
            self.wake.set()
        return fired
