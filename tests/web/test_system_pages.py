"""System pages (administrators only): the vulnerability database and an OSV upload, rescanning,
scan activity, background jobs with their logs, schedules, registry events and the settings."""

from __future__ import annotations

import html
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import httpx
from tests.api.helpers import PASSWORD
from tests.conftest import ADMIN_PASSWORD
from tests.services.test_artifacts import push
from tests.services.test_scanning import (  # noqa: F401 (fixtures)
    oci_image,
    os_layer,
    osv_openssl,
)
from tests.web.helpers import Browser, browser_client

from moorage.app import MoorageApp
from moorage.services.jobs import JobContext

SYSTEM_PAGES = ("/system", "/system/jobs", "/system/schedules", "/system/events", "/system/settings")


def _zip(directory: Path) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for path in sorted(directory.glob("*.json")):
            z.write(path, path.name)
    return out.getvalue()


async def _upload(b: Browser, name: str, data: bytes, csrf: bool = True) -> httpx.Response:
    fields = {"csrf_token": b.token} if csrf else {}
    return await b.client.post("/system/vulndb", data=fields, files={"archive": (name, data)})


def _archive_error(text: str) -> str:
    match = re.search(r'<p class="field-error" id="e-archive">(.*?)</p>', text, re.S)
    assert match, "no error next to the upload field"
    return html.unescape(match.group(1))


async def test_the_overview_before_any_data(admin_browser: Browser) -> None:
    page = await admin_browser.get("/system")
    assert page.status_code == 200
    assert 'aria-current="page">System' in page.text
    assert "No vulnerability data yet" in page.text
    assert "moorage vulndb import" in page.text
    assert 'enctype="multipart/form-data"' in page.text


async def test_an_osv_upload_is_imported_and_scans_are_rematched(
    app: MoorageApp,
    admin_browser: Browser,
    client: httpx.AsyncClient,
    osv_openssl: Path,  # noqa: F811 (the imported fixture)
) -> None:
    # An image scanned while the database is empty finds nothing.
    image = oci_image([os_layer()])
    await push(client, "admin/base", image, "bullseye")
    await app.services.scanning.enqueue("admin/base", image.digest)
    await app.services.scanning.work_pending()
    assert (await app.services.scanning.summary("admin/base", image.digest))["high"] == 0
    await admin_browser.get("/system")
    r = await _upload(admin_browser, "debian-openssl.zip", _zip(osv_openssl))
    assert (r.status_code, r.headers["location"]) == (303, "/system")
    page = await admin_browser.get("/system")
    status = await app.services.vulndb.status()
    assert status.version
    assert status.records > 0
    assert f"Imported {status.records} records ({status.records} new" in html.unescape(page.text)
    assert status.version[:19] in page.text
    assert "Debian:11" in page.text
    # The scan was re-matched against the new data: the old openssl is now vulnerable.
    summary = await app.services.scanning.summary("admin/base", image.digest)
    assert sum(summary[s] for s in ("critical", "high", "medium", "low", "unknown")) > 0
    # Scanning activity comes from the scan events.
    facts = re.search(r"<dt>Scans finished</dt><dd>(\d+)", page.text)
    assert facts
    assert int(facts.group(1)) >= 1
    assert "VULNDB_UPDATED" in page.text  # among the recent events
    r = await admin_browser.post("/system/rescan")
    assert r.status_code == 303
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert r.headers["location"] == f"/system/jobs/{job_id}"
    assert f"Rescan queued as job {job_id}" in (await admin_browser.get(r.headers["location"])).text
    # The job runs in the background; here, by hand: it re-matches the one scan.
    job = await app.services.jobs.claim_next()
    assert job is not None
    assert job.id == job_id
    await app.services.jobs.run(job)
    done = await app.services.jobs.get(job_id)
    assert (done.status, done.result) == ("succeeded", {"rematched": 1})
    assert "re-matched 1 scans" in (await admin_browser.get(f"/system/jobs/{job_id}")).text


async def test_an_upload_that_is_not_an_osv_archive_is_refused_by_the_field(
    app: MoorageApp, admin_browser: Browser
) -> None:
    await admin_browser.get("/system")
    r = await _upload(admin_browser, "photo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert r.status_code == 400
    assert _archive_error(r.text) == (
        "photo.png is not an OSV archive: upload a .zip, .tar.gz or .json of OSV records, "
        "as osv.dev publishes them. Nothing was imported."
    )
    r = await _upload(admin_browser, "broken.zip", b"PK\x03\x04 this is not really a zip")
    assert r.status_code == 400
    message = _archive_error(r.text)
    assert message.startswith("broken.zip could not be read as OSV records (not a readable zip archive")
    assert "upload" not in message
    assert message.endswith("). Nothing was imported.")
    r = await _upload(admin_browser, "empty.json", b"")
    assert "empty.json is empty" in _archive_error(r.text)
    r = await admin_browser.client.post("/system/vulndb", data={"csrf_token": admin_browser.token})
    assert "Choose an OSV archive" in _archive_error(r.text)
    assert (await app.services.vulndb.status()).version is None  # nothing imported


async def test_system_forms_refuse_a_missing_or_stale_csrf_token(
    app: MoorageApp,
    admin_browser: Browser,
    osv_openssl: Path,  # noqa: F811 (the imported fixture)
) -> None:
    await admin_browser.get("/system")
    r = await _upload(admin_browser, "debian.zip", _zip(osv_openssl), csrf=False)
    assert r.status_code == 403
    assert "Form expired" in r.text
    r = await admin_browser.client.post(
        "/system/vulndb", data={"csrf_token": "stale"}, files={"archive": ("d.zip", _zip(osv_openssl))}
    )
    assert r.status_code == 403
    assert (await app.services.vulndb.status()).version is None
    assert (await admin_browser.post("/system/rescan", csrf=False)).status_code == 403


async def test_jobs_their_logs_and_schedules(app: MoorageApp, admin_browser: Browser) -> None:
    async def echo(ctx: JobContext) -> dict[str, Any]:
        await ctx.log(f"saying {ctx.payload['word']}")
        if ctx.payload["word"] == "boom":
            raise RuntimeError("the word was boom")
        return {"said": ctx.payload["word"]}

    jobs = app.services.jobs
    jobs.handle("web-test.echo", echo)
    done = await jobs.enqueue("web-test.echo", {"word": "hello"})
    failed = await jobs.enqueue("web-test.echo", {"word": "boom"})
    for _ in range(2):
        job = await jobs.claim_next()
        assert job is not None
        await jobs.run(job)
    waiting = await jobs.enqueue("web-test.echo", {"word": "later"})
    assert done
    assert failed
    assert waiting

    page = await admin_browser.get("/system/jobs")
    assert page.status_code == 200
    for job_id in (done, failed, waiting):
        assert f'data-job="{job_id}"' in page.text
    assert "the word was boom" in page.text
    only_failed = await admin_browser.get("/system/jobs?status=failed")
    assert f'data-job="{failed}"' in only_failed.text
    assert f'data-job="{done}"' not in only_failed.text
    overview = await admin_browser.get("/system")
    assert 'data-kind="web-test.echo"' in overview.text

    detail = await admin_browser.get(f"/system/jobs/{done}")
    assert "saying hello" in detail.text  # the job's log
    assert "&#34;said&#34;: &#34;hello&#34;" in detail.text or '"said": "hello"' in detail.text
    assert "Cancel job" not in detail.text
    pending = await admin_browser.get(f"/system/jobs/{waiting}")
    assert "Cancel job" in pending.text
    r = await admin_browser.post(f"/system/jobs/{waiting}/cancel")
    assert r.status_code == 303
    assert (await jobs.get(waiting)).status == "cancelled"
    r = await admin_browser.post(f"/system/jobs/{done}/cancel")
    assert "only pending jobs can be cancelled" in (await admin_browser.get(f"/system/jobs/{done}")).text
    assert (await admin_browser.get("/system/jobs/999999")).status_code == 404
    assert (await admin_browser.get("/system/jobs/abc")).status_code == 404

    assert "No schedules" in (await admin_browser.get("/system/schedules")).text
    await jobs.schedule("web-test:nightly", "web-test.echo", "30 2 * * *", {"word": "night"})
    page = await admin_browser.get("/system/schedules")
    row = re.search(r'<tr data-schedule="web-test:nightly">(.*?)</tr>', page.text, re.S)
    assert row
    assert "30 2 * * *" in row.group(1)
    assert "Enabled" in row.group(1)


async def test_registry_events_with_a_type_filter(app: MoorageApp, admin_browser: Browser) -> None:
    admin = await app.services.authn.password("admin", ADMIN_PASSWORD, None)
    await app.services.repositories.create(admin, "admin/events-demo", visibility="public")
    await app.services.repositories.update(admin, "admin/events-demo", description="changed")
    page = await admin_browser.get("/system/events")
    assert "REPO_CREATED" in page.text
    assert "REPO_UPDATED" in page.text
    assert 'href="/repositories/admin/events-demo"' in page.text
    only = await admin_browser.get(
        "/system/events?type=REPO_UPDATED", headers={"HX-Request": "true", "HX-Target": "event-results"}
    )
    assert "REPO_UPDATED" in only.text
    assert "REPO_CREATED" not in only.text
    assert "<html" not in only.text  # the partial only
    none = await admin_browser.get("/system/events?type=TAG_DELETE")
    assert "No TAG_DELETE events" in none.text


async def test_settings_are_shown_read_only_without_secrets(app: MoorageApp, admin_browser: Browser) -> None:
    page = await admin_browser.get("/system/settings")
    assert page.status_code == 200
    assert 'data-setting="scan_concurrency"' in page.text
    assert "MOORAGE_SCAN_ON_PUSH_DEFAULT" in page.text
    assert ADMIN_PASSWORD not in page.text
    row = re.search(r'<tr data-setting="admin_password">(.*?)</tr>', page.text, re.S)
    assert row
    assert "(set)" in row.group(1)
    assert "<form" not in page.text.split('<table class="settings-table">', 1)[1]  # nothing to change


async def test_system_is_hidden_from_and_refused_to_other_users(app: MoorageApp, browser: Browser) -> None:
    admin = await app.services.authn.password("admin", ADMIN_PASSWORD, None)
    await app.services.accounts.create_user(admin, "bob", PASSWORD)
    bob = Browser(browser_client(app))
    await bob.sign_in("bob", PASSWORD)
    page = await bob.get("/repositories")
    assert 'href="/system"' not in page.text
    for url in SYSTEM_PAGES:
        assert (await bob.get(url)).status_code == 403, url
    job = await app.services.jobs.enqueue("web-test.none", {})
    assert (await bob.get(f"/system/jobs/{job}")).status_code == 403
    assert (await bob.post(f"/system/jobs/{job}/cancel")).status_code == 403
    assert (await app.services.jobs.get(job or 0)).status == "pending"
    assert (await bob.post("/system/rescan")).status_code == 403
    r = await bob.client.post(
        "/system/vulndb",
        data={"csrf_token": bob.token},
        files={"archive": ("x.json", b'{"id": "X-1", "modified": "2024-01-01T00:00:00Z"}')},
    )
    assert r.status_code == 403
    assert (await app.services.vulndb.status()).version is None
    # Visitors who are not signed in are sent to sign in.
    r = await browser.get("/system")
    assert (r.status_code, r.headers["location"]) == (303, "/sign-in?next=%2Fsystem")
