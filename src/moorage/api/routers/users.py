"""Users (``/users``) and the caller (``/me``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from moorage.api.deps import CurrentPrincipal, PageParams, Services
from moorage.api.models import NO_NUL, User, UserCreate, UserPage, UserUpdate

router = APIRouter(tags=["users"])
Username = Annotated[str, Path(max_length=255, pattern=NO_NUL)]


@router.get("/me", summary="The authenticated caller")
async def me(svc: Services, principal: CurrentPrincipal) -> User:
    return User.model_validate(await svc.accounts.get_user(principal.username))


@router.get("/users", summary="List users")
async def list_users(svc: Services, principal: CurrentPrincipal, paging: PageParams) -> UserPage:
    users, total = await svc.accounts.list_users(principal, paging.offset, paging.limit)
    return paging.render(UserPage, [User.model_validate(u) for u in users], total)


@router.post("/users", status_code=201, summary="Create a user (administrators)")
async def create_user(svc: Services, principal: CurrentPrincipal, body: UserCreate) -> User:
    user = await svc.accounts.create_user(
        principal,
        body.username,
        body.password,
        full_name=body.full_name,
        email=body.email,
        is_admin=body.is_admin,
    )
    return User.model_validate(user)


@router.get("/users/{username}", summary="Get a user")
async def get_user(svc: Services, principal: CurrentPrincipal, username: Username) -> User:
    return User.model_validate(await svc.accounts.get_user(username))


@router.patch("/users/{username}", summary="Change a user (itself or administrators)")
async def update_user(
    svc: Services, principal: CurrentPrincipal, username: Username, body: UserUpdate
) -> User:
    user = await svc.accounts.update_user(
        principal,
        username,
        password=body.password,
        full_name=body.full_name,
        email=body.email,
        is_admin=body.is_admin,
        is_active=body.is_active,
    )
    return User.model_validate(user)


@router.delete("/users/{username}", status_code=204, summary="Delete a user (administrators)")
async def delete_user(svc: Services, principal: CurrentPrincipal, username: Username) -> None:
    await svc.accounts.delete_user(principal, username)
