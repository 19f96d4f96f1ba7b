"""The scan worker: works the ``scans`` table's pending rows with a bounded concurrency.

The queue lives in the database, so it survives a restart: on start, scans left ``scanning``
by a process that stopped are queued again, and pending ones are picked up. Rows are claimed
with a conditional UPDATE, so several processes can share one queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("moorage.jobs.scans")

#: How often the queue is looked at when nothing in this process woke the worker.
POLL_SECONDS = 5.0
#: A scan ``scanning`` for longer than this is taken to be abandoned and queued again.
STALE_AFTER = dt.timedelta(hours=1)


class ScanQueue(Protocol):
    """What the worker needs of the scan service (``services.scanning.ScanService``)."""

    @property
    def clock(self) -> Callable[[], dt.datetime]: ...

    @property
    def wake(self) -> asyncio.Event: ...

    async def claim_next(self) -> int | None: ...

    async def requeue_stale(self, started_before: dt.datetime) -> int: ...

    async def run_claimed(self, scan_id: int) -> None: ...


class ScanWorker:
    def __init__(self, service: ScanQueue, concurrency: int, poll_seconds: float = POLL_SECONDS) -> None:
        self.service = service
        self.concurrency = max(1, concurrency)
        self.poll_seconds = poll_seconds
        self._running: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Run until cancelled."""
        try:
            await self.service.requeue_stale(self.service.clock())
        except Exception:
            log.exception("could not requeue abandoned scans")
        slots = asyncio.Semaphore(self.concurrency)
        last_stale_check = self.service.clock()
        try:
            while True:
                try:
                    claimed = await self._fill(slots)
                    now = self.service.clock()
                    if now - last_stale_check > STALE_AFTER / 4:
                        await self.service.requeue_stale(now - STALE_AFTER)
                        last_stale_check = now
                except Exception:
                    log.exception("scan queue: claiming failed; retrying")
                    claimed = 0
                if claimed == 0:
                    self.service.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.service.wake.wait(), self.poll_seconds)
        finally:
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _fill(self, slots: asyncio.Semaphore) -> int:
        """Start scans while slots are free and work is pending; returns how many started."""
        started = 0
        while True:
            await slots.acquire()
            scan_id = await self.service.claim_next()
            if scan_id is None:
                slots.release()
                return started
            task = asyncio.create_task(self._run(scan_id, slots))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            started += 1

    async def _run(self, scan_id: int, slots: asyncio.Semaphore) -> None:
        try:
            await self.service.run_claimed(scan_id)
        except Exception:
            log.exception("scan %d failed unexpectedly", scan_id)
        finally:
            slots.release()
