"""System (administrators only): the vulnerability database and its imports, rescanning, the
scan and job queues, background jobs and their logs, schedules, registry events, and the
settings the registry runs with (shown, not changed: see :func:`settings_page`).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from moorage.config import Settings
from moorage.services import errors as svc
from moorage.services import events as ev
from moorage.web.view import View, page

PER_PAGE = 50
#: What the scanning service's messages say besides the cause: its temporary copy's name, and
#: that nothing changed (the page says so itself).
_NOISE = re.compile(r"(?:\S*/)?upload(?:\.[\w.]+)?: |the import was not applied: ")
#: Largest OSV archive the upload form takes (the API's limit too).
MAX_UPLOAD_BYTES = 1 << 30
#: The states of a background job (``services.jobs``), in the order a job goes through them.
JOB_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
#: Settings never shown, not even to administrators: secrets.
SECRET_SETTINGS = frozenset({"admin_password"})
TABS = [
    ("overview", "Overview", "/system"),
    ("jobs", "Jobs", "/system/jobs"),
    ("schedules", "Schedules", "/system/schedules"),
    ("events", "Events", "/system/events"),
    ("settings", "Settings", "/system/settings"),
]


def _page_number(view: View) -> int:
    raw = view.query("page", "1", 12)
    return min(max(int(raw), 1), 100_000) if raw.isdigit() else 1


def _render(view: View, template: str, tab: str, status: int = 200, **context: Any) -> Response:
    return view.render(template, status=status, tab=tab, tabs=TABS, **context)


# -- overview -------------------------------------------------------------------------------
async def _scan_activity(view: View) -> dict[str, Any]:
    """The scan queue (pending, scanning, completed, failed) and the latest finished and failed scans."""
    user = view.require_admin()
    out: dict[str, Any] = {"queue": await view.services.scanning.queue_status(user)}
    for key, kind in (("completed", ev.SCAN_COMPLETED), ("failed", ev.SCAN_FAILED)):
        rows, _ = await view.services.activity.events_for(
            user, repository=None, namespace=None, types=[kind], offset=0, limit=1
        )
        out[f"last_{key}"] = rows[0] if rows else None
    return out


async def _overview(view: View, status: int = 200, errors: dict[str, str] | None = None) -> Response:
    user = view.require_admin()
    vulndb = await view.services.vulndb.status()
    queue = await view.services.activity.queue_status(user)
    totals = dict.fromkeys(JOB_STATUSES, 0)
    for counts in queue.values():
        for state, n in counts.items():
            totals[state] = totals.get(state, 0) + n
    recent, _ = await view.services.activity.events_for(
        user, repository=None, namespace=None, types=[], offset=0, limit=8
    )
    return _render(
        view,
        "system/overview.html",
        "overview",
        status=status,
        vulndb=vulndb,
        scans=await _scan_activity(view),
        queue=dict(sorted(queue.items())),
        totals=totals,
        recent=recent,
        errors=errors or {},
        max_upload="1 GiB",
    )


async def overview(view: View) -> Response:
    return await _overview(view)


async def import_vulndb(view: View) -> Response:
    """Import an uploaded OSV archive (.zip, .tar.gz or .json), then re-match every scan."""
    user = view.require_admin()
    form = await view.form(max_part_size=MAX_UPLOAD_BYTES, max_files=1)
    upload = form.get("archive")
    errors: dict[str, str] = {}
    data = b""
    if not isinstance(upload, UploadFile) or not upload.filename:
        errors["archive"] = "Choose an OSV archive to upload: a .zip, .tar.gz or .json of OSV records."
    else:
        data = await upload.read()
        if not data:
            errors["archive"] = f"{upload.filename} is empty: choose an OSV archive (.zip, .tar.gz or .json)."
    if not errors:
        try:
            result = await view.services.scanning.import_vulndb(user, data)
        except svc.InvalidInput as exc:
            name = upload.filename if isinstance(upload, UploadFile) else "The file"
            errors["archive"] = _upload_error(name or "The file", exc.message)
        else:
            invalid = result.get("invalid", 0)
            view.flash(
                f"Imported {result.get('records', 0)} records ({result.get('added', 0)} new, "
                f"{result.get('updated', 0)} updated, {result.get('unchanged', 0)} unchanged"
                f"{f', {invalid} invalid skipped' if invalid else ''}); "
                f"{result.get('rematched', 0)} scans re-matched. Version {str(result.get('version', ''))[:19]}."
            )
            return view.redirect("/system")
    return await _overview(view, 400, errors)


def _upload_error(name: str, message: str) -> str:
    """The scanning service's refusal, said of the file the administrator chose."""
    if "is not a .zip, .tar.gz or .json" in message:
        return (
            f"{name} is not an OSV archive: upload a .zip, .tar.gz or .json of OSV records, "
            "as osv.dev publishes them. Nothing was imported."
        )
    detail = _NOISE.sub("", message).rstrip(".")
    return f"{name} could not be read as OSV records ({detail}). Nothing was imported."


async def rescan_all(view: View) -> Response:
    """Queue a re-match of every completed scan against the database as it is now (scans whose
    layer inventories are missing are queued again), as a background job."""
    user = view.require_admin()
    await view.form()
    job_id = await view.services.scanning.request_rescan_all(user)
    view.flash(f"Rescan queued as job {job_id}: every scan is re-matched in the background.")
    return view.redirect(f"/system/jobs/{job_id}")


# -- jobs -----------------------------------------------------------------------------------
async def jobs(view: View) -> Response:
    user = view.require_admin()
    state = view.query("status")
    kind = view.query("kind").strip()
    number = _page_number(view)
    rows, total = await view.services.activity.jobs_for(
        user,
        (kind,) if kind else (),
        (state,) if state in JOB_STATUSES else (),
        (number - 1) * PER_PAGE,
        PER_PAGE,
    )
    kinds = sorted((await view.services.activity.queue_status(user)).keys())
    filters = {"status": state if state in JOB_STATUSES else "", "kind": kind}
    return _render(
        view,
        "system/jobs.html",
        "jobs",
        jobs=rows,
        total=total,
        page=number,
        per_page=PER_PAGE,
        filters=filters,
        statuses=JOB_STATUSES,
        kinds=kinds,
        url="/system/jobs?" + urllib.parse.urlencode({k: v for k, v in filters.items() if v}),
    )


def _job_id(view: View) -> int:
    raw = view.request.path_params["job_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise svc.NotFound(f"job {raw[:20]!r} does not exist")
    return int(raw)


async def job_detail(view: View) -> Response:
    user = view.require_admin()
    job = await view.services.activity.job_for(user, _job_id(view))
    return _render(view, "system/job.html", "jobs", job=job)


async def cancel_job(view: View) -> Response:
    user = view.require_admin()
    await view.form()
    job_id = _job_id(view)
    try:
        await view.services.activity.cancel_job(user, job_id)
    except svc.Conflict as exc:
        view.flash(exc.message[:1].upper() + exc.message[1:] + ".", "error")
    else:
        view.flash(f"Job {job_id} cancelled.")
    return view.redirect(f"/system/jobs/{job_id}")


# -- schedules and events -------------------------------------------------------------------
async def schedules(view: View) -> Response:
    user = view.require_admin()
    rows = await view.services.activity.schedules_for(user)
    return _render(view, "system/schedules.html", "schedules", schedules=rows)


async def events(view: View) -> Response:
    user = view.require_admin()
    kind = view.query("type")
    if kind not in ev.EVENT_TYPES:
        kind = ""
    number = _page_number(view)
    rows, total = await view.services.activity.events_for(
        user,
        repository=None,
        namespace=None,
        types=[kind] if kind else [],
        offset=(number - 1) * PER_PAGE,
        limit=PER_PAGE,
    )
    context: dict[str, Any] = {
        "events": rows,
        "total": total,
        "page": number,
        "per_page": PER_PAGE,
        "kind": kind,
        "types": ev.EVENT_TYPES,
        "url": "/system/events" + (f"?type={kind}" if kind else ""),
    }
    if view.is_htmx and view.request.headers.get("hx-target") == "event-results":
        return view.render("system/_events.html", **context)
    return _render(view, "system/events.html", "events", **context)


# -- settings -------------------------------------------------------------------------------
def _shown(name: str, value: Any) -> str:
    if name in SECRET_SETTINGS:
        return "(set)" if value else "(not set)"
    if value is None:
        return "—"
    text = str(value)
    if name == "database_url":  # a password in the URL stays hidden
        parts = urllib.parse.urlsplit(text)
        if parts.password:
            text = text.replace(f":{parts.password}@", ":••••@", 1)
    return text


async def settings_page(view: View) -> Response:
    """The settings in force, read-only.

    None is changed here: settings come from the config file and ``MOORAGE_*`` variables and are
    read once at start by every server process; a change made through one process would not reach
    the others (``workers`` > 1) and would be lost on restart. No service changes them at run time.
    """
    view.require_admin()
    current: Settings = view.services.settings
    rows = [
        {
            "name": name,
            "env": f"MOORAGE_{name.upper()}",
            "value": _shown(name, getattr(current, name)),
            "default": name not in current.model_fields_set,
            "description": info.description or "",
        }
        for name, info in Settings.model_fields.items()
    ]
    return _render(view, "system/settings.html", "settings", rows=rows)


ROUTES: list[BaseRoute] = [
    Route("/system", page(overview), methods=["GET"]),
    Route("/system/vulndb", page(import_vulndb), methods=["POST"]),
    Route("/system/rescan", page(rescan_all), methods=["POST"]),
    Route("/system/jobs", page(jobs), methods=["GET"]),
    Route("/system/jobs/{job_id}", page(job_detail), methods=["GET"]),
    Route("/system/jobs/{job_id}/cancel", page(cancel_job), methods=["POST"]),
    Route("/system/schedules", page(schedules), methods=["GET"]),
    Route("/system/events", page(events), methods=["GET"]),
    Route("/system/settings", page(settings_page), methods=["GET"]),
]
