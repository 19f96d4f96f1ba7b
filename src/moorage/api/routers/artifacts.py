"""What a repository holds (``/repositories/{namespace}/{name}/tags`` and ``…/manifests/{digest}``).

Included before the repositories router, whose ``{name:path}`` would otherwise take the suffix.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response

from moorage.api.deps import CurrentPrincipal, Services
from moorage.api.errors import guard_methods
from moorage.api.models import (
    NO_NUL,
    ManifestDetail,
    OverrideCreate,
    ScanSummary,
    Tag,
    VulnerabilityReport,
)

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


@router.get(
    "/repositories/{namespace}/{name:path}/manifests/{digest}/vulnerabilities",
    summary="A manifest's scan: status, counts, findings, hidden findings; an application's components, "
    "a multi-arch image's platforms",
)
async def vulnerabilities(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, digest: Digest
) -> VulnerabilityReport:
    return VulnerabilityReport.model_validate(
        await svc.scanning.vulnerabilities(principal, f"{namespace}/{name}", digest)
    )


@router.get(
    "/repositories/{namespace}/{name:path}/manifests/{digest}/sbom",
    summary="The SBOM of a scanned manifest, as CycloneDX 1.5 JSON",
    response_model=dict[str, Any],
)
async def sbom(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, digest: Digest
) -> JSONResponse:
    document = await svc.scanning.sbom(principal, f"{namespace}/{name}", digest)
    return JSONResponse(document, media_type="application/vnd.cyclonedx+json")


@router.post(
    "/repositories/{namespace}/{name:path}/manifests/{digest}/scan",
    status_code=202,
    summary="Queue a scan of a manifest (read-write access and up)",
)
async def start_scan(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, digest: Digest
) -> ScanSummary:
    return ScanSummary.model_validate(
        await svc.scanning.request_scan(principal, f"{namespace}/{name}", digest)
    )


@router.post(
    "/repositories/{namespace}/{name:path}/manifests/{digest}/vulnerabilities/overrides",
    status_code=204,
    summary="Hide a vulnerability for a package ('*': every package) in this repository (repository admins)",
)
async def add_override(
    svc: Services,
    principal: CurrentPrincipal,
    namespace: Namespace,
    name: RepoName,
    digest: Digest,
    body: OverrideCreate,
) -> Response:
    await svc.scanning.add_override(principal, f"{namespace}/{name}", body.id, body.package, body.note)
    return Response(status_code=204)


@router.delete(
    "/repositories/{namespace}/{name:path}/manifests/{digest}/vulnerabilities/overrides",
    status_code=204,
    summary="Remove a vulnerability override (repository admins)",
)
async def remove_override(
    svc: Services,
    principal: CurrentPrincipal,
    namespace: Namespace,
    name: RepoName,
    digest: Digest,
    id: Annotated[str, Query(min_length=1, max_length=255, pattern=NO_NUL)],
    package: Annotated[str, Query(min_length=1, max_length=255, pattern=NO_NUL)] = "*",
) -> Response:
    await svc.scanning.remove_override(principal, f"{namespace}/{name}", id, package)
    return Response(status_code=204)


# The paths above also match the repository item route ({name:path} could end in "/tags"):
# other methods on them are answered here, so they are not taken as a repository name.
_PREFIX = "/repositories/{namespace}/{name:path}/manifests/{digest}"
_ALLOWED = {
    "/repositories/{namespace}/{name:path}/tags": ("GET",),
    _PREFIX: ("GET",),
    f"{_PREFIX}/vulnerabilities": ("GET",),
    f"{_PREFIX}/sbom": ("GET",),
    f"{_PREFIX}/scan": ("POST",),
    f"{_PREFIX}/vulnerabilities/overrides": ("POST", "DELETE"),
}


guard_methods(router, _ALLOWED)
