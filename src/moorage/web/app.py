"""``create_web(services)``: the web UI's Starlette application, mounted by ``moorage.app`` at ``/``.

Pages live in ``web/routes/<area>.py`` (each a ``ROUTES`` list); templates in ``web/templates``;
CSS, JavaScript and images in ``web/static`` (served from ``/static``, never from a CDN).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from moorage.services.container import Services
from moorage.services.sessions import SessionService
from moorage.web.routes import accounts, auth, details, repositories, system
from moorage.web.templating import build_templates
from moorage.web.view import Web, build_view

STATIC = Path(__file__).parent / "static"
#: How long a sign-in lasts in the browser.
SESSION_LIFETIME = dt.timedelta(hours=12)

#: Every area's pages. Order matters where paths overlap (more specific first).
AREAS: list[list[BaseRoute]] = [
    auth.ROUTES,
    details.ROUTES,
    repositories.ROUTES,
    accounts.ROUTES,
    system.ROUTES,
]


async def _index(request: Request) -> Response:
    return RedirectResponse("/repositories", 302)


async def _not_found(request: Request, exc: Exception) -> Response:
    web: Web = request.app.state.web
    view = await build_view(request, web)
    return view.finish(
        view.render("error.html", status=404, title="Not found", message="There is no page at this address.")
    )


def create_web(services: Services, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    """The UI app; ``extra_routes`` (the site's own, such as ``/healthz``) are matched first."""
    web = Web(services, SessionService(services.db, services.clock, SESSION_LIFETIME), build_templates())
    routes: list[BaseRoute] = [*(extra_routes or []), Route("/", _index)]
    for area in AREAS:
        routes.extend(area)
    routes.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))
    app = Starlette(routes=routes, exception_handlers={404: _not_found})
    app.state.web = web
    return app
