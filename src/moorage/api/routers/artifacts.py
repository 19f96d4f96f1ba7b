"""What a repository holds (``/repositories/{namespace}/{name}/tags`` and ``…/manifests/{digest}``).

Included before the repositories router, whose ``{name:path}`` would otherwise take the suffix.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from moorage.api.deps import CurrentPrincipal, Services
from moorage.api.errors import error_response
from moorage.api.models import NO_NUL, ManifestDetail, Tag

router = APIRouter(tags=["artifacts"])
Namespace = Annotated[str, Path(max_length=255, pattern=NO_NUL)]
RepoName = Annotated[str, Path(max_length=255, pattern=NO_NUL, description="May contain '/'")]
Digest = Annotated[str, Path(max_length=200, pattern=r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")]


@router.get(
    "/repositories/{namespace}/{name:path}/tags",
    summary="List a repository's tags with their types, platforms, sizes and push records",
)
async def list_tags(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName
) -> list[Tag]:
    tags = await svc.artifacts.list_tags(principal, f"{namespace}/{name}")
    return [Tag.model_validate(t) for t in tags]


@router.get(
    "/repositories/{namespace}/{name:path}/manifests/{digest}",
    summary="A manifest in full: layers and config, platforms of a multi-arch image, an application's bundle",
)
async def manifest_detail(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, digest: Digest
) -> ManifestDetail:
    return ManifestDetail.model_validate(
        await svc.artifacts.manifest_detail(principal, f"{namespace}/{name}", digest)
    )


# The paths above also match the repository item route ({name:path} could end in "/tags"):
# other methods on them are answered here, so they are not taken as a repository name.
@router.api_route(
    "/repositories/{namespace}/{name:path}/tags",
    methods=["POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
@router.api_route(
    "/repositories/{namespace}/{name:path}/manifests/{digest}",
    methods=["POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def read_only(namespace: str, name: str) -> JSONResponse:
    return error_response(
        405, "method_not_allowed", "this resource is read-only: use GET", headers={"Allow": "GET"}
    )
