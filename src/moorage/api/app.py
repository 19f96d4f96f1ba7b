"""``create_api(components)``: the FastAPI application served under ``/api/v1``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from moorage import __version__
from moorage.api import errors
from moorage.api.deps import ApiServices
from moorage.api.routers import (
    activity,
    artifacts,
    audit,
    gc,
    mirroring,
    organizations,
    policies,
    repositories,
    system,
    teams,
    tokens,
    users,
    webhooks,
)
from moorage.services.container import Services

PREFIX = "/api/v1"

DESCRIPTION = """\
Manage Moorage's users, organizations, teams, repositories, access grants and personal
access tokens. Authenticate with HTTP basic: a username with its password or one of its
personal access tokens. Lists are paginated with `?page=&perPage=` (at most 200) and
answer `{items, total, page, perPage}` with a `Link` header to the next page. Errors
answer `{code, message, field}`.
"""


def _build() -> FastAPI:
    api = FastAPI(
        title="Moorage management API",
        version=__version__,
        description=DESCRIPTION,
        servers=[{"url": PREFIX}],
        root_path_in_servers=False,
        openapi_url="/openapi.json",
        docs_url=None,  # the interactive pages load from a CDN; Moorage serves everything itself
        redoc_url=None,
    )
    errors.install(api)
    # Order matters for /repositories/{namespace}/{name:path}: sub-resources (tags,
    # manifests) must be included before repositories.router.
    for module in (
        users,
        organizations,
        teams,
        tokens,
        audit,
        system,
        gc,
        activity,
        artifacts,
        webhooks,
        mirroring,
        policies,
        repositories,
    ):
        api.include_router(module.router, responses=errors.ERROR_RESPONSES)
    return api


def create_api(services: Services) -> FastAPI:
    api = _build()
    api.state.services = ApiServices.of(services)
    return api


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, as served at ``/api/v1/openapi.json`` (no database needed)."""
    return _build().openapi()
