"""Request and response bodies of the garbage collection endpoints (camelCase on the wire)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from moorage.api.models import Input, Output, Page, UtcDatetime, _Clean
from moorage.services.gc import MAX_GRACE

GcStatus = Literal["queued", "running", "succeeded", "failed"]
GcTrigger = Literal["api", "schedule", "cli"]


class GcRequest(Input):
    dry_run: bool = Field(False, description="Only report what would be freed; change nothing")
    grace_seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_GRACE.total_seconds(),
        description="Keep what is newer than this; the registry's gc_grace_hours when left out",
    )


class GcSummary(Output):
    """What a run found (dry run) or removed, in detail."""

    cutoff: str = Field(description="Content newer than this was kept (mark start minus the grace period)")
    repositories: int = Field(description="Repositories holding garbage")
    manifests: int
    manifest_bytes: int
    blob_links: int = Field(description="Repository links to blobs no manifest of the repository references")
    blobs: int
    blob_bytes: int
    orphan_files: int = Field(description="Files in the store without a blob record")
    orphan_bytes: int
    scans: int = Field(description="Scan records of deleted manifests")
    restored_files: int = Field(description="Files an interrupted run had set aside, put back")
    kept_manifests: int
    kept_blobs: int
    bytes_freed: int


class GcRun(Output):
    id: int
    status: GcStatus
    dry_run: bool
    trigger: GcTrigger
    requested_by: str | None
    grace_seconds: float
    job_id: int | None = Field(description="The gc.run job (GET /jobs/{id}); none for runs from the CLI")
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    manifests_deleted: int = Field(description="Found, for a dry run")
    blob_links_deleted: int = Field(description="Found, for a dry run")
    blobs_deleted: int = Field(description="Blobs and orphan files; found, for a dry run")
    bytes_freed: int = Field(description="Would be freed, for a dry run")
    summary: GcSummary | None
    error: str | None


class GcRunDetail(GcRun):
    log: str | None = Field(description="The job's log")


class GcRunPage(Page[GcRun]):
    pass


def _cron_field(number: str) -> str:
    item = rf"(?:\*|(?:{number})(?:-(?:{number}))?)(?:/[1-9][0-9]?)?"
    return rf"{item}(?:,{item})*"


#: Exactly the expressions every field of which can come due: numbers, ``*``, ranges, steps and
#: lists (days of the month 1-28, so that every month has them), or an ``@daily``-style alias.
CRON_PATTERN = (
    r"^(?:@(?:yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    + " +".join(
        _cron_field(n)
        for n in (r"[1-5]?[0-9]", r"1?[0-9]|2[0-3]", r"[1-9]|1[0-9]|2[0-8]", r"[1-9]|1[0-2]", r"[0-7]")
    )
    + ")$"
)
Cron = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=CRON_PATTERN,
        description="Cron expression, UTC: minute hour day-of-month (1-28) month weekday, each a number, "
        "*, a range, a step (*/15) or a list; or @hourly, @daily, @weekly, @monthly, @yearly",
        examples=["0 4 * * 0"],
    ),
    _Clean,
]


class GcScheduleUpdate(Input):
    cron: Cron
    enabled: bool = True


class GcSchedule(Output):
    cron: str
    enabled: bool
    next_run_at: UtcDatetime
    last_run_at: UtcDatetime | None
    last_job_id: int | None
