"""Sign in and sign out."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from moorage.oci.errors import TooManyRequests, Unauthorized
from moorage.web.view import SESSION_COOKIE, View, page, safe_next


async def sign_in_form(view: View) -> Response:
    if view.user is not None:
        return view.redirect(safe_next(view.query("next", max_length=2000)))
    return view.render(
        "signin.html", next=safe_next(view.query("next", max_length=2000)), errors={}, values={}
    )


async def sign_in(view: View) -> Response:
    form = await view.form()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    errors: dict[str, str] = {}
    pw = "password"  # the form field an error belongs to
    if not username:
        errors["username"] = "Enter your username."
    if not password:
        errors[pw] = "Enter your password."
    if not errors:
        client = view.request.client.host if view.request.client else None
        try:
            principal = await view.services.authn.password(username, password, client)
        except TooManyRequests as exc:
            errors[pw] = exc.message
        except Unauthorized:
            errors[pw] = "Wrong username or password."
        else:
            secret, _ = await view.web.sessions.create(principal)
            response = view.redirect(target)
            view.start_session(response, secret)
            return response
    return view.render("signin.html", status=400, next=target, errors=errors, values={"username": username})


async def sign_out(view: View) -> Response:
    await view.form()
    await view.web.sessions.revoke(view.request.cookies.get(SESSION_COOKIE))
    response = view.redirect("/sign-in")
    view.end_session(response)
    return response


ROUTES: list[BaseRoute] = [
    Route("/sign-in", page(sign_in_form), methods=["GET"]),
    Route("/sign-in", page(sign_in), methods=["POST"]),
    Route("/sign-out", page(sign_out), methods=["POST"]),
]
