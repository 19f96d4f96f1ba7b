"""Accounts: your profile and password, your access tokens, organizations and their teams, and
(administrators) every user.

Pages only call ``services.accounts`` / ``services.access`` / ``services.repositories``; those
refuse what the caller may not do (the buttons for it are hidden here as well).
"""

from __future__ import annotations

import contextlib
import urllib.parse
from typing import Any

from starlette.datastructures import FormData
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from moorage.oci.errors import TooManyRequests, Unauthorized
from moorage.services import errors as svc
from moorage.services.access import Level, Principal
from moorage.services.passwords import MAX_SECRET_LENGTH, MIN_PASSWORD_LENGTH, PERSONAL_TOKEN_PREFIX
from moorage.web.view import View, page

PER_PAGE = 25
#: Users read at most when searching (the account service lists; the page filters).
MAX_SEARCHED_USERS = 5000
#: Repositories of an organization offered in a team's grant form.
MAX_GRANTABLE = 500
LEVELS = [
    ("read-only", "Read-only (pull)"),
    ("read-write", "Read-write (pull, push, delete)"),
    ("admin", "Admin (and settings, access)"),
]
ROLES = [("member", "Member"), ("owner", "Owner")]


# -- small helpers ----------------------------------------------------------------------
def _text(form: FormData, name: str, max_length: int = 255) -> str:
    value = form.get(name, "")
    return value.strip()[: max_length + 1].replace("\x00", "") if isinstance(value, str) else ""


def _secret(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value[: MAX_SECRET_LENGTH + 1] if isinstance(value, str) else ""


def _page_number(view: View) -> int:
    raw = view.query("page", "1", 12)
    return min(max(int(raw), 1), 100_000) if raw.isdigit() else 1


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def user_url(username: str, *parts: str) -> str:
    return "/".join(["/accounts/users", _q(username), *parts])


def org_url(org: str, *parts: str) -> str:
    return "/".join(["/accounts/organizations", _q(org), *parts])


def team_url(org: str, team: str, *parts: str) -> str:
    return "/".join([org_url(org, "teams", _q(team)), *parts])


URLS: dict[str, Any] = {"user_url": user_url, "org_url": org_url, "team_url": team_url}


def _sentence(message: str) -> str:
    message = message.strip()
    if not message:
        return message
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


def _check_new_password(password: str, confirm: str, errors: dict[str, str], field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        errors[field] = f"Use at least {MIN_PASSWORD_LENGTH} characters."
    elif len(password) > MAX_SECRET_LENGTH:
        errors[field] = f"Use at most {MAX_SECRET_LENGTH} characters."
    elif password != confirm:
        errors["confirm"] = "The two passwords differ."


def _check_email(email: str, errors: dict[str, str]) -> None:
    if len(email) > 255:
        errors["email"] = "Use at most 255 characters."
    elif email and ("@" not in email or email.startswith("@") or email.endswith("@") or " " in email):
        errors["email"] = "Enter an address like name@example.com, or leave it empty."


def _tabs(user: Principal) -> list[tuple[str, str, str]]:
    items = [
        ("profile", "Profile", "/accounts/profile"),
        ("tokens", "Access tokens", "/accounts/tokens"),
        ("organizations", "Organizations", "/accounts/organizations"),
    ]
    if user.is_admin:
        items.append(("users", "Users", "/accounts/users"))
    return items


def _render(view: View, template: str, tab: str, status: int = 200, **context: Any) -> Response:
    user = view.require_user()
    return view.render(template, status=status, tab=tab, tabs=_tabs(user), **URLS, **context)


async def accounts_home(view: View) -> Response:
    view.require_user()
    return view.redirect("/accounts/profile", 302)


# -- your profile and password ----------------------------------------------------------
async def _profile_page(
    view: View,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    pw_errors: dict[str, str] | None = None,
) -> Response:
    user = view.require_user()
    record = await view.services.accounts.get_user(user.username)
    if values is None:
        values = {"full_name": record.full_name or "", "email": record.email or ""}
    return _render(
        view,
        "accounts/profile.html",
        "profile",
        status=status,
        record=record,
        values=values,
        errors=errors or {},
        pw_errors=pw_errors or {},
    )


async def profile(view: View) -> Response:
    return await _profile_page(view)


async def update_profile(view: View) -> Response:
    user = view.require_user()
    form = await view.form()
    values = {"full_name": _text(form, "full_name"), "email": _text(form, "email")}
    errors: dict[str, str] = {}
    if len(values["full_name"]) > 255:
        errors["full_name"] = "Use at most 255 characters."
    _check_email(values["email"], errors)
    if not errors:
        try:
            await view.services.accounts.update_user(
                user, user.username, full_name=values["full_name"], email=values["email"]
            )
        except svc.InvalidInput as exc:
            errors[exc.field if exc.field in values else "_form"] = _sentence(exc.message)
        else:
            view.flash("Profile saved.")
            return view.redirect("/accounts/profile")
    return await _profile_page(view, 400, errors=errors, values=values)


async def change_password(view: View) -> Response:
    """Your own password: the current one first (a stolen session alone cannot change it)."""
    user = view.require_user()
    form = await view.form()
    current = _secret(form, "current_password")
    password = _secret(form, "password")
    confirm = _secret(form, "confirm")
    errors: dict[str, str] = {}
    cur = "current_password"  # the field an error belongs to
    if not current:
        errors[cur] = "Enter your current password."
    elif current.startswith(PERSONAL_TOKEN_PREFIX):
        errors[cur] = "Enter your current password, not an access token."
    _check_new_password(password, confirm, errors)
    if not errors:
        client = view.request.client.host if view.request.client else None
        try:
            await view.services.authn.password(user.username, current, client)
        except TooManyRequests as exc:
            errors[cur] = _sentence(exc.message)
        except Unauthorized:
            errors[cur] = "That is not your current password."
    if not errors:
        try:
            await view.services.accounts.update_user(user, user.username, password=password)
        except svc.InvalidInput as exc:
            errors["password"] = _sentence(exc.message)
        else:
            view.flash("Password changed. Use the new one from now on.")
            return view.redirect("/accounts/profile")
    return await _profile_page(view, 400, pw_errors=errors)


# -- your access tokens -----------------------------------------------------------------
async def _tokens_page(
    view: View,
    status: int = 200,
    errors: dict[str, str] | None = None,
    label: str = "",
    created: dict[str, Any] | None = None,
) -> Response:
    user = view.require_user()
    tokens = await view.services.accounts.list_tokens(user)
    tokens.sort(key=lambda t: t.created_at, reverse=True)
    response = _render(
        view,
        "accounts/tokens.html",
        "tokens",
        status=status,
        tokens=tokens,
        errors=errors or {},
        label=label,
        created=created,
    )
    if created is not None:  # the page holds a secret: keep it out of every cache
        response.headers["Cache-Control"] = "no-store"
    return response


async def tokens(view: View) -> Response:
    return await _tokens_page(view)


async def create_token(view: View) -> Response:
    """Create a token and show its secret on this response only (it is stored hashed)."""
    user = view.require_user()
    form = await view.form()
    label = _text(form, "label")
    errors: dict[str, str] = {}
    if not label:
        errors["label"] = "Enter a label, such as the machine or job the token is for."
    elif len(label) > 255:
        errors["label"] = "Use at most 255 characters."
    if not errors:
        try:
            token, secret = await view.services.accounts.create_token(user, label)
        except svc.InvalidInput as exc:
            errors["label"] = _sentence(exc.message)
        else:
            view.flash(f"Token {token.label} created.")
            return await _tokens_page(view, 201, created={"token": token, "secret": secret})
    return await _tokens_page(view, 400, errors=errors, label=label)


def _token_id(view: View) -> int:
    raw = view.request.path_params["token_id"]
    if not raw.isdigit() or len(raw) > 10:
        raise svc.NotFound(f"token {raw[:20]!r} does not exist")
    return int(raw)


async def set_token_active(view: View) -> Response:
    user = view.require_user()
    form = await view.form()
    active = form.get("active") == "true"
    token = await view.services.accounts.update_token(user, _token_id(view), is_active=active)
    view.flash(f"Token {token.label} {'reactivated' if active else 'deactivated'}.")
    return view.redirect("/accounts/tokens")


async def delete_token(view: View) -> Response:
    user = view.require_user()
    await view.form()
    await view.services.accounts.delete_token(user, _token_id(view))
    view.flash("Token deleted. Clients using it can no longer sign in with it.")
    return view.redirect("/accounts/tokens")


# -- users (administrators) -------------------------------------------------------------
async def users(view: View) -> Response:
    admin = view.require_admin()
    q = view.query("q").strip().lower()
    number = _page_number(view)
    if q:
        everyone, _ = await view.services.accounts.list_users(admin, 0, MAX_SEARCHED_USERS)
        found = [
            u
            for u in everyone
            if q in u.username or q in (u.full_name or "").lower() or q in (u.email or "").lower()
        ]
        total = len(found)
        shown = found[(number - 1) * PER_PAGE : number * PER_PAGE]
    else:
        shown, total = await view.services.accounts.list_users(admin, (number - 1) * PER_PAGE, PER_PAGE)
    context: dict[str, Any] = {"users": shown, "total": total, "page": number, "per_page": PER_PAGE, "q": q}
    if view.is_htmx and view.request.headers.get("hx-target") == "user-results":
        return view.render("accounts/_users.html", **URLS, **context)
    return _render(view, "accounts/users.html", "users", **context)


def _new_user_values() -> dict[str, Any]:
    return {"username": "", "full_name": "", "email": "", "is_admin": False}


async def new_user(view: View) -> Response:
    view.require_admin()
    return _render(view, "accounts/user_new.html", "users", values=_new_user_values(), errors={})


async def create_user(view: View) -> Response:
    admin = view.require_admin()
    form = await view.form()
    values: dict[str, Any] = {
        "username": _text(form, "username"),
        "full_name": _text(form, "full_name"),
        "email": _text(form, "email"),
        "is_admin": form.get("is_admin") == "on",
    }
    password = _secret(form, "password")
    errors: dict[str, str] = {}
    if not values["username"]:
        errors["username"] = "Enter a username."
    if len(values["full_name"]) > 255:
        errors["full_name"] = "Use at most 255 characters."
    _check_email(values["email"], errors)
    _check_new_password(password, _secret(form, "confirm"), errors)
    if not errors:
        try:
            await view.services.accounts.create_user(
                admin,
                values["username"],
                password,
                full_name=values["full_name"] or None,
                email=values["email"] or None,
                is_admin=values["is_admin"],
            )
        except (svc.InvalidInput, svc.AlreadyExists) as exc:
            errors[exc.field if exc.field in ("username", "password") else "username"] = _name_error(exc)
        else:
            view.flash(f"User {values['username']} created.")
            return view.redirect(user_url(values["username"]))
    return _render(view, "accounts/user_new.html", "users", status=400, values=values, errors=errors)


def _name_error(exc: svc.ServiceError) -> str:
    if isinstance(exc, svc.AlreadyExists):
        return _sentence(exc.message) + " Choose another name."
    if "invalid" in exc.message and "name" in exc.message:
        return "Use 1-64 lowercase letters and digits, separated by '.', '_' or '-'."
    return _sentence(exc.message)


async def _user_page(view: View, status: int = 200, errors: dict[str, str] | None = None) -> Response:
    admin = view.require_admin()
    username = view.request.path_params["username"]
    record = await view.services.accounts.get_user(username)
    return _render(
        view,
        "accounts/user.html",
        "users",
        status=status,
        record=record,
        is_self=record.username == admin.username,
        errors=errors or {},
    )


async def user_detail(view: View) -> Response:
    return await _user_page(view)


async def _admin_update(view: View, done: str, **changes: Any) -> Response:
    admin = view.require_admin()
    username = view.request.path_params["username"]
    try:
        await view.services.accounts.update_user(admin, username, **changes)
    except svc.InvalidInput as exc:
        view.flash(_sentence(exc.message), "error")
    else:
        view.flash(done)
    return view.redirect(user_url(username))


async def set_user_active(view: View) -> Response:
    view.require_admin()
    form = await view.form()
    active = form.get("active") == "true"
    done = "User reactivated." if active else "User deactivated: they can no longer sign in."
    return await _admin_update(view, done, is_active=active)


async def set_user_admin(view: View) -> Response:
    view.require_admin()
    form = await view.form()
    make = form.get("admin") == "true"
    done = "Now an administrator." if make else "No longer an administrator."
    return await _admin_update(view, done, is_admin=make)


async def reset_password(view: View) -> Response:
    """An administrator sets someone else's password (to hand over; they change it after)."""
    admin = view.require_admin()
    form = await view.form()
    username = view.request.path_params["username"]
    password = _secret(form, "password")
    errors: dict[str, str] = {}
    _check_new_password(password, _secret(form, "confirm"), errors)
    if not errors:
        try:
            await view.services.accounts.update_user(admin, username, password=password)
        except svc.InvalidInput as exc:
            errors["password"] = _sentence(exc.message)
        else:
            view.flash(f"Password of {username} set.")
            return view.redirect(user_url(username))
    return await _user_page(view, 400, errors)


async def delete_user(view: View) -> Response:
    admin = view.require_admin()
    await view.form()
    username = view.request.path_params["username"]
    try:
        await view.services.accounts.delete_user(admin, username)
    except svc.InvalidInput as exc:
        view.flash(_sentence(exc.message), "error")
        return view.redirect(user_url(username))
    view.flash(f"User {username} deleted.")
    return view.redirect("/accounts/users")


# -- organizations ----------------------------------------------------------------------
async def _organizations_page(
    view: View, status: int = 200, errors: dict[str, str] | None = None, name: str = ""
) -> Response:
    user = view.require_user()
    number = _page_number(view)
    names, total = await view.services.accounts.list_organizations((number - 1) * PER_PAGE, PER_PAGE)
    orgs = []
    for org in names:
        detail = await view.services.accounts.get_organization(user, org)
        role = next((m["role"] for m in detail["members"] if m["username"] == user.username), None)
        orgs.append(
            {"name": org, "members": len(detail["members"]), "teams": len(detail["teams"]), "role": role}
        )
    return _render(
        view,
        "accounts/organizations.html",
        "organizations",
        status=status,
        orgs=orgs,
        total=total,
        page=number,
        per_page=PER_PAGE,
        errors=errors or {},
        name=name,
    )


async def organizations(view: View) -> Response:
    return await _organizations_page(view)


async def create_organization(view: View) -> Response:
    user = view.require_user()
    form = await view.form()
    name = _text(form, "name")
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Enter a name for the organization."
    else:
        try:
            await view.services.accounts.create_organization(user, name)
        except (svc.InvalidInput, svc.AlreadyExists) as exc:
            errors["name"] = _name_error(exc)
        else:
            view.flash(f"Organization {name} created: you are its owner.")
            return view.redirect(org_url(name))
    return await _organizations_page(view, 400, errors, name)


async def _may_manage(view: View, org: str) -> bool:
    return await view.services.access.namespace_level(view.user, org) >= Level.ADMIN


async def _organization_page(
    view: View,
    status: int = 200,
    member_errors: dict[str, str] | None = None,
    member_values: dict[str, str] | None = None,
    team_errors: dict[str, str] | None = None,
    team_values: dict[str, str] | None = None,
) -> Response:
    user = view.require_user()
    org = view.request.path_params["org"]
    detail = await view.services.accounts.get_organization(user, org)
    is_member = user.is_admin or any(m["username"] == user.username for m in detail["members"])
    repos, repo_total = await view.services.repositories.list(user, namespace=org, limit=10)
    return _render(
        view,
        "accounts/organization.html",
        "organizations",
        status=status,
        org=detail,
        may_manage=await _may_manage(view, org),
        is_member=is_member,
        repos=repos,
        repo_total=repo_total,
        roles=ROLES,
        member_errors=member_errors or {},
        member_values=member_values or {"username": "", "role": "member"},
        team_errors=team_errors or {},
        team_values=team_values or {"name": "", "description": ""},
    )


async def organization(view: View) -> Response:
    return await _organization_page(view)


async def set_org_member(view: View) -> Response:
    user = view.require_user()
    form = await view.form()
    org = view.request.path_params["org"]
    values = {"username": _text(form, "username"), "role": _text(form, "role") or "member"}
    errors: dict[str, str] = {}
    if not values["username"]:
        errors["username"] = "Enter the username of the person to add."
    if values["role"] not in ("owner", "member"):
        errors["role"] = "Choose owner or member."
    if not errors:
        try:
            await view.services.accounts.set_member(user, org, values["username"], values["role"])
        except svc.NotFound as exc:
            if "organization" in exc.message:
                raise
            errors["username"] = f"There is no user {values['username']!r}."
        except svc.InvalidInput as exc:
            errors[exc.field if exc.field in values else "username"] = _sentence(exc.message)
        else:
            view.flash(
                f"{values['username']} is now {'an owner' if values['role'] == 'owner' else 'a member'}."
            )
            return view.redirect(org_url(org))
    if form.get("from") == "row":  # a role change in the members table: no field to show it by
        view.flash(next(iter(errors.values())), "error")
        return view.redirect(org_url(org))
    return await _organization_page(view, 400, member_errors=errors, member_values=values)


async def remove_org_member(view: View) -> Response:
    user = view.require_user()
    await view.form()
    org = view.request.path_params["org"]
    username = view.request.path_params["username"]
    try:
        await view.services.accounts.remove_member(user, org, username)
    except svc.NotFound as exc:
        if "organization" in exc.message and "member" not in exc.message:
            raise
        view.flash(_sentence(exc.message), "error")
    else:
        view.flash(f"{username} removed from {org}.")
    if username == user.username and not user.is_admin:
        return view.redirect("/accounts/organizations")
    return view.redirect(org_url(org))


async def delete_organization(view: View) -> Response:
    user = view.require_user()
    await view.form()
    org = view.request.path_params["org"]
    try:
        await view.services.accounts.delete_organization(user, org)
    except svc.InvalidInput as exc:
        view.flash(_sentence(exc.message), "error")
        return view.redirect(org_url(org))
    view.flash(f"Organization {org} deleted.")
    return view.redirect("/accounts/organizations")


async def create_team(view: View) -> Response:
    user = view.require_user()
    form = await view.form()
    org = view.request.path_params["org"]
    values = {"name": _text(form, "name"), "description": _text(form, "description", 2000)}
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = "Enter a name for the team."
    if len(values["description"]) > 2000:
        errors["description"] = "Use at most 2000 characters."
    if not errors:
        try:
            await view.services.accounts.create_team(user, org, values["name"], values["description"] or None)
        except (svc.InvalidInput, svc.AlreadyExists) as exc:
            errors["name"] = _name_error(exc)
        else:
            view.flash(f"Team {values['name']} created.")
            return view.redirect(team_url(org, values["name"]))
    return await _organization_page(view, 400, team_errors=errors, team_values=values)


# -- teams ------------------------------------------------------------------------------
async def _team_page(
    view: View,
    status: int = 200,
    member_errors: dict[str, str] | None = None,
    member_values: dict[str, str] | None = None,
    grant_errors: dict[str, str] | None = None,
    grant_values: dict[str, str] | None = None,
    desc_errors: dict[str, str] | None = None,
) -> Response:
    user = view.require_user()
    org = view.request.path_params["org"]
    team = view.request.path_params["team"]
    detail = await view.services.accounts.get_team(user, org, team)
    may_manage = await _may_manage(view, org)
    grantable: list[str] = []
    if may_manage:
        repos, _ = await view.services.repositories.list(user, namespace=org, limit=MAX_GRANTABLE)
        granted = {a["name"] for a in detail["access"] if a["kind"] == "repository"}
        grantable = [r.name for r in repos if r.name not in granted]
    namespace_grant = next((a["level"] for a in detail["access"] if a["kind"] == "namespace"), None)
    return _render(
        view,
        "accounts/team.html",
        "organizations",
        status=status,
        org=org,
        team=detail,
        repo_grants=[a for a in detail["access"] if a["kind"] == "repository"],
        namespace_grant=namespace_grant,
        may_manage=may_manage,
        grantable=grantable,
        levels=LEVELS,
        member_errors=member_errors or {},
        member_values=member_values or {"username": ""},
        grant_errors=grant_errors or {},
        grant_values=grant_values or {"repository": "", "level": "read-only"},
        desc_errors=desc_errors or {},
    )


async def team_detail(view: View) -> Response:
    return await _team_page(view)


def _team_params(view: View) -> tuple[str, str]:
    return view.request.path_params["org"], view.request.path_params["team"]


async def update_team(view: View) -> Response:
    user = view.require_user()
    form = await view.form()
    org, team = _team_params(view)
    description = _text(form, "description", 2000)
    if len(description) > 2000:
        return await _team_page(view, 400, desc_errors={"description": "Use at most 2000 characters."})
    await view.services.accounts.update_team(user, org, team, description or None)
    view.flash("Description saved.")
    return view.redirect(team_url(org, team))


async def delete_team(view: View) -> Response:
    user = view.require_user()
    await view.form()
    org, team = _team_params(view)
    await view.services.accounts.delete_team(user, org, team)
    view.flash(f"Team {team} deleted.")
    return view.redirect(org_url(org))


async def add_team_member(view: View) -> Response:
    user = view.require_user()
    form = await view.form()
    org, team = _team_params(view)
    values = {"username": _text(form, "username")}
    errors: dict[str, str] = {}
    if not values["username"]:
        errors["username"] = "Enter the username of the person to add."
    else:
        try:
            await view.services.accounts.add_team_member(user, org, team, values["username"])
        except svc.NotFound as exc:
            if "user" not in exc.message:
                raise
            errors["username"] = f"There is no user {values['username']!r}."
        else:
            view.flash(f"{values['username']} added to {team}.")
            return view.redirect(team_url(org, team))
    return await _team_page(view, 400, member_errors=errors, member_values=values)


async def remove_team_member(view: View) -> Response:
    user = view.require_user()
    await view.form()
    org, team = _team_params(view)
    username = view.request.path_params["username"]
    try:
        await view.services.accounts.remove_team_member(user, org, team, username)
    except svc.NotFound as exc:
        view.flash(_sentence(exc.message), "error")
    else:
        view.flash(f"{username} removed from {team}.")
    return view.redirect(team_url(org, team))


async def grant_repository(view: View) -> Response:
    user = view.require_user()
    form = await view.form()
    org, team = _team_params(view)
    values = {"repository": _text(form, "repository"), "level": _text(form, "level")}
    errors: dict[str, str] = {}
    if not values["repository"]:
        errors["repository"] = "Choose a repository."
    if values["level"] not in {v for v, _ in LEVELS}:
        errors["level"] = "Choose read-only, read-write or admin."
    if not errors:
        try:
            await view.services.accounts.grant_repository(
                user, org, team, values["repository"], values["level"]
            )
        except svc.NotFound as exc:
            if "team" in exc.message or "organization" in exc.message:
                raise
            errors["repository"] = _sentence(exc.message)
        except svc.InvalidInput as exc:
            errors[exc.field if exc.field in values else "repository"] = _sentence(exc.message)
        else:
            view.flash(f"{team} now has {values['level']} access to {values['repository']}.")
            return view.redirect(team_url(org, team))
    return await _team_page(view, 400, grant_errors=errors, grant_values=values)


async def revoke_repository(view: View) -> Response:
    user = view.require_user()
    form = await view.form()
    org, team = _team_params(view)
    repository = _text(form, "repository")
    try:
        await view.services.accounts.revoke_repository(user, org, team, repository)
    except svc.NotFound as exc:
        view.flash(_sentence(exc.message), "error")
    else:
        view.flash(f"{team} no longer has access of its own to {repository}.")
    return view.redirect(team_url(org, team))


async def set_namespace_grant(view: View) -> Response:
    """The team's level on every repository of the organization (``none`` removes it)."""
    user = view.require_user()
    form = await view.form()
    org, team = _team_params(view)
    level = _text(form, "namespace_level")
    if level == "none":
        with contextlib.suppress(svc.NotFound):  # nothing to remove: already the case
            await view.services.accounts.revoke_namespace(user, org, team)
        view.flash(f"{team} no longer has access to every repository of {org}.")
    else:
        try:
            await view.services.accounts.grant_namespace(user, org, team, level)
        except svc.InvalidInput as exc:
            return await _team_page(view, 400, grant_errors={"namespace_level": _sentence(exc.message)})
        view.flash(f"{team} now has {level} access to every repository of {org}.")
    return view.redirect(team_url(org, team))


USER = "{username}"
ORG = "{org}"
TEAM = "{team}"
ROUTES: list[BaseRoute] = [
    Route("/accounts", page(accounts_home), methods=["GET"]),
    Route("/accounts/profile", page(profile), methods=["GET"]),
    Route("/accounts/profile", page(update_profile), methods=["POST"]),
    Route("/accounts/password", page(change_password), methods=["POST"]),
    Route("/accounts/tokens", page(tokens), methods=["GET"]),
    Route("/accounts/tokens", page(create_token), methods=["POST"]),
    Route("/accounts/tokens/{token_id}/active", page(set_token_active), methods=["POST"]),
    Route("/accounts/tokens/{token_id}/delete", page(delete_token), methods=["POST"]),
    Route("/accounts/users", page(users), methods=["GET"]),
    Route("/accounts/users", page(create_user), methods=["POST"]),
    Route("/accounts/users/new", page(new_user), methods=["GET"]),
    Route(f"/accounts/users/{USER}", page(user_detail), methods=["GET"]),
    Route(f"/accounts/users/{USER}/active", page(set_user_active), methods=["POST"]),
    Route(f"/accounts/users/{USER}/admin", page(set_user_admin), methods=["POST"]),
    Route(f"/accounts/users/{USER}/password", page(reset_password), methods=["POST"]),
    Route(f"/accounts/users/{USER}/delete", page(delete_user), methods=["POST"]),
    Route("/accounts/organizations", page(organizations), methods=["GET"]),
    Route("/accounts/organizations", page(create_organization), methods=["POST"]),
    Route(f"/accounts/organizations/{ORG}", page(organization), methods=["GET"]),
    Route(f"/accounts/organizations/{ORG}/members", page(set_org_member), methods=["POST"]),
    Route(f"/accounts/organizations/{ORG}/members/{USER}/remove", page(remove_org_member), methods=["POST"]),
    Route(f"/accounts/organizations/{ORG}/delete", page(delete_organization), methods=["POST"]),
    Route(f"/accounts/organizations/{ORG}/teams", page(create_team), methods=["POST"]),
    Route(f"/accounts/organizations/{ORG}/teams/{TEAM}", page(team_detail), methods=["GET"]),
    Route(f"/accounts/organizations/{ORG}/teams/{TEAM}", page(update_team), methods=["POST"]),
    Route(f"/accounts/organizations/{ORG}/teams/{TEAM}/delete", page(delete_team), methods=["POST"]),
    Route(f"/accounts/organizations/{ORG}/teams/{TEAM}/members", page(add_team_member), methods=["POST"]),
    Route(
        f"/accounts/organizations/{ORG}/teams/{TEAM}/members/{USER}/remove",
        page(remove_team_member),
        methods=["POST"],
    ),
    Route(f"/accounts/organizations/{ORG}/teams/{TEAM}/access", page(grant_repository), methods=["POST"]),
    Route(
        f"/accounts/organizations/{ORG}/teams/{TEAM}/access/revoke", page(revoke_repository), methods=["POST"]
    ),
    Route(
        f"/accounts/organizations/{ORG}/teams/{TEAM}/namespace", page(set_namespace_grant), methods=["POST"]
    ),
]
