"""The token endpoint (``/auth/token``) of the Docker registry token-auth flow.

GET takes HTTP basic credentials (or none: anonymous) and ``scope`` parameters; POST takes
the OAuth2 form (``grant_type=password`` or ``refresh_token``). Each requested scope is
granted only the actions the caller holds, so a token never carries more than the user's
rights at the time it was issued.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from moorage.oci.errors import RegistryError, TooManyRequests, Unauthorized
from moorage.oci.scopes import Scope, ScopeInvalid, parse_scopes
from moorage.registry.auth import decode_basic
from moorage.services.access import AccessService, Principal
from moorage.services.accounts import AccountService
from moorage.services.authn import Authenticator
from moorage.services.tokens import TokenService

MAX_SCOPES = 32
MAX_FORM_BYTES = 16384


def _error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> Response:
    body = {
        "error": error,
        "error_description": description,
        "errors": [{"code": error.upper(), "message": description}],
    }
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


@dataclass
class TokenEndpoint:
    tokens: TokenService
    authn: Authenticator
    access: AccessService
    accounts: AccountService

    async def handle(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except TooManyRequests as exc:
            retry = str(exc.detail.get("retryAfter", 60)) if isinstance(exc.detail, dict) else "60"
            return _error(429, "too_many_requests", exc.message, {"Retry-After": retry})
        except Unauthorized as exc:
            return _error(401, "unauthorized", exc.message, {"WWW-Authenticate": 'Basic realm="moorage"'})
        except ScopeInvalid as exc:
            return _error(400, "invalid_scope", str(exc))
        except RegistryError as exc:
            return _error(400, "invalid_request", exc.message)

    async def _handle(self, request: Request) -> Response:
        client = request.client.host if request.client else None
        offline = False
        if request.method == "POST":
            form = await request.form(max_files=0, max_fields=64, max_part_size=MAX_FORM_BYTES)
            values = {k: v for k, v in form.items() if isinstance(v, str)}
            grant = values.get("grant_type", "")
            service = values.get("service")
            scope_values = [values["scope"]] if values.get("scope") else []
            offline = values.get("access_type") == "offline"
            if grant == "password":
                principal: Principal | None = await self.authn.password(
                    values.get("username", ""), values.get("password", ""), client
                )
            elif grant == "refresh_token":
                principal = await self.authn.refresh_token(values.get("refresh_token", ""), client)
            else:
                return _error(400, "unsupported_grant_type", "grant_type must be password or refresh_token")
        else:
            params = request.query_params
            service = params.get("service")
            scope_values = params.getlist("scope")
            offline = params.get("offline_token", "").lower() == "true"
            header = request.headers.get("authorization", "")
            principal = None
            if header:
                scheme, _, value = header.partition(" ")
                if scheme.lower() != "basic":
                    raise Unauthorized("the token endpoint takes basic credentials")
                username, secret = decode_basic(value)
                principal = await self.authn.password(username, secret, client)
        if service and service != self.tokens.service:
            return _error(
                400, "invalid_request", f"this registry's service is {self.tokens.service!r}, not {service!r}"
            )
        scopes = parse_scopes(scope_values)
        if len(scopes) > MAX_SCOPES:
            raise ScopeInvalid(f"at most {MAX_SCOPES} scopes per token")
        access = [await self._grant(principal, scope) for scope in scopes]
        token, expires_in, issued_at = await self.tokens.issue(
            principal.username if principal else None, access, principal.user_id if principal else None
        )
        body: dict[str, object] = {
            "token": token,
            "access_token": token,
            "expires_in": expires_in,
            "issued_at": dt.datetime.fromtimestamp(issued_at, dt.UTC).isoformat().replace("+00:00", "Z"),
        }
        if request.method == "POST":
            body["scope"] = " ".join(s.render() for s in scopes)
        if offline and principal is not None:
            body["refresh_token"] = await self.accounts.issue_refresh_token(principal)
        return Response(
            json.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"}
        )

    async def _grant(self, principal: Principal | None, scope: Scope) -> dict[str, object]:
        if scope.type == "registry":
            actions = sorted(scope.actions) if principal is not None else []
        else:
            actions = sorted(await self.access.granted_actions(principal, scope.name, set(scope.actions)))
        return {"type": scope.type, "name": scope.name, "actions": actions}
