"""Repositories: the list, creating one, and a repository's page (tags, settings, activity)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from moorage.oci.errors import ManifestUnknown, NameInvalid
from moorage.services import errors as svc
from moorage.services import events as ev
from moorage.services.access import Level, Principal
from moorage.services.repositories import Repository
from moorage.web.templating import repo_url
from moorage.web.view import View, page

PER_PAGE = 25
MAX_TAGS_PER_ACTION = 200
SCAN_ACTIVE = ("pending", "scanning")


def _level(repo: Repository) -> Level:
    return Level.parse(repo.level) if repo.level != "none" else Level.NONE


def _page_number(view: View) -> int:
    raw = view.query("page", "1", 12)
    return min(max(int(raw), 1), 100_000) if raw.isdigit() else 1


def registry_host(view: View) -> str:
    """The host clients pull from: the configured public address or the one the browser used."""
    configured = getattr(view.services.settings, "public_url", None)
    if isinstance(configured, str) and configured:
        return configured.split("://", 1)[-1].rstrip("/")
    return view.request.url.netloc


# -- the list -------------------------------------------------------------------------------
async def repository_list(view: View) -> Response:
    q = view.query("q").strip()
    namespace = view.query("namespace").strip()
    visibility = view.query("visibility")
    if visibility not in ("public", "private"):
        visibility = ""
    number = _page_number(view)
    repos, total = await view.services.repositories.list(
        view.user,
        namespace=namespace or None,
        visibility=visibility or None,
        search=q or None,
        offset=(number - 1) * PER_PAGE,
        limit=PER_PAGE,
    )
    may_create = view.user is not None and bool(await _creatable_namespaces(view, view.user))
    context: dict[str, Any] = {
        "repos": repos,
        "total": total,
        "page": number,
        "per_page": PER_PAGE,
        "filters": {"q": q, "namespace": namespace, "visibility": visibility},
        "filtered": bool(q or namespace or visibility),
        "may_create": may_create,
        "host": registry_host(view),
    }
    if view.is_htmx and view.request.headers.get("hx-target") == "repo-results":
        return view.render("repositories/_results.html", **context)
    return view.render("repositories/list.html", **context)


async def _creatable_namespaces(view: View, user: Principal) -> list[str]:
    """The namespaces the user may create repositories in: its own and organizations it administers."""
    out = [user.username]
    orgs, _ = await view.services.accounts.list_organizations(0, 500)
    for org in orgs:
        if await view.services.access.namespace_level(user, org) >= Level.ADMIN:
            out.append(org)
    return out


# -- create ---------------------------------------------------------------------------------
def _empty_values(user: Principal, namespace: str = "") -> dict[str, Any]:
    return {
        "namespace": namespace or user.username,
        "name": "",
        "description": "",
        "visibility": "private",
        "scan_on_push": True,
        "immutable_tags": False,
    }


async def new_repository(view: View) -> Response:
    user = view.require_user()
    namespaces = await _creatable_namespaces(view, user)
    values = _empty_values(user, view.query("namespace"))
    return view.render("repositories/new.html", namespaces=namespaces, values=values, errors={})


async def create_repository(view: View) -> Response:
    user = view.require_user()
    form = await view.form()
    namespaces = await _creatable_namespaces(view, user)
    values: dict[str, Any] = {
        "namespace": str(form.get("namespace", "")).strip(),
        "name": str(form.get("name", "")).strip(),
        "description": str(form.get("description", "")).strip(),
        "visibility": str(form.get("visibility", "private")),
        "scan_on_push": form.get("scan_on_push") == "on",
        "immutable_tags": form.get("immutable_tags") == "on",
    }
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = "Enter a name for the repository."
    elif len(values["name"]) > 200:
        errors["name"] = "Use at most 200 characters."
    if values["namespace"] not in namespaces:
        errors["namespace"] = "Choose a namespace you may create repositories in."
    if values["visibility"] not in ("public", "private"):
        errors["visibility"] = "Choose public or private."
    if len(values["description"]) > 2000:
        errors["description"] = "Use at most 2000 characters."
    if not errors:
        full = f"{values['namespace']}/{values['name']}"
        try:
            await view.services.repositories.create(
                user,
                full,
                visibility=values["visibility"],
                description=values["description"] or None,
                immutable_tags=values["immutable_tags"],
                scan_on_push=values["scan_on_push"],
            )
        except (svc.InvalidInput, svc.AlreadyExists, svc.NotFound, NameInvalid) as exc:
            field = getattr(exc, "field", None) or "name"
            errors[field if field in values else "name"] = _friendly_name_error(exc.message)
        except svc.Forbidden as exc:
            errors["namespace"] = exc.message
        else:
            view.flash(f"Repository {full} created.")
            return view.redirect(repo_url(full))
    return view.render(
        "repositories/new.html", status=400, namespaces=namespaces, values=values, errors=errors
    )


def _friendly_name_error(message: str) -> str:
    if "invalid" in message.lower() and "name" in message.lower():
        return (
            "Use lowercase letters, digits and separators (. _ -), with / between path components; "
            "start and end each component with a letter or digit."
        )
    return message[:1].upper() + message[1:]


# -- one repository -------------------------------------------------------------------------
async def _repo_context(view: View, name: str) -> dict[str, Any]:
    repo = await view.services.repositories.get(view.user, name)
    level = _level(repo)
    return {
        "repo": repo,
        "level": level,
        "may_write": level >= Level.READ_WRITE,
        "may_admin": level >= Level.ADMIN,
        "host": registry_host(view),
    }


def _tags_state(tags: list[dict[str, Any]]) -> bool:
    return any((t.get("scan") or {}).get("status") in SCAN_ACTIVE for t in tags)


async def repository_tags(view: View) -> Response:
    name = view.request.path_params["name"]
    context = await _repo_context(view, name)
    tags = await view.services.artifacts.list_tags(view.user, name)
    tags.sort(key=lambda t: t["pushedAt"], reverse=True)
    context.update(tags=tags, scanning=_tags_state(tags), tab="tags")
    if view.is_htmx and view.request.headers.get("hx-target") == "tags-panel":
        return view.render("repositories/_tags.html", **context)
    return view.render("repositories/tags.html", **context)


def _selected(form: Any) -> list[str]:
    return [str(t) for t in form.getlist("tag")][:MAX_TAGS_PER_ACTION]


async def delete_tags(view: View) -> Response:
    name = view.request.path_params["name"]
    form = await view.form()
    repo = await view.services.repositories.get(view.user, name)
    if _level(repo) < Level.READ_WRITE:
        raise svc.Forbidden(f"deleting tags needs read-write access to {name!r}")
    tags = _selected(form)
    if not tags:
        view.flash("Select the tags to delete first.", "error")
        return view.redirect(repo_url(name))
    deleted, gone = [], []
    for tag in tags:
        try:
            await view.services.manifests.delete(name, tag, view.user.username if view.user else None)
            deleted.append(tag)
        except (ManifestUnknown, NameInvalid):
            gone.append(tag)
    if deleted:
        view.flash(f"Deleted {len(deleted)} tag{'s' if len(deleted) != 1 else ''}: {', '.join(deleted)}.")
    if gone:
        view.flash(
            f"Tag{'s' if len(gone) != 1 else ''} {', '.join(gone)} no longer exist{'s' if len(gone) == 1 else ''}: "
            "deleted meanwhile, the list is now up to date.",
            "error",
        )
    return view.redirect(repo_url(name))


async def scan_tags(view: View) -> Response:
    name = view.request.path_params["name"]
    form = await view.form()
    tags = _selected(form)
    if not tags:
        view.flash("Select the tags to scan first.", "error")
        return view.redirect(repo_url(name))
    current = {t["name"]: t["digest"] for t in await view.services.artifacts.list_tags(view.user, name)}
    queued, gone = [], []
    for tag in tags:
        digest = current.get(tag)
        if digest is None:
            gone.append(tag)
            continue
        await view.services.scanning.request_scan(view.user, name, digest)
        queued.append(tag)
    if queued:
        view.flash(f"Scan queued for {', '.join(queued)}.")
    if gone:
        view.flash(f"Tag {', '.join(gone)} no longer exists: deleted meanwhile.", "error")
    target = str(form.get("next", ""))
    return view.redirect(target if target.startswith("/repositories/") else repo_url(name))


# -- settings -------------------------------------------------------------------------------
async def _team_access(view: View, repo: Repository) -> tuple[list[dict[str, str]], list[str]]:
    """Teams of the repository's organization with a grant on it, and all its teams."""
    try:
        org = await view.services.accounts.get_organization(view.user, repo.namespace)
    except svc.ServiceError:
        return [], []  # a user namespace: no teams
    grants: list[dict[str, str]] = []
    teams = [t["name"] for t in org["teams"]]
    for team in teams:
        detail = await view.services.accounts.get_team(view.user, repo.namespace, team)
        for entry in detail["access"]:
            if entry["kind"] == "repository" and entry["name"] == repo.name:
                grants.append({"team": team, "level": entry["level"], "scope": "repository"})
            elif entry["kind"] == "namespace" and entry["name"] == repo.namespace:
                grants.append({"team": team, "level": entry["level"], "scope": "namespace"})
    return grants, teams


async def _settings_page(
    view: View, name: str, errors: dict[str, str], values: dict[str, Any] | None, status: int = 200
) -> Response:
    context = await _repo_context(view, name)
    repo: Repository = context["repo"]
    if not context["may_admin"]:
        raise svc.Forbidden(f"only administrators of {name!r} may change its settings")
    grants, teams = await _team_access(view, repo)
    if values is None:
        values = {
            "description": repo.description or "",
            "visibility": repo.visibility,
            "scan_on_push": repo.scan_on_push if repo.scan_on_push is not None else _default_scan(view),
            "immutable_tags": repo.immutable_tags,
        }
    context.update(tab="settings", errors=errors, values=values, grants=grants, teams=teams)
    return view.render("repositories/settings.html", status=status, **context)


def _default_scan(view: View) -> bool:
    return bool(view.services.settings.scan_on_push_default)


async def repository_settings(view: View) -> Response:
    return await _settings_page(view, view.request.path_params["name"], {}, None)


async def update_settings(view: View) -> Response:
    name = view.request.path_params["name"]
    form = await view.form()
    values: dict[str, Any] = {
        "description": str(form.get("description", "")).strip(),
        "visibility": str(form.get("visibility", "")),
        "scan_on_push": form.get("scan_on_push") == "on",
        "immutable_tags": form.get("immutable_tags") == "on",
    }
    errors: dict[str, str] = {}
    if values["visibility"] not in ("public", "private"):
        errors["visibility"] = "Choose public or private."
    if len(values["description"]) > 2000:
        errors["description"] = "Use at most 2000 characters."
    if not errors:
        try:
            await view.services.repositories.update(
                view.user,
                name,
                visibility=values["visibility"],
                description=values["description"],
                immutable_tags=values["immutable_tags"],
                scan_on_push=values["scan_on_push"],
            )
        except svc.InvalidInput as exc:
            errors[exc.field or "_form"] = exc.message
        else:
            view.flash("Settings saved.")
            return view.redirect(repo_url(name, "settings"))
    return await _settings_page(view, name, errors, values, status=400)


async def grant_team(view: View) -> Response:
    name = view.request.path_params["name"]
    form = await view.form()
    repo = await view.services.repositories.get(view.user, name)
    team = str(form.get("team", "")).strip()
    level = str(form.get("level", ""))
    errors: dict[str, str] = {}
    if not team:
        errors["team"] = "Choose a team."
    if not errors:
        try:
            await view.services.accounts.grant_repository(view.user, repo.namespace, team, name, level)
        except (svc.InvalidInput, svc.NotFound) as exc:
            errors[exc.field if exc.field in ("team", "level") else "team"] = exc.message
        else:
            view.flash(f"Team {team} now has {level} access.")
            return view.redirect(repo_url(name, "settings"))
    return await _settings_page(view, name, errors, None, status=400)


async def revoke_team(view: View) -> Response:
    name = view.request.path_params["name"]
    form = await view.form()
    repo = await view.services.repositories.get(view.user, name)
    team = str(form.get("team", "")).strip()
    try:
        await view.services.accounts.revoke_repository(view.user, repo.namespace, team, name)
    except svc.NotFound as exc:
        view.flash(exc.message, "error")
    else:
        view.flash(f"Team {team} no longer has access of its own to {name}.")
    return view.redirect(repo_url(name, "settings"))


async def delete_repository(view: View) -> Response:
    name = view.request.path_params["name"]
    await view.form()
    await view.services.repositories.delete(view.user, name)
    view.flash(f"Repository {name} deleted.")
    return view.redirect("/repositories")


# -- activity -------------------------------------------------------------------------------
#: What the Activity tab shows (pulls are left out: they would drown the changes).
ACTIVITY: dict[str, str] = {
    ev.TAG_PUSH: "Tag pushed",
    ev.MANIFEST_PUSH: "Manifest pushed",
    ev.TAG_DELETE: "Tag deleted",
    ev.MANIFEST_DELETE: "Manifest deleted",
    ev.SCAN_COMPLETED: "Scan completed",
    ev.SCAN_FAILED: "Scan failed",
    ev.REPO_CREATED: "Repository created",
    ev.REPO_UPDATED: "Settings changed",
    ev.PROMOTION: "Promoted",
    ev.PUSH_MIRRORING: "Mirrored (push)",
    ev.POLL_MIRRORING: "Mirrored (pull)",
}
ACTIVITY_PER_PAGE = 50


async def repository_activity(view: View) -> Response:
    name = view.request.path_params["name"]
    context = await _repo_context(view, name)  # refuses those who may not read the repository
    number = _page_number(view)
    kind = view.query("type")
    types = [kind] if kind in ACTIVITY else list(ACTIVITY)
    rows, total = await view.services.events.recent(
        repository=name, types=types, offset=(number - 1) * ACTIVITY_PER_PAGE, limit=ACTIVITY_PER_PAGE
    )
    events = [
        {
            "at": r.created_at,
            "type": r.type,
            "label": ACTIVITY[r.type],
            "tag": r.tag,
            "digest": r.digest,
            "actor": r.actor,
            "detail": _event_detail(r.type, r.contents),
        }
        for r in rows
    ]
    context.update(
        tab="activity",
        events=events,
        total=total,
        page=number,
        per_page=ACTIVITY_PER_PAGE,
        kinds=[("", "Everything"), *ACTIVITY.items()],
        kind=kind if kind in ACTIVITY else "",
    )
    return view.render("repositories/activity.html", **context)


def _event_detail(kind: str, contents: dict[str, Any]) -> str:
    """A short human note from an event's contents (scan counts, failure reasons)."""
    if kind == ev.SCAN_COMPLETED:
        counts = contents.get("summary") or contents
        parts = [
            f"{counts[s]} {s}" for s in ("critical", "high", "medium", "low", "unknown") if counts.get(s)
        ]
        return ", ".join(parts) or "no known vulnerabilities"
    for key in ("reason", "error", "message"):
        if isinstance(contents.get(key), str):
            return str(contents[key])[:200]
    return ""


N = "{name:path}"
ROUTES: list[BaseRoute] = [
    Route("/repositories", page(repository_list), methods=["GET"]),
    Route("/repositories", page(create_repository), methods=["POST"]),
    Route("/repositories/new", page(new_repository), methods=["GET"]),
    Route(f"/repositories/{N}/-/tags/delete", page(delete_tags), methods=["POST"]),
    Route(f"/repositories/{N}/-/scan", page(scan_tags), methods=["POST"]),
    Route(f"/repositories/{N}/-/settings", page(repository_settings), methods=["GET"]),
    Route(f"/repositories/{N}/-/settings", page(update_settings), methods=["POST"]),
    Route(f"/repositories/{N}/-/access", page(grant_team), methods=["POST"]),
    Route(f"/repositories/{N}/-/access/revoke", page(revoke_team), methods=["POST"]),
    Route(f"/repositories/{N}/-/delete", page(delete_repository), methods=["POST"]),
    Route(f"/repositories/{N}/-/activity", page(repository_activity), methods=["GET"]),
    Route(f"/repositories/{N}/-/tags", page(repository_tags), methods=["GET"]),
    Route(f"/repositories/{N}", page(repository_tags), methods=["GET"]),
]
