"""Garbage collection (``/system/gc``): run it now or on a schedule, read its runs (administrators)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, status

from moorage.api.deps import CurrentPrincipal, PageParams, Services
from moorage.api.models_gc import GcRequest, GcRun, GcRunDetail, GcRunPage, GcSchedule, GcScheduleUpdate
from moorage.db.gc import GcRunRow
from moorage.services.errors import NotFound

router = APIRouter(tags=["system"])

RunId = Annotated[int, Path(alias="runId", ge=1, le=2**31 - 1)]


def _run(row: GcRunRow) -> GcRun:
    return GcRun.model_validate(asdict(row))


@router.post(
    "/system/gc",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a garbage collection run, or a dry run that only reports (administrators)",
)
async def start_gc(svc: Services, principal: CurrentPrincipal, body: GcRequest | None = None) -> GcRun:
    body = body or GcRequest.model_validate({})
    return _run(await svc.gc.request(principal, body.dry_run, body.grace_seconds))


@router.get("/system/gc/runs", summary="Garbage collection runs, newest first (administrators)")
async def list_gc_runs(svc: Services, principal: CurrentPrincipal, paging: PageParams) -> GcRunPage:
    rows, total = await svc.gc.runs(principal, paging.offset, paging.limit)
    return paging.render(GcRunPage, [_run(r) for r in rows], total)


@router.get("/system/gc/runs/{runId}", summary="One garbage collection run, with its log (administrators)")
async def get_gc_run(svc: Services, principal: CurrentPrincipal, run_id: RunId) -> GcRunDetail:
    row = await svc.gc.run(run_id, principal)
    return GcRunDetail.model_validate({**asdict(row), "log": await svc.gc.run_log(row)})


@router.get("/system/gc/schedule", summary="The garbage collection schedule (administrators)")
async def get_gc_schedule(svc: Services, principal: CurrentPrincipal) -> GcSchedule:
    found = await svc.gc.schedule(principal)
    if found is None:
        raise NotFound("garbage collection has no schedule: set one with PUT /system/gc/schedule")
    return GcSchedule.model_validate(found)


@router.put("/system/gc/schedule", summary="Set the garbage collection schedule (administrators)")
async def set_gc_schedule(svc: Services, principal: CurrentPrincipal, body: GcScheduleUpdate) -> GcSchedule:
    return GcSchedule.model_validate(await svc.gc.set_schedule(principal, body.cron, body.enabled))
