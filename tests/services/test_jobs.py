"""Background jobs: the queue in the database, retries with backoff, schedules, surviving a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Backend, make_settings

from moorage.app import MoorageApp, create_app
from moorage.jobs.runner import JobRunner
from moorage.services.errors import InvalidInput
from moorage.services.jobs import JobContext, PermanentFailure


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def held(tmp_path: Path, backend: Backend, clock: Clock) -> AsyncIterator[MoorageApp]:
    """An app whose jobs and schedules run on a clock the test holds."""
    application = create_app(make_settings(tmp_path / "data", backend))
    application.services.jobs.clock = clock
    await application.services.prepare()
    try:
        yield application
    finally:
        await application.services.close()


async def _run_one(app: MoorageApp) -> Any:
    job = await app.services.jobs.claim_next()
    assert job is not None
    await app.services.jobs.run(job)
    return await app.services.jobs.get(job.id)


async def test_a_job_runs_once_with_its_result_and_log(held: MoorageApp) -> None:
    jobs = held.services.jobs

    async def handler(ctx: JobContext) -> dict[str, Any]:
        await ctx.log(f"doubling {ctx.payload['n']}")
        return {"doubled": ctx.payload["n"] * 2}

    jobs.handle("test.double", handler)
    job_id = await jobs.enqueue("test.double", {"n": 21})
    assert job_id is not None
    done = await _run_one(held)
    assert (done.status, done.result, done.attempts) == ("succeeded", {"doubled": 42}, 1)
    assert "doubling 21" in done.log
    assert await jobs.claim_next() is None


async def test_failures_retry_with_exponential_backoff_then_fail(held: MoorageApp, clock: Clock) -> None:
    jobs = held.services.jobs

    async def handler(ctx: JobContext) -> None:
        raise ConnectionError(f"attempt {ctx.job.attempts}")

    jobs.handle("test.flaky", handler)
    await jobs.enqueue("test.flaky", {}, max_attempts=3, backoff_seconds=10)
    first = await _run_one(held)
    assert first.status == "pending"
    assert first.run_after == clock.now + dt.timedelta(seconds=10)
    assert await jobs.claim_next() is None  # not due yet
    clock.advance(seconds=10)
    second = await _run_one(held)
    assert second.run_after == clock.now + dt.timedelta(seconds=20)
    clock.advance(seconds=20)
    third = await _run_one(held)
    assert (third.status, third.attempts) == ("failed", 3)
    assert "ConnectionError: attempt 3" in (third.error or "")
    assert third.log.count("failed") == 3


async def test_permanent_failure_is_not_retried(held: MoorageApp) -> None:
    jobs = held.services.jobs

    async def handler(ctx: JobContext) -> None:
        raise PermanentFailure("the target refuses these credentials")

    jobs.handle("test.refused", handler)
    await jobs.enqueue("test.refused", {}, max_attempts=5)
    done = await _run_one(held)
    assert (done.status, done.attempts, done.error) == ("failed", 1, "the target refuses these credentials")


async def test_dedupe_key_enqueues_once(held: MoorageApp) -> None:
    jobs = held.services.jobs
    assert await jobs.enqueue("test.once", {}, dedupe_key="k") is not None
    assert await jobs.enqueue("test.once", {}, dedupe_key="k") is None
    assert (await jobs.jobs(kinds=("test.once",)))[1] == 1


async def test_jobs_of_unknown_kinds_wait_for_a_process_that_handles_them(held: MoorageApp) -> None:
    await held.services.jobs.enqueue("test.elsewhere", {})
    assert await held.services.jobs.claim_next() is None


async def test_a_job_left_running_by_a_stopped_process_runs_again(tmp_path: Path, backend: Backend) -> None:
    settings = make_settings(tmp_path / "data", backend)
    first = create_app(settings)
    await first.services.prepare()
    first.services.jobs.handle("test.work", _noop)
    job_id = await first.services.jobs.enqueue("test.work", {"x": 1})
    claimed = await first.services.jobs.claim_next()
    assert claimed is not None
    assert claimed.id == job_id
    await first.services.close()  # "crashes" while the job runs

    second = create_app(settings)
    await second.services.prepare()
    try:
        ran: list[int] = []

        async def handler(ctx: JobContext) -> None:
            ran.append(ctx.job.id)

        second.services.jobs.handle("test.work", handler)
        runner = asyncio.create_task(JobRunner(second.services.jobs, 2, poll_seconds=0.05).run())
        try:
            async with asyncio.timeout(10):
                done = await second.services.jobs.wait(job_id)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        assert done.status == "succeeded"
        assert done.attempts == 2
        assert ran == [job_id]
    finally:
        await second.services.close()


async def _noop(ctx: JobContext) -> None:
    return None


async def test_schedules_fire_once_per_due_time(held: MoorageApp, clock: Clock) -> None:
    jobs = held.services.jobs
    schedule = await jobs.schedule("test:every-5", "test.tick", "*/5 * * * *", {"what": "tick"})
    assert schedule.next_run_at == clock.now + dt.timedelta(minutes=5)
    assert await jobs.fire_due_schedules() == []
    clock.advance(minutes=5)
    fired = await jobs.fire_due_schedules()
    assert len(fired) == 1
    assert await jobs.fire_due_schedules() == []  # fired once for this time
    job = await jobs.get(fired[0])
    assert job.payload == {"what": "tick", "schedule": "test:every-5"}
    # Down for an hour: it fires once, then resumes at the next due time.
    clock.advance(hours=1)
    assert len(await jobs.fire_due_schedules()) == 1
    found = await jobs.get_schedule("test:every-5")
    assert found is not None
    assert found.next_run_at == clock.now + dt.timedelta(minutes=5)
    assert found.last_job_id is not None


async def test_disabled_and_removed_schedules_do_not_fire(held: MoorageApp, clock: Clock) -> None:
    jobs = held.services.jobs
    await jobs.schedule("test:off", "test.tick", "* * * * *", {}, enabled=False)
    await jobs.schedule("test:gone", "test.tick", "* * * * *", {})
    assert await jobs.unschedule("test:gone")
    clock.advance(minutes=3)
    assert await jobs.fire_due_schedules() == []
    assert [s.name for s in await jobs.schedules("test:")] == ["test:off"]


async def test_a_cron_expression_that_does_not_parse_is_refused(held: MoorageApp) -> None:
    with pytest.raises(InvalidInput) as info:
        await held.services.jobs.schedule("test:bad", "test.tick", "every day", {})
    assert info.value.field == "cron"
    assert await held.services.jobs.get_schedule("test:bad") is None
