"""Ordered work on an upload's buffers, in a thread, while the event loop receives more.

A :class:`Stage` is a queue of items that one task at a time drains in a thread pool: the thread
that has a stage's work takes the next item itself when it is done with one, in the order they
were put. The event loop only queues an item (a thread is woken when the stage was idle) and
hears back from a thread only when it waits: the stage holds too many bytes, or the upload ends.

Why not a future per buffer: on the 2-core VM measured (bench/README.md, tenth session), each
hand-off between the event loop and a thread took 0.14-0.2 ms. With one buffer in flight, every
1 MiB buffer of a 64 MiB push paid two of them, about a quarter to a third of its 1.4-2 ms in the
server, and the hash thread sat idle during both.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

_Item = TypeVar("_Item")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Stage(Generic[_Item]):
    """Items worked on in order by ``work``, in ``executor``'s threads, one at a time.

    The first exception ``work`` raises is kept: the items queued after it are dropped, and
    :meth:`put` and :meth:`wait_until_at_most` raise it on the event loop."""

    def __init__(self, executor: Executor, work: Callable[[_Item], object]) -> None:
        self._executor = executor
        self._work = work
        self._lock = threading.Lock()
        self._queue: deque[tuple[_Item, int]] = deque()
        self._held = 0  # bytes of the items queued or being worked on
        self._stopped = threading.Event()  # clear while a task drains the queue (or is about to)
        self._stopped.set()
        self._dropping = False
        self._error: BaseException | None = None
        #: the event loop's waiter: its loop, its future, and how many bytes it waits to go down to
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None], int] | None = None

    @property
    def held(self) -> int:
        """Bytes queued or being worked on (0: every item put so far is done)."""
        return self._held

    def put(self, item: _Item, size: int) -> None:
        """Queue ``item`` (``size`` bytes); a thread starts on it unless one is at work."""
        with self._lock:
            if self._error is not None:
                raise self._error
            self._queue.append((item, size))
            self._held += size
            if not self._stopped.is_set():
                return
            self._stopped.clear()
        try:
            self._executor.submit(self._drain)
        except BaseException:
            with self._lock:
                self._queue.pop()
                self._held -= size
                self._stopped.set()
            raise

    async def wait_until_at_most(self, size: int) -> None:
        """Wait until the stage holds at most ``size`` bytes (0 or less: until all is done)."""
        size = max(0, size)  # a stage never holds less than nothing: "below 0" would never come
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._error is not None:
                    raise self._error
                if self._held <= size:
                    return
                future = loop.create_future()
                self._waiter = (loop, future, size)
            try:
                await future
            finally:
                with self._lock:
                    if self._waiter is not None and self._waiter[1] is future:
                        self._waiter = None

    def abandon(self) -> None:
        """Drop what is queued and wait (blocking: one item's work at most) until no thread runs,
        so that nothing the stage does lands after its caller's cleanup."""
        with self._lock:
            self._dropping = True
        self._stopped.wait()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._stopped.set()
                    return
                item, size = self._queue.popleft()
                skip = self._dropping or self._error is not None
            if not skip:
                try:
                    self._work(item)
                except BaseException as exc:  # kept for the event loop, which raises it
                    with self._lock:
                        if self._error is None:
                            self._error = exc
            with self._lock:
                self._held -= size
                waiter = self._waiter
                if waiter is not None and (self._held <= waiter[2] or self._error is not None):
                    self._waiter = None
                else:
                    waiter = None
            if waiter is not None:
                # RuntimeError: the loop closed meanwhile, and nobody waits any more.
                with contextlib.suppress(RuntimeError):
                    waiter[0].call_soon_threadsafe(_resolve, waiter[1])
