"""Queries for background jobs (the queue is the ``pending`` rows) and cron schedules."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db.content import _insert
from moorage.db.events import aware
from moorage.db.tables import jobs, schedules

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "pending", "running", "succeeded", "failed", "cancelled"


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    kind: str
    status: str
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    log: str
    attempts: int
    max_attempts: int
    backoff_seconds: float
    dedupe_key: str | None
    created_at: dt.datetime
    run_after: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    id: int
    name: str
    kind: str
    cron: str
    payload: dict[str, Any]
    enabled: bool
    next_run_at: dt.datetime
    last_run_at: dt.datetime | None
    last_job_id: int | None
    created_at: dt.datetime


def _opt(value: dt.datetime | None) -> dt.datetime | None:
    return aware(value) if value is not None else None


def _job(r: Any) -> JobRow:
    return JobRow(
        r.id,
        r.kind,
        r.status,
        json.loads(r.payload),
        json.loads(r.result) if r.result else None,
        r.error,
        r.log,
        r.attempts,
        r.max_attempts,
        r.backoff_seconds,
        r.dedupe_key,
        aware(r.created_at),
        aware(r.run_after),
        _opt(r.started_at),
        _opt(r.finished_at),
    )


def _schedule(r: Any) -> ScheduleRow:
    return ScheduleRow(
        r.id,
        r.name,
        r.kind,
        r.cron,
        json.loads(r.payload),
        bool(r.enabled),
        aware(r.next_run_at),
        _opt(r.last_run_at),
        r.last_job_id,
        aware(r.created_at),
    )


async def insert_job(
    conn: AsyncConnection,
    kind: str,
    payload: dict[str, Any],
    now: dt.datetime,
    run_after: dt.datetime,
    max_attempts: int,
    backoff_seconds: float,
    dedupe_key: str | None,
) -> int | None:
    """The new job's id; ``None`` when a job with ``dedupe_key`` exists already."""
    stmt = (
        _insert(conn, jobs)  # type: ignore[attr-defined]
        .values(
            kind=kind,
            status=PENDING,
            payload=json.dumps(payload, sort_keys=True, default=str),
            log="",
            attempts=0,
            max_attempts=max_attempts,
            backoff_seconds=backoff_seconds,
            dedupe_key=dedupe_key,
            created_at=now,
            run_after=run_after,
        )
        .on_conflict_do_nothing()
        .returning(jobs.c.id)
    )
    return (await conn.execute(stmt)).scalar_one_or_none()


async def due_job_ids(
    conn: AsyncConnection, kinds: Collection[str], now: dt.datetime, limit: int
) -> list[int]:
    rows = await conn.execute(
        select(jobs.c.id)
        .where(jobs.c.status == PENDING, jobs.c.run_after <= now, jobs.c.kind.in_(list(kinds)))
        .order_by(jobs.c.run_after, jobs.c.id)
        .limit(limit)
    )
    return [r[0] for r in rows]


async def claim(conn: AsyncConnection, job_id: int, now: dt.datetime) -> bool:
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == PENDING)
        .values(status=RUNNING, started_at=now, attempts=jobs.c.attempts + 1)
    )
    return bool(result.rowcount == 1)


async def job(conn: AsyncConnection, job_id: int) -> JobRow | None:
    row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
    return _job(row) if row else None


async def append_log(conn: AsyncConnection, job_id: int, text: str) -> None:
    await conn.execute(update(jobs).where(jobs.c.id == job_id).values(log=jobs.c.log + text))


async def finish(
    conn: AsyncConnection,
    job_id: int,
    status: str,
    now: dt.datetime,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            status=status,
            finished_at=now,
            result=json.dumps(result, sort_keys=True, default=str) if result is not None else None,
            error=error,
        )
    )


async def retry_later(conn: AsyncConnection, job_id: int, run_after: dt.datetime, error: str) -> None:
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(status=PENDING, run_after=run_after, started_at=None, error=error)
    )


async def requeue_stale(conn: AsyncConnection, started_before: dt.datetime) -> int:
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.status == RUNNING, jobs.c.started_at < started_before)
        .values(status=PENDING, started_at=None)
    )
    return int(result.rowcount or 0)


async def cancel(conn: AsyncConnection, job_id: int, now: dt.datetime) -> bool:
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == PENDING)
        .values(status=CANCELLED, finished_at=now)
    )
    return bool(result.rowcount == 1)


async def list_jobs(
    conn: AsyncConnection,
    kinds: Collection[str] = (),
    statuses: Collection[str] = (),
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[JobRow], int]:
    where = []
    if kinds:
        where.append(jobs.c.kind.in_(list(kinds)))
    if statuses:
        where.append(jobs.c.status.in_(list(statuses)))
    total = int((await conn.execute(select(func.count()).select_from(jobs).where(*where))).scalar_one())
    rows = await conn.execute(
        select(jobs).where(*where).order_by(jobs.c.id.desc()).offset(offset).limit(limit)
    )
    return [_job(r) for r in rows], total


async def count_by_status(conn: AsyncConnection) -> dict[str, dict[str, int]]:
    """``{kind: {status: n}}`` for every kind with jobs."""
    rows = await conn.execute(
        select(jobs.c.kind, jobs.c.status, func.count()).group_by(jobs.c.kind, jobs.c.status)
    )
    out: dict[str, dict[str, int]] = {}
    for kind, status, n in rows:
        out.setdefault(kind, {})[status] = int(n)
    return out


# --- schedules ---


async def upsert_schedule(
    conn: AsyncConnection,
    name: str,
    kind: str,
    cron: str,
    payload: dict[str, Any],
    enabled: bool,
    next_run_at: dt.datetime,
    now: dt.datetime,
) -> None:
    values = {
        "kind": kind,
        "cron": cron,
        "payload": json.dumps(payload, sort_keys=True, default=str),
        "enabled": enabled,
        "next_run_at": next_run_at,
    }
    stmt = _insert(conn, schedules).values(name=name, created_at=now, **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=[schedules.c.name], set_=values))  # type: ignore[attr-defined]


async def schedule(conn: AsyncConnection, name: str) -> ScheduleRow | None:
    row = (await conn.execute(select(schedules).where(schedules.c.name == name))).first()
    return _schedule(row) if row else None


async def list_schedules(conn: AsyncConnection, prefix: str | None = None) -> list[ScheduleRow]:
    query = select(schedules).order_by(schedules.c.name)
    if prefix is not None:
        query = query.where(schedules.c.name.startswith(prefix, autoescape=True))
    return [_schedule(r) for r in await conn.execute(query)]


async def delete_schedule(conn: AsyncConnection, name: str) -> bool:
    result = await conn.execute(delete(schedules).where(schedules.c.name == name))
    return bool(result.rowcount)


async def due_schedules(conn: AsyncConnection, now: dt.datetime) -> list[ScheduleRow]:
    rows = await conn.execute(
        select(schedules).where(schedules.c.enabled.is_(True), schedules.c.next_run_at <= now)
    )
    return [_schedule(r) for r in rows]


async def advance_schedule(
    conn: AsyncConnection, schedule_id: int, expected: dt.datetime, next_run_at: dt.datetime, now: dt.datetime
) -> bool:
    """Compare-and-set on ``next_run_at``, so one process fires a due schedule once."""
    result = await conn.execute(
        update(schedules)
        .where(schedules.c.id == schedule_id, schedules.c.next_run_at == expected)
        .values(next_run_at=next_run_at, last_run_at=now)
    )
    return bool(result.rowcount == 1)


async def set_schedule_job(conn: AsyncConnection, schedule_id: int, job_id: int) -> None:
    await conn.execute(update(schedules).where(schedules.c.id == schedule_id).values(last_job_id=job_id))
