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

from moorage.db.events import PassReads
from moorage.jobs.worker import BoundedWorker, sleep_until_woken

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

    async def dispatch(self, consumer: str, batch: int = 100, reads: PassReads | None = None) -> int: ...

    async def flush_pulls(self) -> int: ...

    async def latest_event_id(self) -> int: ...

    @property
    def waiting(self) -> set[str]: ...


class JobRunner(BoundedWorker[Any]):
    """Runs due jobs of the kinds this process handles, and fires due cron schedules."""

    name = "job runner"

    def __init__(self, queue: JobQueue, concurrency: int, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__(concurrency, poll_seconds, STALE_AFTER, queue.wake, queue.clock)
        self.queue = queue

    async def each_pass(self) -> None:
        await self.queue.fire_due_schedules()

    async def claim(self) -> Any | None:
        return await self.queue.claim_next()

    async def work(self, item: Any) -> None:
        await self.queue.run(item)

    async def requeue_stale(self, started_before: dt.datetime) -> int:
        return await self.queue.requeue_stale(started_before)


class EventDispatcher:
    """Hands new events to the consumers: woken by each event written in this process, polling
    for those of other processes, and at most once per ``min_interval`` so that a burst of pushes
    is handed over in a few batches rather than a pass per push.

    A pass that finds no event newer than the last pass that had nothing to do (for the same
    consumers, with none failing or waiting for an event still in flight) stops at that one
    query: otherwise every idle poll read each consumer's cursor and the events after it, in a
    transaction per consumer, on the event loop of every worker process."""

    def __init__(self, source: EventSource, poll_seconds: float = 0.5, min_interval: float = 0.1) -> None:
        self.source = source
        self.poll_seconds = poll_seconds
        self.min_interval = min_interval
        #: (newest event id, consumers) when a pass last found nothing to do
        self._idle_at: tuple[int, tuple[str, ...]] | None = None

    async def run(self) -> None:
        """Run until cancelled; the last pull events are written on the way out."""
        try:
            while True:
                self.source.wake.clear()
                handled = await self.step(self.source.consumers)
                if handled == 0:
                    await sleep_until_woken(self.source.wake, self.poll_seconds)
                await asyncio.sleep(self.min_interval)
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
        names = tuple(consumers)
        try:
            state = (await self.source.latest_event_id(), names)
        except Exception:
            log.exception("could not read the newest event id")
            state = None
        if state is not None and state == self._idle_at:
            return 0
        failed = False
        reads: PassReads = {}  # consumers at one position share what is read for them
        for name in names:
            try:
                handled += await self.source.dispatch(name, reads=reads)
            except Exception:
                failed = True
                log.exception("event consumer %s failed; it resumes at its cursor", name)
        # A consumer waiting for an event id still in flight is not idle: when that event
        # commits, the newest id does not change.
        idle = handled == 0 and not failed and not self.source.waiting
        self._idle_at = state if idle else None
        return handled
