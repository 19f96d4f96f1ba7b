"""Repositories (``/repositories``).

A repository is addressed as ``/repositories/{namespace}/{name}`` where ``name`` may hold
further ``/``-separated components (``admin/a/b``). Sub-resources of a repository
(``…/tags``, ``…/manifests/{digest}``) belong in their own routers, included before this
one: ``{name:path}`` would otherwise swallow their suffix.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from moorage.api.deps import CurrentPrincipal, PageParams, Services
from moorage.api.models import (
    NO_NUL,
    Repository,
    RepositoryCreate,
    RepositoryPage,
    RepositoryUpdate,
    Visibility,
)

router = APIRouter(tags=["repositories"])
ITEM = "/repositories/{namespace}/{name:path}"
Namespace = Annotated[str, Path(max_length=255, pattern=NO_NUL)]
RepoName = Annotated[str, Path(max_length=255, pattern=NO_NUL, description="May contain '/'")]


@router.get("/repositories", summary="List the repositories the caller may see")
async def list_repositories(
    svc: Services,
    principal: CurrentPrincipal,
    paging: PageParams,
    namespace: Annotated[
        str | None, Query(max_length=255, pattern=NO_NUL, description="Only this namespace")
    ] = None,
    visibility: Annotated[Visibility | None, Query(description="Only public or only private ones")] = None,
    q: Annotated[str | None, Query(max_length=255, pattern=NO_NUL, description="Name contains this")] = None,
) -> RepositoryPage:
    repos, total = await svc.repositories.list(
        principal,
        namespace=namespace,
        visibility=visibility,
        search=q,
        offset=paging.offset,
        limit=paging.limit,
    )
    return paging.render(RepositoryPage, [Repository.model_validate(r) for r in repos], total)


@router.post("/repositories", status_code=201, summary="Create a repository (namespace administrators)")
async def create_repository(svc: Services, principal: CurrentPrincipal, body: RepositoryCreate) -> Repository:
    repo = await svc.repositories.create(
        principal,
        body.name,
        visibility=body.visibility,
        description=body.description,
        immutable_tags=body.immutable_tags,
        scan_on_push=body.scan_on_push,
    )
    return Repository.model_validate(repo)


@router.get(ITEM, summary="Get a repository")
async def get_repository(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName
) -> Repository:
    return Repository.model_validate(await svc.repositories.get(principal, f"{namespace}/{name}"))


@router.patch(ITEM, summary="Change a repository's settings (repository administrators)")
async def update_repository(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, body: RepositoryUpdate
) -> Repository:
    repo = await svc.repositories.update(
        principal,
        f"{namespace}/{name}",
        visibility=body.visibility,
        description=body.description,
        immutable_tags=body.immutable_tags,
        scan_on_push=body.scan_on_push,
    )
    return Repository.model_validate(repo)


@router.delete(
    ITEM, status_code=204, summary="Delete a repository and its content (repository administrators)"
)
async def delete_repository(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName
) -> None:
    await svc.repositories.delete(principal, f"{namespace}/{name}")
