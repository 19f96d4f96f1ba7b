"""Per-request plumbing of every page: who is signed in, CSRF, flash messages, rendering, errors.

A page is ``async def handler(view: View) -> Response`` wrapped by :func:`page`, which builds the
``View`` (session cookie → user), turns typed errors into error pages and sets cookies.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from moorage.oci import errors as oci
from moorage.services import errors as svc
from moorage.services.access import Principal
from moorage.services.container import Services
from moorage.services.sessions import SessionService, WebSession

log = logging.getLogger("moorage.web")

SESSION_COOKIE = "moorage_session"
#: Double-submit CSRF secret of visitors who are not signed in (the sign-in form needs one too).
ANON_CSRF_COOKIE = "moorage_csrf"
FLASH_COOKIE = "moorage_flash"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: Every page: assets only from Moorage itself, no inline scripts or style elements (htmx sets style
#: attributes while it swaps), not framed by other sites.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
        "img-src 'self' data:; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
#: Largest urlencoded/multipart form a page accepts (uploads that need more set their own limit).
MAX_FORM_FIELDS = 1000


@dataclass
class Web:
    """What every page needs, built once by ``web.app.create_web``."""

    services: Services
    sessions: SessionService
    templates: Environment


class SignInRequired(Exception):
    """Raised by :meth:`View.require_user`; answered with a redirect to the sign-in page."""


class CsrfRefused(Exception):
    """A state-changing request without the right CSRF token; answered with a 403 page."""


@dataclass
class View:
    """One request as a page sees it."""

    request: Request
    web: Web
    session: WebSession | None
    csrf_token: str
    _new_anon_csrf: bool = False
    _flashes: list[dict[str, str]] = field(default_factory=list)
    _clear_flash: bool = False

    # -- who -----------------------------------------------------------------------------
    @property
    def user(self) -> Principal | None:
        return self.session.principal if self.session else None

    @property
    def services(self) -> Services:
        return self.web.services

    def require_user(self) -> Principal:
        """The signed-in user; anonymous visitors are sent to the sign-in page (and back after)."""
        if self.user is None:
            raise SignInRequired()
        return self.user

    def require_admin(self) -> Principal:
        """The signed-in system administrator; others get a 403 page."""
        user = self.require_user()
        if not user.is_admin:
            raise svc.Forbidden("only administrators may open this page")
        return user

    @property
    def is_htmx(self) -> bool:
        return self.request.headers.get("hx-request") == "true"

    # -- input ---------------------------------------------------------------------------
    async def form(self, max_part_size: int = 1 << 20, max_files: int = 10) -> FormData:
        """The submitted form, after checking its CSRF token (field ``csrf_token`` or the
        ``X-CSRF-Token`` header htmx sends); raises :class:`CsrfRefused` otherwise.

        ``max_part_size`` bounds each multipart part (raise it for uploads); the form is read once.
        """
        form = await self.request.form(
            max_fields=MAX_FORM_FIELDS, max_files=max_files, max_part_size=max_part_size
        )
        sent = form.get(CSRF_FIELD)
        token = sent if isinstance(sent, str) and sent else self.request.headers.get(CSRF_HEADER, "")
        if self._new_anon_csrf or not token or not hmac.compare_digest(token, self.csrf_token):
            raise CsrfRefused()
        return form

    def query(self, name: str, default: str = "", max_length: int = 255) -> str:
        value = self.request.query_params.get(name, default)
        return value[:max_length].replace("\x00", "")

    # -- output --------------------------------------------------------------------------
    def flash(self, message: str, kind: str = "success") -> None:
        """A message shown once on the next page rendered (``kind``: success, info, error)."""
        self._flashes.append({"message": message, "kind": kind})

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        shown = self._pending_flashes()
        self._clear_flash = bool(shown) or FLASH_COOKIE in self.request.cookies
        body = self.web.templates.get_template(template).render(
            request=self.request,
            view=self,
            user=self.user,
            csrf_token=self.csrf_token,
            flashes=shown,
            **context,
        )
        self._flashes = []
        return HTMLResponse(body, status)

    def redirect(self, url: str, status: int = 303) -> Response:
        """A redirect (after a POST: 303, so the browser GETs); htmx follows ``HX-Redirect``."""
        if self.is_htmx:
            return Response(status_code=204, headers={"HX-Redirect": url})
        return RedirectResponse(url, status)

    def _pending_flashes(self) -> list[dict[str, str]]:
        out = list(self._flashes)
        raw = self.request.cookies.get(FLASH_COOKIE)
        if raw:
            try:
                stored = json.loads(urllib.parse.unquote(raw))
                out = [
                    {"message": str(f["message"])[:500], "kind": str(f["kind"])[:20]}
                    for f in stored
                    if isinstance(f, Mapping)
                ][:5] + out
            except (ValueError, KeyError, TypeError):
                pass
        return out

    def finish(self, response: Response) -> Response:
        """What every response carries: security headers, a new anonymous CSRF secret, flash messages."""
        secure = self.request.url.scheme == "https"
        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        if self._new_anon_csrf:
            response.set_cookie(
                ANON_CSRF_COOKIE, self.csrf_token, httponly=True, samesite="lax", secure=secure, path="/"
            )
        if self._flashes:
            response.set_cookie(
                FLASH_COOKIE,
                urllib.parse.quote(json.dumps(self._flashes)),
                httponly=True,
                samesite="lax",
                secure=secure,
                path="/",
                max_age=60,
            )
        elif self._clear_flash:
            response.delete_cookie(FLASH_COOKIE, path="/")
        return response

    # -- sessions ------------------------------------------------------------------------
    def start_session(self, response: Response, secret: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=int(self.web.sessions.lifetime.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=self.request.url.scheme == "https",
            path="/",
        )

    @staticmethod
    def end_session(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/")


async def build_view(request: Request, web: Web) -> View:
    session = await web.sessions.resolve(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        return View(request, web, session, session.csrf_token)
    anon = request.cookies.get(ANON_CSRF_COOKIE, "")
    if 20 <= len(anon) <= 100 and anon.isascii():
        return View(request, web, None, anon)
    return View(request, web, None, secrets.token_urlsafe(32), _new_anon_csrf=True)


Handler = Callable[[View], Awaitable[Response]]

_STATUS: list[tuple[type[Exception], int, str]] = [
    (svc.NotFound, 404, "Not found"),
    (oci.NameUnknown, 404, "Not found"),
    (oci.ManifestUnknown, 404, "Not found"),
    (svc.Forbidden, 403, "Not allowed"),
    (oci.Denied, 403, "Not allowed"),
    (svc.InvalidInput, 422, "Invalid input"),
    (svc.AlreadyExists, 409, "Already exists"),
    (svc.Conflict, 409, "Not possible now"),
    (oci.NameInvalid, 422, "Invalid input"),
    (oci.DigestInvalid, 422, "Invalid input"),
    (oci.TooManyRequests, 429, "Too many attempts"),
]


def error_page(view: View, status: int, title: str, message: str) -> Response:
    message = message[:1].upper() + message[1:]
    if view.is_htmx:
        # htmx swaps nothing on 4xx by default: show the message where the page keeps its alerts.
        response = view.render("_alert.html", status=200, kind="error", message=message)
        response.headers["HX-Retarget"] = "#alerts"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return view.render("error.html", status=status, title=title, message=message)


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a page handler into a Starlette endpoint (see the module docstring)."""

    async def endpoint(request: Request) -> Response:
        web: Web = request.app.state.web
        view = await build_view(request, web)
        try:
            response = await handler(view)
        except SignInRequired:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response = view.redirect("/sign-in?" + urllib.parse.urlencode({"next": target}))
        except CsrfRefused:
            response = error_page(
                view,
                403,
                "Form expired",
                "This form was missing its security token or the token is stale (for example after "
                "signing out in another tab). Go back, reload the page and try again.",
            )
        except Exception as exc:
            for kind, status, title in _STATUS:
                if isinstance(exc, kind):
                    message = getattr(exc, "message", str(exc))
                    response = error_page(view, status, title, message)
                    break
            else:
                raise
        return view.finish(response)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def safe_next(target: str | None, default: str = "/repositories") -> str:
    """Only same-site paths as a post-sign-in destination (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
