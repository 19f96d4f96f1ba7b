"""The caller's personal access tokens (``/tokens``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from moorage.api.deps import CurrentPrincipal, Services
from moorage.api.models import Token, TokenCreate, TokenCreated, TokenUpdate

router = APIRouter(prefix="/tokens", tags=["tokens"])
TokenId = Annotated[int, Path(alias="tokenId", ge=1, le=2**31 - 1)]


@router.get("", summary="List the caller's personal access tokens (never their secrets)")
async def list_tokens(svc: Services, principal: CurrentPrincipal) -> list[Token]:
    return [Token.model_validate(t) for t in await svc.accounts.list_tokens(principal)]


@router.post("", status_code=201, summary="Create a personal access token; its secret is shown this once")
async def create_token(svc: Services, principal: CurrentPrincipal, body: TokenCreate) -> TokenCreated:
    token, secret = await svc.accounts.create_token(principal, body.label)
    return TokenCreated.model_validate({**Token.model_validate(token).model_dump(), "secret": secret})


@router.patch("/{tokenId}", summary="Relabel, deactivate or reactivate a token")
async def update_token(
    svc: Services, principal: CurrentPrincipal, token_id: TokenId, body: TokenUpdate
) -> Token:
    token = await svc.accounts.update_token(principal, token_id, label=body.label, is_active=body.is_active)
    return Token.model_validate(token)


@router.delete("/{tokenId}", status_code=204, summary="Delete a token")
async def delete_token(svc: Services, principal: CurrentPrincipal, token_id: TokenId) -> None:
    await svc.accounts.delete_token(principal, token_id)
