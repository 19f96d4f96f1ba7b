"""The events outbox: every change writes its event in the change's own transaction.

Services call ``EventLog.emit(conn, ...)`` inside the write transaction of the change, so an
event exists exactly when its change does, and nothing is lost on a crash. Consumers
(webhooks, policies, mirroring) subscribe by name; the dispatcher (``jobs/events.py``) hands
each of them every event in id order, inside a write transaction that also moves the
consumer's cursor, so what a consumer writes there (typically: jobs to run) commits together
with "handled". Consumers must be quick and do their slow work in jobs.

Pulls are not changes: ``TAG_PULL`` / ``MANIFEST_PULL`` are buffered in memory and written in
batches by the dispatcher, so a pull costs no write transaction. A crash loses at most the
last batch of pull events (one dispatcher tick).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db import events as qe
from moorage.db.engine import Database
from moorage.db.events import EventRow, NewEvent, PassReads
from moorage.oci.reference import namespace_of
from moorage.services.clock import Clock
from moorage.services.errors import InvalidInput

log = logging.getLogger("moorage.events")

TAG_PUSH = "TAG_PUSH"
TAG_DELETE = "TAG_DELETE"
MANIFEST_PUSH = "MANIFEST_PUSH"
MANIFEST_DELETE = "MANIFEST_DELETE"
TAG_PULL = "TAG_PULL"
MANIFEST_PULL = "MANIFEST_PULL"
SCAN_COMPLETED = "SCAN_COMPLETED"
SCAN_FAILED = "SCAN_FAILED"
PROMOTION = "PROMOTION"
PUSH_MIRRORING = "PUSH_MIRRORING"
POLL_MIRRORING = "POLL_MIRRORING"
REPO_CREATED = "REPO_CREATED"
REPO_UPDATED = "REPO_UPDATED"
REPO_DELETED = "REPO_DELETED"
VULNDB_UPDATED = "VULNDB_UPDATED"

EVENT_TYPES: tuple[str, ...] = (
    TAG_PUSH,
    TAG_DELETE,
    MANIFEST_PUSH,
    MANIFEST_DELETE,
    TAG_PULL,
    MANIFEST_PULL,
    SCAN_COMPLETED,
    SCAN_FAILED,
    PROMOTION,
    PUSH_MIRRORING,
    POLL_MIRRORING,
    REPO_CREATED,
    REPO_UPDATED,
    REPO_DELETED,
    VULNDB_UPDATED,
)

#: Pull events held in memory at most; beyond it the oldest are dropped (and counted).
MAX_BUFFERED_PULLS = 10_000

#: Times a consumer may fail on one event before it is skipped (logged), so one bad event
#: cannot stop a consumer for good.
MAX_CONSUMER_ATTEMPTS = 5

#: A gap in the event ids after a consumer's cursor may be an event whose transaction has not
#: committed yet: PostgreSQL hands out ids at insert time, and transactions commit in any order,
#: so id 10 can become visible after id 11. The events after a gap wait this long for it before
#: it is taken for a rolled-back insert (or a sequence jump after a crash) and passed over.
GAP_GRACE_SECONDS = 10.0

#: A consumer: called with an event and the write transaction that records it as handled.
Consumer = Callable[[EventRow, AsyncConnection], Awaitable[None]]
#: A batch consumer: called with the events of a batch (in order) and that transaction, so it can
#: look up what it needs once per batch rather than once per event.
BatchConsumer = Callable[[list[EventRow], AsyncConnection], Awaitable[None]]
#: Whether a consumer has anything configured to act on (read in the dispatcher's read transaction).
Activity = Callable[[AsyncConnection], Awaitable[bool]]
#: While a consumer has nothing to do, its cursor is written past the events it passed over at
#: most this often, or after this many events. Events a process passed over but did not write yet
#: may be handed over again after a restart: a consumer that became active within those seconds
#: then sees them.
LAZY_SECONDS = 5.0
LAZY_ADVANCE = 1000


def validate_types(types: Sequence[str]) -> list[str]:
    """Event type names as given, each known; ``InvalidInput`` names the first unknown one."""
    for t in types:
        if t not in EVENT_TYPES:
            raise InvalidInput(f"unknown event type {t!r}; known: {', '.join(EVENT_TYPES)}", "eventTypes")
    return list(dict.fromkeys(types))


@dataclass
class EventLog:
    db: Database
    clock: Clock
    record_pulls: bool = True
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    consumers: dict[str, Consumer] = field(default_factory=dict)
    _pulls: list[NewEvent] = field(default_factory=list)
    dropped_pulls: int = 0
    _failures: dict[tuple[str, int], int] = field(default_factory=dict)
    _types: dict[str, frozenset[str] | None] = field(default_factory=dict)
    _batch: dict[str, BatchConsumer] = field(default_factory=dict)
    _active: dict[str, Activity] = field(default_factory=dict)
    _passed: dict[str, int] = field(default_factory=dict)
    _advanced_at: dict[str, float] = field(default_factory=dict)
    #: the first missing id of each gap seen, and when it was first seen (``GAP_GRACE_SECONDS``)
    _gaps: dict[int, float] = field(default_factory=dict)
    #: consumers whose last dispatch stopped at a gap still in its grace period
    waiting: set[str] = field(default_factory=set)

    def subscribe(
        self,
        name: str,
        consumer: Consumer,
        types: Collection[str] | None = None,
        active: Activity | None = None,
    ) -> None:
        """Register a consumer of the events of ``types`` (all when ``None``); a new one starts
        after the events that exist when it first runs. ``active`` (a quick read) says whether the
        consumer has anything to act on at all (a webhook, a policy, a mirror): while it says no,
        events are passed over without a write."""
        if name in self.consumers or name in self._batch:
            raise ValueError(f"consumer {name!r} is registered already")
        self.consumers[name] = consumer
        self._types[name] = frozenset(validate_types(list(types))) if types is not None else None
        if active is not None:
            self._active[name] = active

    def subscribe_batch(
        self,
        name: str,
        consumer: BatchConsumer,
        types: Collection[str] | None = None,
        active: Activity | None = None,
    ) -> None:
        """Like ``subscribe``, for a consumer handed a batch of events at a time."""

        async def one(event: EventRow, conn: AsyncConnection) -> None:
            await consumer([event], conn)

        self.subscribe(name, one, types, active)
        self._batch[name] = consumer

    def event(
        self,
        type: str,
        *,
        repository: str | None = None,
        tag: str | None = None,
        digest: str | None = None,
        actor: str | None = None,
        contents: dict[str, Any] | None = None,
        at: dt.datetime | None = None,
    ) -> NewEvent:
        """An event with the common contents filled in (namespace, repository, tag, digest, imageName)."""
        namespace = namespace_of(repository) if repository else None
        body: dict[str, Any] = {}
        if repository is not None:
            body["namespace"] = namespace
            body["repository"] = repository
            if tag is not None:
                body["tag"] = tag
                body["imageName"] = f"{repository}:{tag}"
            elif digest is not None:
                body["imageName"] = f"{repository}@{digest}"
        if digest is not None:
            body["digest"] = digest
        if actor is not None:
            body["author"] = actor
        body.update(contents or {})
        return NewEvent(type, at or self.clock(), namespace, repository, tag, digest, actor, body)

    async def emit(
        self,
        conn: AsyncConnection,
        type: str,
        *,
        repository: str | None = None,
        tag: str | None = None,
        digest: str | None = None,
        actor: str | None = None,
        contents: dict[str, Any] | None = None,
    ) -> None:
        """Write an event inside ``conn``'s transaction: it commits (or rolls back) with the change."""
        await self.emit_all(
            conn,
            [self.event(type, repository=repository, tag=tag, digest=digest, actor=actor, contents=contents)],
        )

    async def emit_all(self, conn: AsyncConnection, new: Sequence[NewEvent]) -> None:
        await qe.insert_events(conn, new)
        self.wake.set()

    def record_pull(self, repository: str, reference: str, digest: str, actor: str | None) -> None:
        """Note a pull; written with the next batch (see the module's docstring)."""
        if not self.record_pulls:
            return
        is_tag = reference != digest
        now = self.clock()
        self._pulls.append(
            self.event(
                TAG_PULL if is_tag else MANIFEST_PULL,
                repository=repository,
                tag=reference if is_tag else None,
                digest=digest,
                actor=actor,
                contents={"pulledAt": now.isoformat()},
                at=now,
            )
        )
        if len(self._pulls) > MAX_BUFFERED_PULLS:
            excess = len(self._pulls) - MAX_BUFFERED_PULLS
            del self._pulls[:excess]
            self.dropped_pulls += excess

    async def flush_pulls(self) -> int:
        """Write the buffered pull events; returns how many."""
        if not self._pulls:
            return 0
        batch, self._pulls = self._pulls, []
        try:
            async with self.db.write() as conn:
                await qe.insert_events(conn, batch)
        except Exception:
            self._pulls[:0] = batch  # keep them for the next try
            raise
        return len(batch)

    async def recent(
        self,
        *,
        repository: str | None = None,
        namespace: str | None = None,
        types: Sequence[str] = (),
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[EventRow], int]:
        """Events newest first, with the total that matches."""
        validate_types(types)
        async with self.db.read() as conn:
            return await qe.list_events(
                conn, repository=repository, namespace=namespace, types=types, offset=offset, limit=limit
            )

    async def latest_event_id(self) -> int:
        """The newest event's id (0 when there is none): what the dispatcher polls."""
        async with self.db.read() as conn:
            return await qe.latest_id(conn)

    async def start_consumers(self) -> None:
        """Give each new consumer a cursor at the present: it is not handed the whole history,
        but every event from now on (call before serving requests)."""
        async with self.db.write() as conn:
            latest = await qe.latest_id(conn)
            for name in self.consumers:
                await qe.cursor(conn, name, self.clock(), latest)

    async def dispatch(self, consumer: str, batch: int = 100, reads: PassReads | None = None) -> int:
        """Hand ``consumer`` the events after its cursor; returns how many it was handed.

        A batch is handled in one write transaction that also moves the cursor past it (events of
        types the consumer did not subscribe to are passed over without a call). When a consumer
        fails inside a batch, the batch is rolled back and handed over again one event at a time,
        so the failing event is isolated and counted (``MAX_CONSUMER_ATTEMPTS``). Nothing is
        written while there is nothing new.

        ``reads``: the events already read in this pass of the dispatcher, which consumers at the
        same position share (one pass, one dict: a later read would miss nothing, it would only
        see events written since, which the next pass hands over).
        """
        active = self._active.get(consumer)
        wanted = self._types.get(consumer)
        async with self.db.read() as conn:
            position = await qe.cursor_position(conn, consumer)
            if position is not None:
                # Events this process passed over without writing (nothing for this consumer).
                start = max(position, self._passed.get(consumer, 0))
                if reads is None:
                    after = await qe.events_after(conn, start, batch)
                elif (after_read := reads.get((start, batch))) is None:
                    # Each event is read and parsed once per pass, not once per consumer: with
                    # four consumers, their reads took an eighth of a manifest PUT's event-loop CPU.
                    after = reads[(start, batch)] = await qe.events_after(conn, start, batch)
                else:
                    after = after_read
                pending = self._ready(consumer, start, after)
                # Asked only when an event is of the consumer's types (a query per consumer, on
                # the event loop, after each push that creates a repository, say).
                relevant = [e for e in pending if wanted is None or e.type in wanted]
                if relevant and active is not None and not await active(conn):
                    relevant = []
        if position is None:  # registered after start_consumers: from the present on
            async with self.db.write() as conn:
                position = await qe.cursor(conn, consumer, self.clock(), await qe.latest_id(conn))
            return 0
        if not pending:
            return 0
        if not relevant:
            # Nothing to do: remember it here, and write the cursor past it only now and then
            # (every LAZY_SECONDS or LAZY_ADVANCE events) rather than a transaction per pass.
            self._passed[consumer] = pending[-1].id
            now = time.monotonic()
            if (
                pending[-1].id - position < LAZY_ADVANCE
                and now - self._advanced_at.get(consumer, -1e9) < LAZY_SECONDS
            ):
                return len(pending)
            try:
                await self._handle(consumer, position, pending, [])
            except _CursorMoved:
                return 0
            self._advanced_at[consumer] = now
            return len(pending)
        if len(relevant) <= 1 or all(self._failures.get((consumer, e.id), 0) == 0 for e in relevant):
            try:
                return await self._handle(consumer, position, pending, relevant)
            except _CursorMoved:
                return 0
            except Exception:
                if len(relevant) <= 1:
                    self._count_failure(consumer, relevant[0].id if relevant else pending[-1].id)
                    raise
                log.warning("consumer %s failed in a batch; handing it the events one at a time", consumer)
        handled = 0
        for event in pending:
            try:
                await self._handle(consumer, position, [event], [event] if event in relevant else [])
            except _CursorMoved:
                break
            except Exception:
                self._count_failure(consumer, event.id)
                raise
            position = event.id
            handled += 1
        return handled

    def _ready(self, consumer: str, start: int, pending: list[EventRow]) -> list[EventRow]:
        """The events after ``start`` that may be handed over now: those before the first gap in
        their ids that is younger than ``GAP_GRACE_SECONDS`` (see there)."""
        now = time.monotonic()
        # Forgotten only long after every consumer has passed it (they dispatch every poll); a
        # consumer further ahead must not make one behind it wait for the same gap again.
        for missing in [m for m, seen in self._gaps.items() if now - seen > 6 * GAP_GRACE_SECONDS]:
            del self._gaps[missing]
        expected = start + 1
        for i, event in enumerate(pending):
            if event.id > expected:
                seen = self._gaps.setdefault(expected, now)
                if now - seen < GAP_GRACE_SECONDS:
                    self.waiting.add(consumer)
                    return pending[:i]
                log.info("event ids %d-%d never committed: passed over", expected, event.id - 1)
            expected = event.id + 1
        self.waiting.discard(consumer)
        return pending

    def _count_failure(self, consumer: str, event_id: int) -> None:
        key = (consumer, event_id)
        self._failures[key] = self._failures.get(key, 0) + 1

    async def _handle(
        self, consumer: str, position: int, events: list[EventRow], relevant: list[EventRow]
    ) -> int:
        """One transaction: the consumer's writes for ``relevant``, and the cursor past ``events``."""
        async with self.db.write() as conn:
            # Checked first, under the write lock: a batch another process is handling (or has
            # handled) is not worked through only to be rolled back.
            if await qe.lock_cursor(conn, consumer) != position:
                raise _CursorMoved(consumer)
            todo = []
            for event in relevant:
                if self._failures.get((consumer, event.id), 0) >= MAX_CONSUMER_ATTEMPTS:
                    log.error(
                        "consumer %s gave up on event %d (%s) after %d failures",
                        consumer,
                        event.id,
                        event.type,
                        MAX_CONSUMER_ATTEMPTS,
                    )
                else:
                    todo.append(event)
            batch = self._batch.get(consumer)
            if batch is not None:
                if todo:
                    await batch(todo, conn)
            else:
                for event in todo:
                    await self.consumers[consumer](event, conn)
            if not await qe.advance_cursor(conn, consumer, position, events[-1].id, self.clock()):
                raise _CursorMoved(consumer)
        for event in relevant:
            self._failures.pop((consumer, event.id), None)
        return len(events)

    async def event_by_id(self, event_id: int) -> EventRow | None:
        async with self.db.read() as conn:
            rows = await qe.events_after(conn, event_id - 1, 1)
        return rows[0] if rows and rows[0].id == event_id else None


class _CursorMoved(Exception):
    """Raised inside a dispatch transaction to roll it back: another process got there first."""
