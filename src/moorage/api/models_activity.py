"""Bodies of the events, jobs and schedules endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from moorage.api.models import Output, Page, UtcDatetime
from moorage.services.events import EVENT_TYPES

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
JobStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]


class Event(Output):
    id: int
    type: str = Field(description=f"One of {', '.join(EVENT_TYPES)}")
    created_at: UtcDatetime
    namespace: str | None
    repository: str | None
    tag: str | None
    digest: str | None
    actor: str | None
    contents: dict[str, Any] = Field(
        description="Per type: namespace, repository, tag, digest, imageName, author…"
    )


class EventPage(Page[Event]):
    pass


class Job(Output):
    id: int
    kind: str
    status: JobStatus
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    created_at: UtcDatetime
    run_after: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class JobDetail(Job):
    log: str = Field(description="What the job wrote while it ran, one timestamped line per entry")


class JobPage(Page[Job]):
    pass


class Schedule(Output):
    name: str
    kind: str
    cron: str
    payload: dict[str, Any]
    enabled: bool
    next_run_at: UtcDatetime
    last_run_at: UtcDatetime | None
    last_job_id: int | None


class QueueStatus(Output):
    kinds: dict[str, dict[str, int]] = Field(description="Per job kind, how many jobs are in each status")


class QueuedJob(Output):
    job_id: int = Field(description="The background job doing the work: GET /jobs/{jobId}")


class ScanQueue(Output):
    pending: int
    scanning: int
    completed: int
    failed: int
