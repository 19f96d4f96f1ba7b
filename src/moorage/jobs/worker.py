"""A bounded worker over a queue kept in the database: the loop the scan worker and the job
runner share.

It claims work while one of its ``concurrency`` slots is free and runs each claimed item as a
task; when nothing is claimable it sleeps until woken (work queued in this process) or until
``poll_seconds`` pass (work queued by another process). Work left in progress by a process that
stopped is queued again at start, and then every quarter of ``stale_after``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("moorage.jobs")

T = TypeVar("T")


async def sleep_until_woken(wake: asyncio.Event, seconds: float) -> None:
    """Wait until ``wake`` is set or ``seconds`` pass; a cancel is never lost.

    Not ``asyncio.wait_for``: on Python 3.11 it returns normally when the task is cancelled in the
    same loop iteration as the event is set (the event is set whenever an item ends), so a worker
    cancelled at shutdown went on polling forever and the shutdown waited for it.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wake.wait()


class BoundedWorker(ABC, Generic[T]):
    #: what this worker does, for its log lines
    name = "worker"

    def __init__(
        self,
        concurrency: int,
        poll_seconds: float,
        stale_after: dt.timedelta,
        wake: asyncio.Event,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.concurrency = max(1, concurrency)
        self.poll_seconds = poll_seconds
        self.stale_after = stale_after
        self.wake = wake
        self.clock = clock
        self._running: set[asyncio.Task[None]] = set()

    @abstractmethod
    async def claim(self) -> T | None:
        """Take the next due item for this process, or ``None``."""

    @abstractmethod
    async def work(self, item: T) -> None:
        """Do a claimed item to its end (recording its outcome)."""

    @abstractmethod
    async def requeue_stale(self, started_before: dt.datetime) -> int:
        """Queue again what was started before ``started_before`` and never finished."""

    async def each_pass(self) -> None:
        """Something to do on every pass of the loop, before claiming (e.g. fire schedules)."""

    async def run(self) -> None:
        """Run until cancelled."""
        try:
            await self.requeue_stale(self.clock())
        except Exception:
            log.exception("%s: could not requeue abandoned work", self.name)
        slots = asyncio.Semaphore(self.concurrency)
        last_stale_check = self.clock()
        try:
            while True:
                self.wake.clear()
                started = 0
                try:
                    await self.each_pass()
                    started = await self._fill(slots)
                    now = self.clock()
                    if now - last_stale_check > self.stale_after / 4:
                        await self.requeue_stale(now - self.stale_after)
                        last_stale_check = now
                except Exception:
                    log.exception("%s: claiming failed; retrying", self.name)
                if started == 0:
                    await sleep_until_woken(self.wake, self.poll_seconds)
        finally:
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _fill(self, slots: asyncio.Semaphore) -> int:
        """Start items while slots are free and work is due; returns how many started."""
        started = 0
        while True:
            await slots.acquire()
            item = await self.claim()
            if item is None:
                slots.release()
                return started
            task = asyncio.create_task(self._run(item, slots))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            started += 1

    async def _run(self, item: T, slots: asyncio.Semaphore) -> None:
        try:
            await self.work(item)
        except Exception:
            log.exception("%s: %r failed unexpectedly", self.name, item)
        finally:
            slots.release()
            self.wake.set()  # a slot is free: look for more
