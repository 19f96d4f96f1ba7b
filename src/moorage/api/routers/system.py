"""The vulnerability database (``/system/vulndb``): its status, and imports of OSV records (administrators)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from moorage.api.deps import CurrentPrincipal, Services
from moorage.api.models import VulnDbInfo
from moorage.api.models_activity import QueuedJob, ScanQueue
from moorage.services.errors import Forbidden, InvalidInput

router = APIRouter(tags=["system"])

#: Largest import body accepted (osv.dev's all.zip of one ecosystem is well under this).
MAX_IMPORT_BYTES = 1 << 30


@router.get(
    "/system/vulndb", summary="The vulnerability database: version, import time, counts per ecosystem"
)
async def vulndb_status(svc: Services, principal: CurrentPrincipal) -> VulnDbInfo:
    status = await svc.vulndb.status()
    return VulnDbInfo.model_validate(status)


@router.post(
    "/system/vulndb",
    summary="Import OSV records: the body is a .zip, .tar.gz or .json (administrators); scans are re-matched",
    description="Also a plain, bzip2 or xz tar. A body that is none of these, or that holds no valid OSV "
    "record, is refused (422) and changes nothing. Parsing runs off the event loop.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary", "minLength": 1}}
            },
        }
    },
)
async def vulndb_import(svc: Services, principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    if not principal.is_admin:
        raise Forbidden("only administrators may import vulnerability data")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_IMPORT_BYTES:
            raise InvalidInput(f"the import is larger than {MAX_IMPORT_BYTES} bytes", field="body")
    if not body:
        raise InvalidInput("the body is empty: send a .zip, .tar.gz or .json of OSV records", field="body")
    return await svc.scanning.import_vulndb(principal, bytes(body))


@router.get(
    "/system/scans", summary="How many scans are pending, scanning, completed and failed (administrators)"
)
async def scan_queue(svc: Services, principal: CurrentPrincipal) -> ScanQueue:
    return ScanQueue.model_validate(await svc.scanning.queue_status(principal))


@router.post(
    "/system/rescan",
    status_code=202,
    summary="Re-match every scan against the vulnerability database, as a background job (administrators)",
    description="No layer is read again: stored package inventories are matched anew. While a rescan waits, "
    "asking again answers the same job. Follow it at `/jobs/{jobId}`.",
)
async def rescan_all(svc: Services, principal: CurrentPrincipal) -> QueuedJob:
    return QueuedJob(job_id=await svc.scanning.request_rescan_all(principal))
