"""The ordered thread stages that hash and write an upload's buffers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.storage.pipeline import Stage


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=4)
    yield executor
    executor.shutdown(wait=True)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=40))
def test_items_are_worked_on_in_order_one_at_a_time(sizes: list[int]) -> None:
    done: list[int] = []
    busy = threading.Lock()

    def work(item: int) -> None:
        assert busy.acquire(blocking=False), "two threads worked on the stage at once"
        try:
            done.append(item)
        finally:
            busy.release()

    async def main() -> None:
        with ThreadPoolExecutor(max_workers=4) as executor:
            stage: Stage[int] = Stage(executor, work)
            for index, size in enumerate(sizes):
                await stage.wait_until_at_most(8)
                stage.put(index, size)
            await stage.wait_until_at_most(0)
            assert stage.held == 0

    asyncio.run(main())
    assert done == list(range(len(sizes)))


async def test_the_loop_waits_while_the_stage_holds_too_much(pool: ThreadPoolExecutor) -> None:
    release = threading.Event()
    stage: Stage[str] = Stage(pool, lambda item: release.wait(5))
    stage.put("a", 3)
    stage.put("b", 3)
    waiter = asyncio.ensure_future(stage.wait_until_at_most(3))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # 6 bytes held, both items blocked in (or behind) the first
    release.set()
    await asyncio.wait_for(waiter, 5)
    await asyncio.wait_for(stage.wait_until_at_most(0), 5)
    assert stage.held == 0


async def test_an_error_is_raised_on_the_loop_and_drops_what_follows(pool: ThreadPoolExecutor) -> None:
    done: list[str] = []

    def work(item: str) -> None:
        if item == "bad":
            raise OSError(28, "No space left on device")
        done.append(item)

    gate = threading.Event()
    stage: Stage[str] = Stage(pool, lambda item: (gate.wait(5), work(item)))
    for item in ("a", "bad", "c"):
        stage.put(item, 1)
    gate.set()
    with pytest.raises(OSError, match="No space"):
        await asyncio.wait_for(stage.wait_until_at_most(0), 5)
    assert done == ["a"]
    with pytest.raises(OSError, match="No space"):
        stage.put("d", 1)


async def test_abandon_drops_the_queue_and_returns_once_no_thread_runs(pool: ThreadPoolExecutor) -> None:
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def work(item: str) -> None:
        started.set()
        release.wait(5)
        done.append(item)

    stage: Stage[str] = Stage(pool, work)
    for item in ("a", "b", "c"):
        stage.put(item, 1)
    assert started.wait(5)
    threading.Timer(0.05, release.set).start()
    stage.abandon()  # blocks until "a" is done; "b" and "c" are never worked on
    assert done == ["a"]
    assert stage.held == 0


async def test_a_cancelled_wait_leaves_no_waiter_behind(pool: ThreadPoolExecutor) -> None:
    release = threading.Event()
    stage: Stage[str] = Stage(pool, lambda item: release.wait(5))
    stage.put("a", 1)
    waiter = asyncio.ensure_future(stage.wait_until_at_most(0))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await asyncio.wait_for(stage.wait_until_at_most(0), 5)


async def test_a_thread_is_woken_only_when_the_stage_is_idle(pool: ThreadPoolExecutor) -> None:
    submitted: list[object] = []

    class CountingExecutor(Executor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
            submitted.append(fn)
            return pool.submit(fn, *args, **kwargs)

    release = threading.Event()
    stage: Stage[int] = Stage(CountingExecutor(), lambda item: release.wait(5))
    for item in range(5):
        stage.put(item, 1)
    assert len(submitted) == 1  # one thread drains all five, in turn
    release.set()
    await asyncio.wait_for(stage.wait_until_at_most(0), 5)


async def test_waiting_for_less_than_nothing_ends_once_all_is_done(pool: ThreadPoolExecutor) -> None:
    """A caller that asks for room for more than the stage ever holds (a buffer larger than
    the limit) waits until the stage is empty, not forever."""
    stage: Stage[str] = Stage(pool, lambda item: None)
    await asyncio.wait_for(stage.wait_until_at_most(-5), 5)  # idle: at once
    stage.put("a", 3)
    await asyncio.wait_for(stage.wait_until_at_most(-5), 5)
    assert stage.held == 0
