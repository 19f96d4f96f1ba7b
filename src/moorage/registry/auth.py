"""Authentication and authorization of ``/v2/`` requests.

Credentials are a bearer token from ``/auth/token`` (the Docker token-auth flow), HTTP
basic (password or personal access token), or none (anonymous). What a request needs is
decided from its route and method alone; whether the caller holds it, by the access
service (basic, anonymous) or by the token's signed claims (bearer).

Status codes: no or insufficient token credentials -> 401 with a ``WWW-Authenticate``
challenge naming the scope to ask for; an authenticated caller that does not hold the
rights -> 403 ``DENIED``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from moorage.oci.errors import Denied, RegistryError, Unauthorized
from moorage.oci.reference import validate_name
from moorage.registry.routing import Match
from moorage.services.access import AccessService, Principal
from moorage.services.authn import Authenticator
from moorage.services.tokens import TokenService, granted

REALM_PATH = "/auth/token"
MAX_AUTHORIZATION_LENGTH = 8192

# Actions each route needs, by method.
_NEEDS: dict[str, dict[str, frozenset[str]]] = {
    "manifest": {
        "GET": frozenset({"pull"}),
        "HEAD": frozenset({"pull"}),
        "PUT": frozenset({"pull", "push"}),
        "DELETE": frozenset({"delete"}),
    },
    "blob": {"GET": frozenset({"pull"}), "HEAD": frozenset({"pull"}), "DELETE": frozenset({"delete"})},
    "upload_start": {"POST": frozenset({"pull", "push"})},
    "upload": {m: frozenset({"pull", "push"}) for m in ("GET", "PATCH", "PUT", "DELETE")},
    "tags": {"GET": frozenset({"pull"})},
    "referrers": {"GET": frozenset({"pull"})},
}


class AuthChallenge(Unauthorized):
    """401 with a ``WWW-Authenticate`` challenge."""

    def __init__(self, message: str, scope: str | None = None, error: str | None = None) -> None:
        super().__init__(message)
        self.scope = scope
        self.error = error


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal | None
    claims: dict[str, Any] | None  # bearer token claims, when the caller sent one

    @property
    def name(self) -> str | None:
        return self.principal.username if self.principal else None


@dataclass
class RegistryAuth:
    tokens: TokenService
    authn: Authenticator
    access: AccessService

    def challenge_header(self, request: Request, exc: AuthChallenge) -> str:
        realm = f"{request.url.scheme}://{request.url.netloc}{REALM_PATH}"
        parts = [f'realm="{realm}"', f'service="{self.tokens.service}"']
        if exc.scope:
            parts.append(f'scope="{exc.scope}"')
        if exc.error:
            parts.append(f'error="{exc.error}"')
        return "Bearer " + ",".join(parts)

    async def identify(self, request: Request) -> Caller:
        """Who is calling; ``Unauthorized`` for credentials that do not check out."""
        header = request.headers.get("authorization")
        if not header:
            return Caller(None, None)
        if len(header) > MAX_AUTHORIZATION_LENGTH:
            raise Unauthorized("credentials too large")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            claims = await self.tokens.verify(value.strip())
            subject = claims.get("sub") or ""
            principal = await self.authn.principal(subject) if subject else None
            if subject and (principal is None or claims.get("uid") != principal.user_id):
                raise Unauthorized("the token's user no longer exists or is deactivated")
            return Caller(principal, claims)
        if scheme == "basic":
            username, secret = decode_basic(value)
            client = request.client.host if request.client else None
            return Caller(await self.authn.password(username, secret, client), None)
        raise Unauthorized(f"unsupported authorization scheme {scheme[:20]!r}")

    async def holds(self, caller: Caller, repository: str, needed: frozenset[str]) -> bool:
        if caller.claims is not None:
            have = granted(caller.claims, "repository", repository)
            return "*" in have or needed <= have
        have = await self.access.granted_actions(caller.principal, repository, set(needed))
        return "*" in have or needed <= have

    async def authorize(self, request: Request, m: Match) -> Caller:
        """The caller, if it may do what the request asks; else the right 401 or 403."""
        try:
            caller = await self.identify(request)
        except Unauthorized as exc:
            raise AuthChallenge(exc.message, error="invalid_token") from None
        if m.route == "base":
            if caller.principal is None and caller.claims is None:
                raise AuthChallenge("authentication required")
            return caller
        if m.route == "catalog":
            return caller  # the listing is filtered to what the caller may see
        needed = _NEEDS[m.route].get(request.method)
        if needed is None:
            return caller  # the method is refused later as unsupported
        validate_name(m.name)  # NAME_INVALID for every caller, before the name reaches a query
        if await self.holds(caller, m.name, needed):
            return caller
        scope = f"repository:{m.name}:{','.join(sorted(needed))}"
        if caller.claims is not None:
            # The token lacks the scope: if the user holds it, tell the client to get a new token.
            really = await self.access.granted_actions(caller.principal, m.name, set(needed))
            if "*" in really or needed <= really:
                raise AuthChallenge("the token does not cover this request", scope, "insufficient_scope")
        if caller.principal is None:
            raise AuthChallenge("authentication required", scope)
        raise Denied(
            f"{caller.principal.username!r} may not {'/'.join(sorted(needed))} repository {m.name!r}"
            + await self._why(caller.principal, m.name),
            {"repository": m.name, "actions": sorted(needed)},
        )

    async def _why(self, principal: Principal, repository: str) -> str:
        access = await self.access.repository(principal, repository)
        if not access.exists and not access.may_create:
            if self.access.create_repository_on_push:
                return ": it does not exist and you do not administer its namespace"
            return ": it does not exist; create it first (creating repositories on push is turned off)"
        return ""

    async def may_pull(self, caller: Caller, repository: str) -> bool:
        try:
            validate_name(repository)
            return await self.holds(caller, repository, frozenset({"pull"}))
        except RegistryError:
            return False


def decode_basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed basic credentials") from None
    username, sep, secret = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed basic credentials")
    return username, secret
