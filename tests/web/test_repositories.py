"""Repository pages with real content pushed through /v2 and scanned against the shared OSV data:
the list, creating one (with its form errors), tags and their types and scan badges, details of an
image, a multi-arch image and an application, hiding a vulnerability, deleting tags, settings and
what other users may see and do."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from tests.api.helpers import PASSWORD
from tests.oci import fixtures_cnab as fx
from tests.services.test_artifacts import push, push_bundle
from tests.services.test_scanning import _real_image, django_layer, oci_image, os_layer
from tests.web.helpers import Browser, browser_client

from moorage.app import MoorageApp
from moorage.services.access import Principal

REPO = "admin/shop"


async def _admin(app: MoorageApp) -> Principal:
    from tests.conftest import ADMIN_PASSWORD

    return await app.services.authn.password("admin", ADMIN_PASSWORD, None)


async def _user(app: MoorageApp, name: str) -> Browser:
    await app.services.accounts.create_user(await _admin(app), name, PASSWORD)
    b = Browser(browser_client(app))
    await b.sign_in(name, PASSWORD)
    return b


def _row(html: str, tag: str) -> str:
    match = re.search(rf'<tr data-tag="{re.escape(tag)}">(.*?)</tr>', html, re.S)
    assert match, f"no row for tag {tag}"
    return match.group(1)


@pytest.fixture
async def shop(
    app: MoorageApp,
    client: httpx.AsyncClient,
    osv_openssl: Path,
    osv_django: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """A repository holding a vulnerable image, a multi-arch image, an application and a plugin, scanned."""
    await app.services.vulndb.import_path(osv_openssl)
    await app.services.vulndb.import_path(osv_django)
    await app.services.repositories.create(
        await _admin(app), REPO, visibility="private", description="The shop"
    )
    image = oci_image([os_layer(), django_layer()])
    await push(client, REPO, image, "web-1.0")
    multi = fx.multi_arch(
        [oci_image([django_layer()]), oci_image([django_layer()], arch="arm64", variant="v8")]
    )
    await push(client, REPO, multi, "multi")
    monkeypatch.setattr(fx, "image", _real_image)
    bundle = fx.bundle_json_bundle()
    await push_bundle(client, REPO, bundle, "app-1.0")
    await push(client, REPO, fx.docker_plugin(), "plugin")
    await app.services.scanning.enqueue(REPO, bundle.index.digest)
    await app.services.scanning.work_pending()
    return {
        "image": image.digest,
        "multi": multi.digest,
        "app": bundle.index.digest,
        "component": bundle.components["another-image"].digest,
        "invocation": bundle.invocation.digest,
    }


async def test_tags_show_types_platforms_and_scan_badges(
    admin_browser: Browser, shop: dict[str, str]
) -> None:
    r = await admin_browser.get(f"/repositories/{REPO}")
    assert r.status_code == 200
    html = r.text
    assert "The shop" in html
    image = _row(html, "web-1.0")
    assert "Image</span>" in image
    assert "linux/amd64" in image
    assert shop["image"][:19] in image  # the short digest, with a copy button holding the full one
    assert f'data-copy="{shop["image"]}"' in image
    assert "sev-unknown" in image  # Debian advisories carry no rating
    assert "View details" in image
    multi = _row(html, "multi")
    assert "Multi-arch" in multi
    assert "linux/amd64, linux/arm64/v8" in multi
    app = _row(html, "app-1.0")
    assert "Application" in app
    assert re.search(r"\d+ (Critical|High|Medium|Low|unrated)", app)
    assert "Invocation image" in _row(html, "app-1.0-invoc")
    assert "Plugin" in _row(html, "plugin")
    assert "Not scanned" in _row(html, "plugin")
    assert "by admin" in image
    assert "skopeo copy docker://moorage.test/admin/shop:TAG" in html
    assert "Delete selected" in html


async def test_image_details_list_layers_components_and_sorted_vulnerabilities(
    admin_browser: Browser, shop: dict[str, str]
) -> None:
    r = await admin_browser.get(f"/repositories/{REPO}/-/tags/web-1.0")
    assert r.status_code == 200
    html = r.text
    assert "Layers" in html
    assert "Components" in html
    assert "openssl" in html
    assert "1.1.1n-0+deb11u1" in html
    assert "Django" in html
    assert "PYSEC-2021-7" in html
    assert "https://osv.dev/vulnerability/PYSEC-2021-7" in html
    assert "https://nvd.nist.gov/vuln/detail/CVE-2021-31542" in html
    # Rated findings first: every rated row comes before the first unrated one.
    severities = re.findall(r'<span class="badge sev-(\w+)">', html.split('id="vulnerabilities"')[1])
    order = ["critical", "high", "medium", "low", "unknown"]
    assert severities == sorted(severities, key=order.index)
    assert "Download SBOM" in html
    sbom = await admin_browser.client.get(f"/repositories/{REPO}/-/manifests/{shop['image']}/sbom")
    assert sbom.status_code == 200
    assert sbom.json()["bomFormat"] == "CycloneDX"
    assert "attachment" in sbom.headers["content-disposition"]
    # The severity filter keeps only one severity.
    r = await admin_browser.get(f"/repositories/{REPO}/-/tags/web-1.0?severity=unknown")
    section = r.text.split('id="vulnerabilities"')[1]
    assert "PYSEC-2021-7" not in section.split("<h3>Hidden")[0] or "sev-unknown" in section
    assert set(re.findall(r'<span class="badge sev-(\w+)">', section)) == {"unknown"}


async def test_multi_arch_details_have_a_row_per_platform(
    admin_browser: Browser, shop: dict[str, str]
) -> None:
    r = await admin_browser.get(f"/repositories/{REPO}/-/tags/multi")
    assert r.status_code == 200
    assert "Platforms" in r.text
    assert "linux/amd64" in r.text
    assert "linux/arm64/v8" in r.text
    assert r.text.count("View details") == 2


async def test_application_details_reach_a_components_vulnerabilities(
    admin_browser: Browser, shop: dict[str, str]
) -> None:
    r = await admin_browser.get(f"/repositories/{REPO}/-/tags/app-1.0")
    assert r.status_code == 200
    html = r.text
    for text in ("my-app", "0.1.0", "docker@docker.com", "cred-1", "env-var", "param1", "another-image"):
        assert text in html, text
    assert "my.registry/namespace/another-image" in html
    assert f'href="/repositories/{REPO}/-/tags/app-1.0-invoc"' in html
    component = f"/repositories/{REPO}/-/manifests/{shop['component']}"
    assert f'href="{component}#vulnerabilities-section"' in html
    r = await admin_browser.get(component)
    assert r.status_code == 200
    assert "PYSEC-2021-7" in r.text


async def test_hiding_a_vulnerability_needs_a_note_and_moves_it_to_hidden(
    admin_browser: Browser, shop: dict[str, str]
) -> None:
    url = f"/repositories/{REPO}/-/manifests/{shop['image']}"
    page = await admin_browser.get(url)
    assert "Hide PYSEC-2021-7" in page.text
    r = await admin_browser.post(f"{url}/overrides", {"id": "PYSEC-2021-7", "package": "Django", "note": ""})
    assert r.status_code == 303
    page = await admin_browser.get(url)
    assert "Add a note saying why PYSEC-2021-7 is hidden" in page.text
    assert '<tr data-vuln="PYSEC-2021-7">' in page.text
    r = await admin_browser.post(
        f"{url}/overrides", {"id": "PYSEC-2021-7", "package": "Django", "note": "not reachable", "next": url}
    )
    assert r.headers["location"] == url
    page = await admin_browser.get(url)
    assert '<tr data-vuln="PYSEC-2021-7">' not in page.text
    assert '<tr data-hidden="PYSEC-2021-7">' in page.text
    assert "not reachable" in page.text
    r = await admin_browser.post(f"{url}/overrides/remove", {"id": "PYSEC-2021-7", "package": "Django"})
    page = await admin_browser.get(url)
    assert '<tr data-vuln="PYSEC-2021-7">' in page.text


async def test_deleting_tags_and_a_tag_deleted_meanwhile(
    app: MoorageApp, admin_browser: Browser, shop: dict[str, str]
) -> None:
    await admin_browser.get(f"/repositories/{REPO}")
    r = await admin_browser.post(f"/repositories/{REPO}/-/tags/delete", {"tag": ["plugin", "multi"]})
    assert r.status_code == 303
    page = await admin_browser.get(f"/repositories/{REPO}")
    assert "Deleted 2 tags: plugin, multi." in page.text
    assert 'data-tag="plugin"' not in page.text
    # Deleted elsewhere while this page was open:
    await app.services.manifests.delete(REPO, "web-1.0")
    r = await admin_browser.post(f"/repositories/{REPO}/-/tags/delete", {"tag": ["web-1.0"]})
    page = await admin_browser.get(f"/repositories/{REPO}")
    assert "web-1.0 no longer exists: deleted meanwhile" in page.text
    r = await admin_browser.get(f"/repositories/{REPO}/-/tags/web-1.0")
    assert r.status_code == 404
    assert "may have been deleted meanwhile" in r.text


async def test_scan_can_be_started_from_the_tags_page(
    app: MoorageApp, admin_browser: Browser, shop: dict[str, str]
) -> None:
    await admin_browser.get(f"/repositories/{REPO}")
    r = await admin_browser.post(f"/repositories/{REPO}/-/scan", {"tag": ["web-1.0"]})
    assert r.status_code == 303
    page = await admin_browser.get(f"/repositories/{REPO}")
    assert "Scan queued for web-1.0." in page.text
    assert "Pending" in _row(page.text, "web-1.0")
    assert 'hx-trigger="every 3s"' in page.text  # the table refreshes itself until the scan is done
    await app.services.scanning.work_pending()
    partial = await admin_browser.client.get(
        f"/repositories/{REPO}/-/tags", headers={"HX-Request": "true", "HX-Target": "tags-panel"}
    )
    assert "<html" not in partial.text
    assert "Pending" not in _row(partial.text, "web-1.0")


async def test_create_repository_shows_errors_next_to_fields(app: MoorageApp, admin_browser: Browser) -> None:
    page = await admin_browser.get("/repositories/new")
    assert 'name="csrf_token"' in page.text
    r = await admin_browser.post(
        "/repositories", {"namespace": "admin", "name": "Bad Name!", "visibility": "public"}
    )
    assert r.status_code == 400
    assert 'id="e-name"' in r.text
    assert "Use lowercase letters" in r.text
    assert 'value="Bad Name!"' in r.text
    r = await admin_browser.post("/repositories", {"namespace": "admin", "name": "", "visibility": "public"})
    assert "Enter a name for the repository." in r.text
    r = await admin_browser.post(
        "/repositories",
        {
            "namespace": "admin",
            "name": "tools",
            "visibility": "public",
            "description": "Tools",
            "immutable_tags": "on",
        },
    )
    assert (r.status_code, r.headers["location"]) == (303, "/repositories/admin/tools")
    repo = await app.services.repositories.get(None, "admin/tools")
    assert (repo.visibility, repo.description, repo.immutable_tags, repo.scan_on_push) == (
        "public",
        "Tools",
        True,
        False,
    )
    r = await admin_browser.post(
        "/repositories", {"namespace": "admin", "name": "tools", "visibility": "public"}
    )
    assert r.status_code == 400
    assert "already exists" in r.text
    empty = await admin_browser.get("/repositories/admin/tools")
    assert "This repository is empty" in empty.text
    assert "skopeo copy docker-archive:image.tar docker://moorage.test/admin/tools:1.0" in empty.text
    assert "moorage app push" in empty.text


async def test_list_search_and_filters(app: MoorageApp, admin_browser: Browser, browser: Browser) -> None:
    admin = await _admin(app)
    await app.services.repositories.create(admin, "admin/alpha", visibility="public")
    await app.services.repositories.create(admin, "admin/beta", visibility="private")
    page = (await admin_browser.get("/repositories")).text
    assert "admin/alpha" in page
    assert "admin/beta" in page
    page = (await admin_browser.get("/repositories?visibility=private")).text
    assert "admin/alpha" not in page
    assert "admin/beta" in page
    page = (await admin_browser.get("/repositories?q=alp")).text
    assert "admin/alpha" in page
    assert "admin/beta" not in page
    r = await admin_browser.client.get(
        "/repositories?namespace=nobody", headers={"HX-Request": "true", "HX-Target": "repo-results"}
    )
    assert "<html" not in r.text
    assert "No repository matches" in r.text
    anon = (await browser.get("/repositories")).text  # anonymous: public ones only
    assert "admin/alpha" in anon
    assert "admin/beta" not in anon


async def test_other_users_are_refused_private_repositories_and_read_only_ones_see_no_buttons(
    app: MoorageApp, admin_browser: Browser, shop: dict[str, str]
) -> None:
    bob = await _user(app, "bob")
    try:
        r = await bob.get(f"/repositories/{REPO}")
        assert r.status_code == 404
        assert "does not exist" in r.text
        assert (await bob.get(f"/repositories/{REPO}/-/tags/web-1.0")).status_code == 404
        assert REPO not in (await bob.get("/repositories")).text
        r = await bob.post(f"/repositories/{REPO}/-/tags/delete", {"tag": ["web-1.0"]})
        assert r.status_code == 404
        # Made public: bob reads, but sees no delete, scan, settings or hide controls, and is refused them.
        await app.services.repositories.update(await _admin(app), REPO, visibility="public")
        page = await bob.get(f"/repositories/{REPO}")
        assert page.status_code == 200
        assert "Delete selected" not in page.text
        assert "Settings</a>" not in page.text
        assert "Hide…" not in (await bob.get(f"/repositories/{REPO}/-/tags/web-1.0")).text
        r = await bob.post(f"/repositories/{REPO}/-/tags/delete", {"tag": ["web-1.0"]})
        assert r.status_code == 403
        r = await bob.post(f"/repositories/{REPO}/-/scan", {"tag": ["web-1.0"]})
        assert r.status_code == 403
        url = f"/repositories/{REPO}/-/manifests/{shop['image']}/overrides"
        assert (await bob.post(url, {"id": "PYSEC-2021-7", "note": "x"})).status_code == 403
        assert (await bob.get(f"/repositories/{REPO}/-/settings")).status_code == 403
        assert (
            await bob.post(f"/repositories/{REPO}/-/settings", {"visibility": "private"})
        ).status_code == 403
        assert 'data-tag="web-1.0"' in (await admin_browser.get(f"/repositories/{REPO}")).text
        assert (await app.services.repositories.get(None, REPO)).visibility == "public"
    finally:
        await bob.client.aclose()


async def test_settings_and_team_access(app: MoorageApp, admin_browser: Browser) -> None:
    admin = await _admin(app)
    await app.services.accounts.create_organization(admin, "acme")
    await app.services.accounts.create_team(admin, "acme", "devs", None)
    await app.services.repositories.create(admin, "acme/api")
    page = await admin_browser.get("/repositories/acme/api/-/settings")
    assert page.status_code == 200
    assert "No team has access of its own yet" in page.text
    r = await admin_browser.post(
        "/repositories/acme/api/-/settings",
        {"description": "The API", "visibility": "public", "scan_on_push": "on"},
    )
    assert r.status_code == 303
    repo = await app.services.repositories.get(admin, "acme/api")
    assert (repo.description, repo.visibility, repo.scan_on_push, repo.immutable_tags) == (
        "The API",
        "public",
        True,
        False,
    )
    r = await admin_browser.post("/repositories/acme/api/-/settings", {"visibility": "secret"})
    assert r.status_code == 400
    assert "Choose public or private." in r.text
    r = await admin_browser.post("/repositories/acme/api/-/access", {"team": "devs", "level": "read-write"})
    assert r.status_code == 303
    page = await admin_browser.get("/repositories/acme/api/-/settings")
    assert "Team devs now has read-write access." in page.text
    assert "<td>devs</td><td>read-write</td>" in page.text
    r = await admin_browser.post("/repositories/acme/api/-/access", {"team": "devs", "level": "owner"})
    assert r.status_code == 400
    assert "unknown access level" in r.text
    r = await admin_browser.post("/repositories/acme/api/-/access/revoke", {"team": "devs"})
    page = await admin_browser.get("/repositories/acme/api/-/settings")
    assert "No team has access of its own yet" in page.text


async def test_activity_lists_pushes_scans_and_deletions(
    app: MoorageApp, admin_browser: Browser, shop: dict[str, str]
) -> None:
    await admin_browser.get(f"/repositories/{REPO}")
    await admin_browser.post(f"/repositories/{REPO}/-/tags/delete", {"tag": ["plugin"]})
    page = await admin_browser.get(f"/repositories/{REPO}/-/activity")
    assert page.status_code == 200
    html = page.text
    pushed = re.search(r'<tr data-event="TAG_PUSH">(?:(?!</tr>).)*web-1(?:(?!</tr>).)*</tr>', html, re.S)
    assert pushed, html
    assert "admin" in pushed.group(0)
    deleted = re.search(r'<tr data-event="TAG_DELETE">(?:(?!</tr>).)*</tr>', html, re.S)
    assert deleted
    assert "plugin" in deleted.group(0)
    assert "admin" in deleted.group(0)
    assert 'data-event="SCAN_COMPLETED"' in html
    only = (await admin_browser.get(f"/repositories/{REPO}/-/activity?type=TAG_DELETE")).text
    assert 'data-event="TAG_PUSH"' not in only
    assert 'data-event="TAG_DELETE"' in only
    assert "Content-Security-Policy" in page.headers
