"""The scan worker: works the ``scans`` table's pending rows with a bounded concurrency.

The queue lives in the database, so it survives a restart: on start, scans left ``scanning``
by a process that stopped are queued again, and pending ones are picked up. Rows are claimed
with a conditional UPDATE, so several processes can share one queue.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Protocol

from moorage.jobs.worker import BoundedWorker

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


class ScanWorker(BoundedWorker[int]):
    name = "scan worker"

    def __init__(self, service: ScanQueue, concurrency: int, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__(concurrency, poll_seconds, STALE_AFTER, service.wake, service.clock)
        self.service = service

    async def claim(self) -> int | None:
        return await self.service.claim_next()

    async def work(self, item: int) -> None:
        await self.service.run_claimed(item)

    async def requeue_stale(self, started_before: dt.datetime) -> int:
        return await self.service.requeue_stale(started_before)
