"""The bounded worker's loop (moorage/jobs/worker.py): waking, and stopping when cancelled."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from moorage.jobs.worker import BoundedWorker, sleep_until_woken


async def test_sleep_ends_when_woken_or_when_the_time_is_up() -> None:
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sleep_until_woken(wake, 0.05)
    assert loop.time() - started >= 0.04
    wake.set()
    await asyncio.wait_for(sleep_until_woken(wake, 60), 5)


async def test_a_cancel_that_comes_as_the_sleep_is_woken_is_not_lost() -> None:
    """The event is set and the task cancelled in one loop iteration: the task must end cancelled.
    (``asyncio.wait_for`` on Python 3.11 returned normally here, and the cancel was gone.)"""
    wake = asyncio.Event()
    sleeper = asyncio.create_task(sleep_until_woken(wake, 60))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    wake.set()
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper


class OneItemWorker(BoundedWorker[int]):
    """Hands out one item; its work ends (and wakes the loop) when the test says so. Two slots, so
    the loop sleeps while the item runs, as a scan worker does."""

    def __init__(self) -> None:
        super().__init__(2, 60.0, dt.timedelta(hours=1), asyncio.Event(), lambda: dt.datetime.now(dt.UTC))
        self.items = [1]
        self.finish = asyncio.Event()
        self.claims = 0

    async def claim(self) -> int | None:
        self.claims += 1
        return self.items.pop() if self.items else None

    async def work(self, item: int) -> None:
        await self.finish.wait()

    async def requeue_stale(self, started_before: dt.datetime) -> int:
        return 0


async def test_a_worker_cancelled_as_its_last_item_ends_stops() -> None:
    worker = OneItemWorker()
    task = asyncio.create_task(worker.run())
    while worker.claims < 3:  # the item runs; nothing more to claim (twice): the loop sleeps
        await asyncio.sleep(0)
    for _ in range(3):
        await asyncio.sleep(0)
    worker.finish.set()  # the item ends in the next iteration, setting the worker's wake event
    await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done, "the worker went on after it was cancelled"
    assert task.cancelled()
