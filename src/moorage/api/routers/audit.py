"""The audit log (``/audit``): authentications and permission changes, newest first."""

from __future__ import annotations

from fastapi import APIRouter

from moorage.api.deps import CurrentPrincipal, PageParams, Services
from moorage.api.models import AuditEntry, AuditPage

router = APIRouter(tags=["audit"])


@router.get("/audit", summary="Read the audit log (administrators)")
async def list_audit(svc: Services, principal: CurrentPrincipal, paging: PageParams) -> AuditPage:
    entries, total = await svc.audit.entries_for(principal, paging.offset, paging.limit)
    return paging.render(AuditPage, [AuditEntry.model_validate(e) for e in entries], total)
