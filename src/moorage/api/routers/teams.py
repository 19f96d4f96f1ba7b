"""Teams of an organization (``/organizations/{org}/teams``), their members and access grants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from moorage.api.deps import CurrentPrincipal, Services
from moorage.api.models import NO_NUL, Grant, GrantSet, Team, TeamCreate, TeamMember, TeamSummary, TeamUpdate

router = APIRouter(prefix="/organizations/{org}/teams", tags=["teams"])
OrgName = Annotated[str, Path(max_length=255, pattern=NO_NUL)]
TeamName = Annotated[str, Path(max_length=255, pattern=NO_NUL)]
Username = Annotated[str, Path(max_length=255, pattern=NO_NUL)]
Namespace = Annotated[str, Path(max_length=255, pattern=NO_NUL)]
RepoName = Annotated[str, Path(max_length=255, pattern=NO_NUL, description="May contain '/'")]


@router.get("", summary="List the teams of an organization")
async def list_teams(svc: Services, principal: CurrentPrincipal, org: OrgName) -> list[TeamSummary]:
    found = await svc.accounts.get_organization(principal, org)
    return [TeamSummary.model_validate(t) for t in found["teams"]]


@router.post("", status_code=201, summary="Create a team (organization owners)")
async def create_team(svc: Services, principal: CurrentPrincipal, org: OrgName, body: TeamCreate) -> Team:
    await svc.accounts.create_team(principal, org, body.name, body.description)
    return Team.model_validate(await svc.accounts.get_team(principal, org, body.name))


@router.get("/{team}", summary="Get a team with its members and access grants (organization members)")
async def get_team(svc: Services, principal: CurrentPrincipal, org: OrgName, team: TeamName) -> Team:
    return Team.model_validate(await svc.accounts.get_team(principal, org, team))


@router.patch("/{team}", summary="Change a team's description (organization owners)")
async def update_team(
    svc: Services, principal: CurrentPrincipal, org: OrgName, team: TeamName, body: TeamUpdate
) -> Team:
    await svc.accounts.update_team(principal, org, team, body.description)
    return Team.model_validate(await svc.accounts.get_team(principal, org, team))


@router.delete("/{team}", status_code=204, summary="Delete a team (organization owners)")
async def delete_team(svc: Services, principal: CurrentPrincipal, org: OrgName, team: TeamName) -> None:
    await svc.accounts.delete_team(principal, org, team)


@router.put("/{team}/members/{username}", summary="Add a user to a team (organization owners)")
async def add_member(
    svc: Services, principal: CurrentPrincipal, org: OrgName, team: TeamName, username: Username
) -> TeamMember:
    await svc.accounts.add_team_member(principal, org, team, username)
    return TeamMember(username=username)


@router.delete("/{team}/members/{username}", status_code=204, summary="Remove a user from a team")
async def remove_member(
    svc: Services, principal: CurrentPrincipal, org: OrgName, team: TeamName, username: Username
) -> None:
    await svc.accounts.remove_team_member(principal, org, team, username)


@router.put(
    "/{team}/access/namespace", summary="Grant the team a level on every repository of the organization"
)
async def grant_namespace(
    svc: Services, principal: CurrentPrincipal, org: OrgName, team: TeamName, body: GrantSet
) -> Grant:
    await svc.accounts.grant_namespace(principal, org, team, body.level)
    return Grant(kind="namespace", name=org, level=body.level)


@router.delete(
    "/{team}/access/namespace", status_code=204, summary="Revoke the team's organization-wide grant"
)
async def revoke_namespace(svc: Services, principal: CurrentPrincipal, org: OrgName, team: TeamName) -> None:
    await svc.accounts.revoke_namespace(principal, org, team)


@router.put(
    "/{team}/access/repositories/{namespace}/{name:path}",
    summary="Grant the team a level on one repository (repository administrators)",
)
async def grant_repository(
    svc: Services,
    principal: CurrentPrincipal,
    org: OrgName,
    team: TeamName,
    namespace: Namespace,
    name: RepoName,
    body: GrantSet,
) -> Grant:
    repository = f"{namespace}/{name}"
    await svc.accounts.grant_repository(principal, org, team, repository, body.level)
    return Grant(kind="repository", name=repository, level=body.level)


@router.delete(
    "/{team}/access/repositories/{namespace}/{name:path}",
    status_code=204,
    summary="Revoke the team's grant on one repository (repository administrators)",
)
async def revoke_repository(
    svc: Services,
    principal: CurrentPrincipal,
    org: OrgName,
    team: TeamName,
    namespace: Namespace,
    name: RepoName,
) -> None:
    await svc.accounts.revoke_repository(principal, org, team, f"{namespace}/{name}")
