"""The event dispatcher (moorage/jobs/runner.py) over the real event log and database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.app import MoorageApp
from moorage.db.events import EventRow, PassReads
from moorage.jobs.runner import EventDispatcher
from moorage.services import events as ev
from moorage.services.events import EventLog

CONSUMER = "test-consumer"


class CountingDispatches:
    """The application's event log, counting the dispatches the dispatcher asks of it."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.dispatches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)

    async def dispatch(self, consumer: str, batch: int = 100, reads: PassReads | None = None) -> int:
        self.dispatches += 1
        return await self.log.dispatch(consumer, batch, reads)


async def emit(log: EventLog, tag: str) -> None:
    """Write a TAG_PUSH as another process would: straight into the database, no wake-up."""
    async with log.db.write() as conn:
        await log.emit_all(conn, [log.event(ev.TAG_PUSH, repository="team/app", tag=tag, digest=None)])
    log.wake.clear()


@pytest.fixture
def handed(app: MoorageApp) -> list[str]:
    seen: list[str] = []

    async def consumer(event: EventRow, conn: AsyncConnection) -> None:
        seen.append(str(event.tag))

    app.services.events.subscribe(CONSUMER, consumer, types=(ev.TAG_PUSH,))
    return seen


async def test_an_idle_pass_stops_at_the_newest_event_id(app: MoorageApp, handed: list[str]) -> None:
    source = CountingDispatches(app.services.events)
    dispatcher = EventDispatcher(source)  # type: ignore[arg-type]
    consumers = source.consumers
    await dispatcher.step(consumers)  # the new consumer's cursor starts at the present
    await emit(app.services.events, "v1")
    assert await dispatcher.step(consumers) >= 1
    assert handed == ["v1"]
    await dispatcher.step(consumers)  # nothing new: this pass finds nothing to do, and says so
    source.dispatches = 0
    for _ in range(3):
        assert await dispatcher.step(consumers) == 0
    assert source.dispatches == 0  # no consumer was asked again
    await emit(app.services.events, "v2")  # written elsewhere: the newest id moves
    assert await dispatcher.step(consumers) >= 1
    assert handed == ["v1", "v2"]
    assert source.dispatches == len(consumers)


async def test_a_failed_consumer_is_asked_again_without_new_events(app: MoorageApp) -> None:
    attempts: list[str] = []

    async def flaky(event: EventRow, conn: AsyncConnection) -> None:
        attempts.append(str(event.tag))
        if len(attempts) <= 2:
            raise RuntimeError("the first two attempts fail")

    app.services.events.subscribe(CONSUMER, flaky, types=(ev.TAG_PUSH,))
    dispatcher = EventDispatcher(app.services.events)
    consumers = app.services.events.consumers
    await dispatcher.step(consumers)
    await emit(app.services.events, "v1")
    await dispatcher.step(consumers)  # fails (logged); the other consumers pass the event over
    assert attempts == ["v1"]
    # Nothing handled and nothing new, but a consumer failed: not an idle pass to skip after.
    assert await dispatcher.step(consumers) == 0
    assert attempts == ["v1", "v1"]
    assert await dispatcher.step(consumers) == 1  # the same event, with no new one written
    assert attempts == ["v1", "v1", "v1"]


async def test_a_consumer_registered_later_is_not_skipped(app: MoorageApp, handed: list[str]) -> None:
    dispatcher = EventDispatcher(app.services.events)
    events = app.services.events
    await dispatcher.step(events.consumers)
    await dispatcher.step(events.consumers)  # idle
    later: list[str] = []

    async def consumer(event: EventRow, conn: AsyncConnection) -> None:
        later.append(str(event.tag))

    events.subscribe("later", consumer, types=(ev.TAG_PUSH,))
    await dispatcher.step(events.consumers)  # the new consumer gets its cursor (not skipped as idle)
    await emit(events, "v1")
    await dispatcher.step(events.consumers)
    assert handed == ["v1"]
    assert later == ["v1"]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_consumer_waiting_for_an_event_in_flight_is_not_idle(
    app: MoorageApp, handed: list[str]
) -> None:
    """The event that commits late has a lower id than the newest: the newest id does not move
    when it arrives, so the pass before must not have been taken for an idle one."""
    events = app.services.events
    dispatcher = EventDispatcher(events)
    await dispatcher.step(events.consumers)
    async with events.db.write() as slow:
        await events.emit_all(
            slow, [events.event(ev.TAG_PUSH, repository="team/app", tag="late", digest=None)]
        )
        await emit(events, "early")
        await dispatcher.step(events.consumers)
        assert handed == []
        await dispatcher.step(events.consumers)
    assert await dispatcher.step(events.consumers) >= 1
    assert handed == ["late", "early"]
