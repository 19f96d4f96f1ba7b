"""Organizations (``/organizations``) and their members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from moorage.api.deps import CurrentPrincipal, PageParams, Services
from moorage.api.models import (
    NO_NUL,
    MembershipSet,
    Organization,
    OrganizationCreate,
    OrganizationMember,
    OrganizationPage,
    OrganizationSummary,
)

router = APIRouter(tags=["organizations"])
OrgName = Annotated[str, Path(max_length=255, pattern=NO_NUL)]
Username = Annotated[str, Path(max_length=255, pattern=NO_NUL)]


@router.get("/organizations", summary="List organizations")
async def list_organizations(
    svc: Services, principal: CurrentPrincipal, paging: PageParams
) -> OrganizationPage:
    names, total = await svc.accounts.list_organizations(paging.offset, paging.limit)
    return paging.render(OrganizationPage, [OrganizationSummary(name=n) for n in names], total)


@router.post(
    "/organizations", status_code=201, summary="Create an organization (the caller becomes its owner)"
)
async def create_organization(
    svc: Services, principal: CurrentPrincipal, body: OrganizationCreate
) -> Organization:
    return Organization.model_validate(await svc.accounts.create_organization(principal, body.name))


@router.get("/organizations/{org}", summary="Get an organization with its members and teams")
async def get_organization(svc: Services, principal: CurrentPrincipal, org: OrgName) -> Organization:
    return Organization.model_validate(await svc.accounts.get_organization(principal, org))


@router.delete("/organizations/{org}", status_code=204, summary="Delete an organization (owners)")
async def delete_organization(svc: Services, principal: CurrentPrincipal, org: OrgName) -> None:
    await svc.accounts.delete_organization(principal, org)


@router.put("/organizations/{org}/members/{username}", summary="Add a member or change its role (owners)")
async def set_member(
    svc: Services, principal: CurrentPrincipal, org: OrgName, username: Username, body: MembershipSet
) -> OrganizationMember:
    await svc.accounts.set_member(principal, org, username, body.role)
    return OrganizationMember(username=username, role=body.role)


@router.delete("/organizations/{org}/members/{username}", status_code=204, summary="Remove a member (owners)")
async def remove_member(svc: Services, principal: CurrentPrincipal, org: OrgName, username: Username) -> None:
    await svc.accounts.remove_member(principal, org, username)
