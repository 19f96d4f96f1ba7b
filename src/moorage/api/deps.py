"""What every route depends on: the services, the caller (``current_principal``) and paging."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends, Query, Request, Response, Security
from fastapi.openapi.models import HTTPBase as HTTPBaseModel
from fastapi.security.base import SecurityBase

from moorage.api.models import Page
from moorage.oci.errors import Unauthorized
from moorage.services import container
from moorage.services.access import Principal
from moorage.services.accounts import AccountService
from moorage.services.activity import ActivityService
from moorage.services.artifacts import ArtifactService
from moorage.services.audit import AuditLog
from moorage.services.authn import Authenticator
from moorage.services.events import EventLog
from moorage.services.gc import GcService
from moorage.services.jobs import JobService
from moorage.services.mirroring import MirrorService
from moorage.services.policies import PromotionService
from moorage.services.pruning import PruningService
from moorage.services.repositories import RepositoryService
from moorage.services.scanning import ScanService
from moorage.services.vulndb import VulnDbService
from moorage.services.webhooks import WebhookService

#: Longest ``Authorization`` header looked at; longer ones are refused unread.
MAX_AUTHORIZATION_LENGTH = 8192
MAX_PER_PAGE = 200


@dataclass(frozen=True, slots=True)
class ApiServices:
    accounts: AccountService
    repositories: RepositoryService
    audit: AuditLog
    authn: Authenticator
    artifacts: ArtifactService
    scanning: ScanService
    vulndb: VulnDbService
    events: EventLog
    jobs: JobService
    activity: ActivityService
    webhooks: WebhookService
    mirroring: MirrorService
    promotion: PromotionService
    pruning: PruningService
    gc: GcService

    @classmethod
    def of(cls, services: container.Services) -> ApiServices:
        return cls(
            services.accounts,
            services.repositories,
            services.audit,
            services.authn,
            services.artifacts,
            services.scanning,
            services.vulndb,
            services.events,
            services.jobs,
            services.activity,
            services.webhooks,
            services.mirroring,
            services.promotion,
            services.pruning,
            services.gc,
        )


def services(request: Request) -> ApiServices:
    return cast(ApiServices, request.app.state.services)


Services = Annotated[ApiServices, Depends(services)]


class BasicAuth(SecurityBase):
    """Declares HTTP basic in the OpenAPI document and hands over the raw header."""

    def __init__(self) -> None:
        self.model = HTTPBaseModel(
            scheme="basic", description="Username with a password or a personal access token (mrg_pat_…)."
        )
        self.scheme_name = "basic"

    async def __call__(self, request: Request) -> str | None:
        return request.headers.get("authorization")


def decode_basic(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise Unauthorized(
            "use HTTP basic authentication with a password or a personal access token"
            + ("; registry bearer tokens are not accepted here" if scheme.lower() == "bearer" else "")
        )
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed basic credentials") from None
    username, sep, secret = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed basic credentials")
    return username, secret


async def current_principal(
    request: Request, svc: Services, authorization: Annotated[str | None, Security(BasicAuth())]
) -> Principal:
    """The authenticated caller; ``Unauthorized`` (401 with a challenge) otherwise.

    The one seam for credentials: the web UI's session cookie is to be checked here, before
    the ``Authorization`` header.
    """
    if not authorization:
        raise Unauthorized("authentication required")
    if len(authorization) > MAX_AUTHORIZATION_LENGTH:
        raise Unauthorized("credentials too large")
    username, secret = decode_basic(authorization)
    client = request.client.host if request.client else None
    return await svc.authn.password(username, secret, client)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]

P = TypeVar("P", bound=Page[Any])


@dataclass
class Paging:
    """``?page=1&perPage=50``; renders a page with a ``Link`` header to its neighbours."""

    request: Request
    response: Response
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def limit(self) -> int:
        return self.per_page

    def render(self, model: type[P], items: list[object], total: int) -> P:
        links = []
        if self.page * self.per_page < total:
            links.append(f'<{self.request.url.include_query_params(page=self.page + 1)}>; rel="next"')
        if self.page > 1:
            links.append(f'<{self.request.url.include_query_params(page=self.page - 1)}>; rel="prev"')
        if links:
            self.response.headers["Link"] = ", ".join(links)
        return model.model_validate(
            {"items": items, "total": total, "page": self.page, "perPage": self.per_page}
        )


def paging(
    request: Request,
    response: Response,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    per_page: Annotated[
        int, Query(alias="perPage", ge=1, le=MAX_PER_PAGE, description="Items per page")
    ] = 50,
) -> Paging:
    return Paging(request, response, page, per_page)


PageParams = Annotated[Paging, Depends(paging)]
