"""The background loops of a process: the job runner (with its cron schedules) and the event
dispatcher. Both work from database rows, so a restart loses nothing: jobs left ``running`` by a
stopped process are queued again, and consumers resume after their cursors."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

log = logging.getLogger("moorage.jobs.runner")

#: How often queues are looked at when nothing in this process woke the loop.
POLL_SECONDS = 1.0
#: A job ``running`` for longer than this is taken to be abandoned and queued again.
STALE_AFTER = dt.timedelta(hours=2)


class JobQueue(Protocol):
    """What the runner needs of ``services.jobs.JobService``."""

    @property
    def clock(self) -> Callable[[], dt.datetime]: ...

    @property
    def wake(self) -> asyncio.Event: ...

    async def claim_next(self) -> Any | None: ...

    async def run(self, job: Any) -> None: ...

    async def requeue_stale(self, started_before: dt.datetime) -> int: ...

    async def fire_due_schedules(self) -> list[int]: ...


class EventSource(Protocol):
    """What the dispatcher needs of ``services.events.EventLog``."""

    @property
    def wake(self) -> asyncio.Event: ...

    @property
    def consumers(self) -> dict[str, Any]: ...

    async def start_consumers(self) -> None: ...

    async def dispatch(self, consumer: str, batch: int = 100) -> int: ...

    async def flush_pulls(self) -> int: ...


async def _sleep_until_woken(wake: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), seconds)


class JobRunner:
    def __init__(self, queue: JobQueue, concurrency: int, poll_seconds: float = POLL_SECONDS) -> None:
        self.queue = queue
        self.concurrency = max(1, concurrency)
        self.poll_seconds = poll_seconds
        self._running: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Run until cancelled."""
        try:
            await self.queue.requeue_stale(self.queue.clock())
        except Exception:
            log.exception("could not requeue abandoned jobs")
        slots = asyncio.Semaphore(self.concurrency)
        try:
            while True:
                self.queue.wake.clear()
                started = 0
                try:
                    await self.queue.fire_due_schedules()
                    started = await self._fill(slots)
                    await self.queue.requeue_stale(self.queue.clock() - STALE_AFTER)
                except Exception:
                    log.exception("job queue: claiming failed; retrying")
                if started == 0:
                    await _sleep_until_woken(self.queue.wake, self.poll_seconds)
        finally:
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _fill(self, slots: asyncio.Semaphore) -> int:
        started = 0
        while True:
            await slots.acquire()
            job = await self.queue.claim_next()
            if job is None:
                slots.release()
                return started
            task = asyncio.create_task(self._run(job, slots))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            started += 1

    async def _run(self, job: Any, slots: asyncio.Semaphore) -> None:
        try:
            await self.queue.run(job)
        except Exception:
            log.exception("job %s failed unexpectedly", getattr(job, "id", job))
        finally:
            slots.release()
            self.queue.wake.set()  # a slot is free: look for more


class EventDispatcher:
    def __init__(self, source: EventSource, poll_seconds: float = 0.5) -> None:
        self.source = source
        self.poll_seconds = poll_seconds

    async def run(self) -> None:
        """Run until cancelled; the last pull events are written on the way out."""
        try:
            while True:
                self.source.wake.clear()
                handled = await self.step(self.source.consumers)
                if handled == 0:
                    await _sleep_until_woken(self.source.wake, self.poll_seconds)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.source.flush_pulls())

    async def step(self, consumers: Iterable[str]) -> int:
        """One pass: flush pull events, hand every consumer what is new. Returns events handled."""
        handled = 0
        try:
            await self.source.flush_pulls()
        except Exception:
            log.exception("could not write pull events; keeping them for the next pass")
        for name in list(consumers):
            try:
                handled += await self.source.dispatch(name)
            except Exception:
                log.exception("event consumer %s failed; it resumes at its cursor", name)
        return handled
