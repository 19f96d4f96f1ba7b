"""Push and pull mirrors of a repository (``/repositories/{namespace}/{name}/push-mirrors`` and
``…/pull-mirrors``), for its administrators.

Included before the repositories router, whose ``{name:path}`` would otherwise take the suffix.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response

from moorage.api.deps import CurrentPrincipal, Services
from moorage.api.errors import guard_methods
from moorage.api.models import NO_NUL
from moorage.api.models_mirroring import (
    Mirror,
    MirrorCreate,
    MirrorUpdate,
    PullMirrorCreate,
    PullMirrorUpdate,
    PushMirrorCreate,
    PushMirrorUpdate,
    SyncStarted,
)
from moorage.db.mirroring import PULL, PUSH

router = APIRouter(tags=["mirroring"])
Namespace = Annotated[str, Path(max_length=255, pattern=NO_NUL)]
RepoName = Annotated[str, Path(max_length=255, pattern=NO_NUL, description="May contain '/'")]
MirrorId = Annotated[int, Path(alias="mirrorId", ge=1, le=2**31 - 1)]

PUSH_LIST = "/repositories/{namespace}/{name:path}/push-mirrors"
PULL_LIST = "/repositories/{namespace}/{name:path}/pull-mirrors"
PUSH_ITEM = PUSH_LIST + "/{mirrorId}"
PULL_ITEM = PULL_LIST + "/{mirrorId}"

#: Fields that cannot be cleared: ``null`` leaves them as they are.
_NOT_NULLABLE = ("url", "remote_repository", "skip_verify", "rules", "enabled", "tag_template", "cron")


def _rules(body: MirrorCreate | MirrorUpdate) -> list[dict[str, Any]] | None:
    return [r.model_dump() for r in body.rules] if body.rules is not None else None


def _changes(body: MirrorUpdate) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = _rules(body) if name == "rules" else getattr(body, name)
        if value is None and name in _NOT_NULLABLE:
            continue
        changes["cron_expression" if name == "cron" else name] = value
    return changes


async def _create(
    svc: Services, principal: CurrentPrincipal, repository: str, direction: str, body: MirrorCreate
) -> Mirror:
    mirror = await svc.mirroring.create(
        principal,
        repository,
        direction,
        url=body.url,
        remote_repository=body.remote_repository,
        username=body.username,
        password=body.password,
        ca_certificate=body.ca_certificate,
        skip_verify=body.skip_verify,
        tag_template=body.tag_template if isinstance(body, PushMirrorCreate) else None,
        rules=_rules(body),
        cron_expression=body.cron if isinstance(body, PullMirrorCreate) else None,
        enabled=body.enabled,
    )
    return Mirror.model_validate(mirror)


# -- push mirrors ---------------------------------------------------------------------------


@router.get(PUSH_LIST, summary="List a repository's push mirrors (repository administrators)")
async def list_push_mirrors(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName
) -> list[Mirror]:
    mirrors = await svc.mirroring.mirrors(principal, f"{namespace}/{name}", PUSH)
    return [Mirror.model_validate(m) for m in mirrors]


@router.post(
    PUSH_LIST,
    status_code=201,
    summary="Add a push mirror: pushed tags are sent to a remote registry (checks the credentials first)",
)
async def create_push_mirror(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, body: PushMirrorCreate
) -> Mirror:
    return await _create(svc, principal, f"{namespace}/{name}", PUSH, body)


@router.get(PUSH_ITEM, summary="Get a push mirror")
async def get_push_mirror(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, mirror_id: MirrorId
) -> Mirror:
    return Mirror.model_validate(await svc.mirroring.get(principal, f"{namespace}/{name}", PUSH, mirror_id))


@router.patch(PUSH_ITEM, summary="Change a push mirror (a new connection is checked first)")
async def update_push_mirror(
    svc: Services,
    principal: CurrentPrincipal,
    namespace: Namespace,
    name: RepoName,
    mirror_id: MirrorId,
    body: PushMirrorUpdate,
) -> Mirror:
    mirror = await svc.mirroring.update(principal, f"{namespace}/{name}", PUSH, mirror_id, _changes(body))
    return Mirror.model_validate(mirror)


@router.delete(PUSH_ITEM, status_code=204, summary="Delete a push mirror")
async def delete_push_mirror(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, mirror_id: MirrorId
) -> Response:
    await svc.mirroring.delete(principal, f"{namespace}/{name}", PUSH, mirror_id)
    return Response(status_code=204)


@router.post(
    PUSH_ITEM + "/sync",
    status_code=202,
    summary="Sync now: send every tag the mirror's rules accept (a job)",
)
async def sync_push_mirror(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, mirror_id: MirrorId
) -> SyncStarted:
    job_id = await svc.mirroring.sync(principal, f"{namespace}/{name}", PUSH, mirror_id)
    return SyncStarted(job_id=job_id)


# -- pull mirrors ---------------------------------------------------------------------------


@router.get(PULL_LIST, summary="List a repository's pull mirrors (repository administrators)")
async def list_pull_mirrors(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName
) -> list[Mirror]:
    mirrors = await svc.mirroring.mirrors(principal, f"{namespace}/{name}", PULL)
    return [Mirror.model_validate(m) for m in mirrors]


@router.post(
    PULL_LIST,
    status_code=201,
    summary="Add a pull mirror: a remote repository polled on a schedule (checks the credentials first)",
)
async def create_pull_mirror(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, body: PullMirrorCreate
) -> Mirror:
    return await _create(svc, principal, f"{namespace}/{name}", PULL, body)


@router.get(PULL_ITEM, summary="Get a pull mirror")
async def get_pull_mirror(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, mirror_id: MirrorId
) -> Mirror:
    return Mirror.model_validate(await svc.mirroring.get(principal, f"{namespace}/{name}", PULL, mirror_id))


@router.patch(PULL_ITEM, summary="Change a pull mirror (a new connection is checked first)")
async def update_pull_mirror(
    svc: Services,
    principal: CurrentPrincipal,
    namespace: Namespace,
    name: RepoName,
    mirror_id: MirrorId,
    body: PullMirrorUpdate,
) -> Mirror:
    mirror = await svc.mirroring.update(principal, f"{namespace}/{name}", PULL, mirror_id, _changes(body))
    return Mirror.model_validate(mirror)


@router.delete(PULL_ITEM, status_code=204, summary="Delete a pull mirror and its schedule")
async def delete_pull_mirror(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, mirror_id: MirrorId
) -> Response:
    await svc.mirroring.delete(principal, f"{namespace}/{name}", PULL, mirror_id)
    return Response(status_code=204)


@router.post(
    PULL_ITEM + "/sync",
    status_code=202,
    summary="Sync now: poll the remote and copy new or changed tags in (a job)",
)
async def sync_pull_mirror(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, mirror_id: MirrorId
) -> SyncStarted:
    job_id = await svc.mirroring.sync(principal, f"{namespace}/{name}", PULL, mirror_id)
    return SyncStarted(job_id=job_id)


# These paths also match the repository item route ({name:path} could end in "/push-mirrors"):
# other methods on them are answered here, so they are not taken as a repository name.
_ALLOWED = {
    PUSH_LIST: ("GET", "POST"),
    PULL_LIST: ("GET", "POST"),
    PUSH_ITEM: ("GET", "PATCH", "DELETE"),
    PULL_ITEM: ("GET", "PATCH", "DELETE"),
    PUSH_ITEM + "/sync": ("POST",),
    PULL_ITEM + "/sync": ("POST",),
}


guard_methods(router, _ALLOWED)
