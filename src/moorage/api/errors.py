"""The one mapping from typed errors to API responses: ``{code, message, field}`` JSON.

Service errors (``services.errors``), the authentication errors the authenticator raises
(``oci.errors``), request validation and routing errors all end up here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from moorage.api.models import ErrorBody
from moorage.oci import errors as oci
from moorage.services import errors as svc

REALM = "moorage"
CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}"'}

_SERVICE: dict[type[svc.ServiceError], tuple[int, str]] = {
    svc.NotFound: (404, "not_found"),
    svc.AlreadyExists: (409, "conflict"),
    svc.Conflict: (409, "conflict"),
    svc.InvalidInput: (422, "invalid_input"),
    svc.Forbidden: (403, "forbidden"),
}
_REGISTRY: dict[type[oci.RegistryError], tuple[int, str]] = {
    oci.Unauthorized: (401, "unauthorized"),
    oci.TooManyRequests: (429, "too_many_requests"),
    oci.Denied: (403, "forbidden"),
    oci.NameUnknown: (404, "not_found"),
    oci.NameInvalid: (422, "invalid_input"),
    oci.DigestInvalid: (422, "invalid_input"),
    oci.Unsupported: (422, "invalid_input"),
}
_HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
}

#: Documented on every operation.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorBody,
        "description": "Not authenticated (HTTP basic with a password or access token)",
    },
    403: {"model": ErrorBody, "description": "Authenticated, but lacking the rights"},
    404: {"model": ErrorBody, "description": "No such resource, or not visible to the caller"},
    409: {"model": ErrorBody, "description": "Conflicts with an existing resource"},
    422: {"model": ErrorBody, "description": "Bad input; `field` names the field at fault"},
    429: {"model": ErrorBody, "description": "Too many failed sign-ins: wait `Retry-After` seconds"},
}


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(code=code, message=message, field=field)
    return JSONResponse(body.model_dump(by_alias=True), status_code=status, headers=headers)


def _lookup(table: dict[type[Any], tuple[int, str]], exc: Exception) -> tuple[int, str] | None:
    for cls in type(exc).__mro__:
        found = table.get(cls)
        if found is not None:
            return found
    return None


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, svc.ServiceError)
    status, code = _lookup(_SERVICE, exc) or (400, "bad_request")
    # Services name fields as Python does (is_active); the wire is camelCase (isActive).
    return error_response(status, code, exc.message, to_camel(exc.field) if exc.field else None)


async def _registry_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, oci.RegistryError)
    status, code = _lookup(_REGISTRY, exc) or (400, "bad_request")
    headers: dict[str, str] | None = None
    if status == 401:
        headers = CHALLENGE
    elif status == 429 and isinstance(exc.detail, dict) and "retryAfter" in exc.detail:
        headers = {"Retry-After": str(exc.detail["retryAfter"])}
    return error_response(status, code, exc.message, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    """``("body", "fullName")`` -> ``fullName``; ``("query", "perPage")`` -> ``perPage``."""
    parts = [str(p) for p in loc[1:] if not isinstance(p, int)] if len(loc) > 1 else []
    return ".".join(parts) or str(loc[0] if loc else "body")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if not errors:
        return error_response(422, "invalid_input", "invalid request")
    fields = [(_field(tuple(e.get("loc", ()))), str(e.get("msg", "invalid"))) for e in errors]
    message = "; ".join(f"{f}: {m}" for f, m in fields)
    return error_response(422, "invalid_input", message[:2000], fields[0][0])


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:  # FastAPI's answer to a body that is not JSON at all
        return error_response(422, "invalid_input", f"body: {exc.detail}", "body")
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers.update(CHALLENGE)
    elif exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    code = _HTTP_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail), headers=headers or None)


def install(app: FastAPI) -> None:
    app.add_exception_handler(svc.ServiceError, _service_error)
    app.add_exception_handler(oci.RegistryError, _registry_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


def guard_methods(router: APIRouter, allowed: dict[str, tuple[str, ...]]) -> None:
    """Answer 405 (with ``Allow``) for the other methods on repository sub-resource paths.

    ``/repositories/{namespace}/{name:path}`` would otherwise take ``…/tags`` or ``…/webhooks``
    as part of a repository name and answer for a repository that does not exist.
    """
    for path, methods in allowed.items():
        router.add_api_route(
            path,
            _not_allowed(", ".join(methods)),
            methods=sorted(_METHODS - set(methods)),
            include_in_schema=False,
        )


def _not_allowed(allow: str) -> Callable[[], Awaitable[JSONResponse]]:
    async def handler() -> JSONResponse:
        return error_response(
            405, "method_not_allowed", f"use {allow} on this resource", headers={"Allow": allow}
        )

    return handler
