"""Events (the activity of repositories and the registry), background jobs and schedules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from moorage.api.deps import CurrentPrincipal, PageParams, Services
from moorage.api.errors import guard_methods
from moorage.api.models import NAME_PATTERN, NO_NUL, REPOSITORY_PATTERN
from moorage.api.models_activity import (
    Event,
    EventPage,
    EventType,
    Job,
    JobDetail,
    JobPage,
    JobStatus,
    QueueStatus,
    Schedule,
)
from moorage.oci.reference import MAX_NAME_LENGTH, MAX_NAMESPACE_LENGTH

router = APIRouter(tags=["activity"])
Types = Annotated[list[EventType] | None, Query(alias="type", description="Only these event types")]


@router.get("/events", summary="List events, newest first (administrators; or one namespace or repository)")
async def list_events(
    svc: Services,
    principal: CurrentPrincipal,
    paging: PageParams,
    types: Types = None,
    repository: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_NAME_LENGTH, json_schema_extra={"pattern": REPOSITORY_PATTERN}),
    ] = None,
    namespace: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_NAMESPACE_LENGTH, json_schema_extra={"pattern": NAME_PATTERN}),
    ] = None,
) -> EventPage:
    rows, total = await svc.activity.events_for(
        principal,
        repository=repository,
        namespace=namespace,
        types=types or [],
        offset=paging.offset,
        limit=paging.limit,
    )
    return paging.render(EventPage, [Event.model_validate(r) for r in rows], total)


@router.get("/repositories/{namespace}/{name:path}/events", summary="A repository's activity, newest first")
async def repository_events(
    svc: Services,
    principal: CurrentPrincipal,
    paging: PageParams,
    namespace: Annotated[str, Path(max_length=255, pattern=NO_NUL)],
    name: Annotated[str, Path(max_length=255, pattern=NO_NUL)],
    types: Types = None,
) -> EventPage:
    rows, total = await svc.activity.repository_events(
        principal, f"{namespace}/{name}", types or [], paging.offset, paging.limit
    )
    return paging.render(EventPage, [Event.model_validate(r) for r in rows], total)


@router.get("/jobs", summary="List background jobs, newest first (administrators)")
async def list_jobs(
    svc: Services,
    principal: CurrentPrincipal,
    paging: PageParams,
    kind: Annotated[list[str] | None, Query(description="Only these kinds")] = None,
    status: Annotated[list[JobStatus] | None, Query(description="Only these statuses")] = None,
) -> JobPage:
    rows, total = await svc.activity.jobs_for(
        principal, tuple(kind or ()), tuple(status or ()), paging.offset, paging.limit
    )
    return paging.render(JobPage, [Job.model_validate(r) for r in rows], total)


@router.get("/jobs/status", summary="How many jobs of each kind are in each status (administrators)")
async def queue_status(svc: Services, principal: CurrentPrincipal) -> QueueStatus:
    return QueueStatus(kinds=await svc.activity.queue_status(principal))


@router.get("/jobs/{jobId}", summary="One job with its log (administrators)")
async def get_job(
    svc: Services,
    principal: CurrentPrincipal,
    job_id: Annotated[int, Path(alias="jobId", ge=1, le=2**31 - 1)],
) -> JobDetail:
    return JobDetail.model_validate(await svc.activity.job_for(principal, job_id))


@router.post("/jobs/{jobId}/cancel", summary="Cancel a job that has not started (administrators)")
async def cancel_job(
    svc: Services,
    principal: CurrentPrincipal,
    job_id: Annotated[int, Path(alias="jobId", ge=1, le=2**31 - 1)],
) -> Job:
    return Job.model_validate(await svc.activity.cancel_job(principal, job_id))


@router.get("/schedules", summary="Recurring jobs and when they run next (administrators)")
async def list_schedules(svc: Services, principal: CurrentPrincipal) -> list[Schedule]:
    return [Schedule.model_validate(s) for s in await svc.activity.schedules_for(principal)]


# The events path also matches the repository item route ({name:path} could end in "/events").
guard_methods(router, {"/repositories/{namespace}/{name:path}/events": ("GET",)})
