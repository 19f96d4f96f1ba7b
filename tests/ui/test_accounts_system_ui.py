"""The Accounts and System pages in a real browser against a real ``moorage serve``: the
administrator creates a user, an organization with a team, grants the team a repository, creates
an access token (shown once, and it works), uploads OSV data (a wrong file first) and looks at the
System pages; the new user does not see System and is refused it."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from tests.conftest import SHARED, ServerProcess

pytestmark = [pytest.mark.ui, pytest.mark.e2e]

OSV_PYPI = SHARED / "testdata" / "osv" / "PyPI" / "all.zip"
BOB_PASSWORD = "bob-password-123"


def _osv_records(package: str, limit: int = 20) -> bytes:
    """A zip of a few of the shared OSV PyPI records that name ``package``."""
    out = io.BytesIO()
    with zipfile.ZipFile(OSV_PYPI) as src, zipfile.ZipFile(out, "w") as dst:
        taken = 0
        for name in src.namelist():
            data = src.read(name)
            affected = json.loads(data).get("affected", [])
            if any(a.get("package", {}).get("name", "").lower() == package for a in affected):
                dst.writestr(Path(name).name, data)
                taken += 1
                if taken >= limit:
                    break
    return out.getvalue()


def _sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".whoami")).to_contain_text(username)


def _tab(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=name, exact=True).click()


def _shot(page: Page, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_accounts_and_system_in_a_browser(
    server: ServerProcess, chromium: Browser, screenshots: Path, tmp_path: Path
) -> None:
    base = server.url
    context = chromium.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    _sign_in(page, base, "admin", server.password)

    # Accounts -> Users -> New user, with a mistake first.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Accounts").click()
    expect(page.get_by_role("heading", name="admin")).to_be_visible()
    page.locator("#f-email").fill("admin at example")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#e-email")).to_contain_text("name@example.com")
    _shot(page, screenshots, "accounts-profile-error")
    _tab(page, "Users")
    page.get_by_role("link", name="New user").click()
    page.locator("#f-username").fill("bob")
    page.locator("#f-password").fill(BOB_PASSWORD)
    page.locator("#f-confirm").fill("something-else")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#e-confirm")).to_have_text("The two passwords differ.")
    expect(page.locator("#f-username")).to_have_value("bob")
    _shot(page, screenshots, "accounts-user-new-error")
    page.locator("#f-full_name").fill("Bob Builder")
    page.locator("#f-password").fill(BOB_PASSWORD)
    page.locator("#f-confirm").fill(BOB_PASSWORD)
    page.get_by_role("button", name="Create user").click()
    expect(page.locator(".alert")).to_contain_text("User bob created.")
    expect(page.get_by_role("heading", name=re.compile("^bob"))).to_be_visible()
    _tab(page, "Users")
    expect(page.locator('tr[data-user="bob"]')).to_contain_text("Bob Builder")
    _shot(page, screenshots, "accounts-users")

    # An organization, a team in it with bob, and a repository of the organization.
    _tab(page, "Organizations")
    page.locator("#f-name").fill("acme")
    page.get_by_role("button", name="Create organization").click()
    expect(page.get_by_role("heading", name="acme", exact=True)).to_be_visible()
    page.locator("#f-name").fill("developers")
    page.locator("#f-description").fill("Builds and ships the shop")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("heading", name="Team developers")).to_be_visible()
    page.locator("#f-username").fill("bob")
    page.get_by_role("button", name="Add to team").click()
    expect(page.locator('li[data-member="bob"]')).to_be_visible()
    page.goto(f"{base}/repositories/new?namespace=acme")
    page.locator("#f-name").fill("api")
    page.get_by_role("button", name="Create repository").click()
    expect(page.get_by_role("heading", name=re.compile(r"acme\/api"))).to_be_visible()
    page.goto(f"{base}/accounts/organizations/acme/teams/developers")
    page.locator("#f-repository").select_option("acme/api")
    page.locator("#f-level").select_option("read-write")
    page.get_by_role("button", name="Grant access").click()
    expect(page.locator(".alert")).to_contain_text("developers now has read-write access to acme/api")
    expect(page.locator('tr[data-grant="acme/api"]')).to_contain_text("read-write")
    _shot(page, screenshots, "accounts-team")
    page.get_by_role("link", name="acme", exact=True).click()
    expect(page.locator('tr[data-member="bob"]')).to_be_visible()
    _shot(page, screenshots, "accounts-organization")

    # An access token: its secret is shown once, works, and is never shown again.
    _tab(page, "Access tokens")
    page.locator("#f-label").fill("ci-builder")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator(".token-created .secret code").inner_text()
    assert secret.startswith("mrg_pat_")
    expect(page.locator(".token-created")).to_contain_text("shown only this once")
    _shot(page, screenshots, "accounts-token-created")
    r = httpx.get(f"{base}/api/v1/me", auth=("admin", secret))
    assert r.status_code == 200
    assert r.json()["username"] == "admin"
    page.goto(f"{base}/accounts/tokens")
    expect(page.locator(".token-created")).to_have_count(0)
    assert secret not in page.content()
    expect(page.locator("tbody tr")).to_have_count(1)

    # System: a file that is not OSV data is refused by the field, then a real archive is imported.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="System").click()
    expect(page.get_by_role("heading", name="System", exact=True)).to_be_visible()
    expect(page.get_by_text("No vulnerability data yet")).to_be_visible()
    not_osv = tmp_path / "notes.txt"
    not_osv.write_text("these are not vulnerability records\n")
    page.locator("#f-archive").set_input_files(str(not_osv))
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#e-archive")).to_contain_text("notes.txt is not an OSV archive: upload a .zip")
    _shot(page, screenshots, "system-upload-error")
    archive = tmp_path / "pypi-django.zip"
    archive.write_bytes(_osv_records("django"))
    page.locator("#f-archive").set_input_files(str(archive))
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".alert")).to_contain_text("Imported 20 records (20 new")
    expect(page.get_by_text("Records in force")).to_be_visible()
    _shot(page, screenshots, "system-overview")
    page.get_by_role("button", name="Rescan all").click()
    expect(page.locator(".alert")).to_contain_text("Rescan queued as job")
    # The server's own job runner does it; the job page follows it until it has succeeded.
    expect(page.locator("h1")).to_contain_text("Succeeded", timeout=30_000)
    expect(page.locator(".job-log")).to_contain_text("re-matched")
    _shot(page, screenshots, "system-rescan-job")
    page.goto(page.url.split("/system/")[0] + "/system")
    _tab(page, "Events")
    expect(page.locator("tbody")).to_contain_text("VULNDB_UPDATED")
    _shot(page, screenshots, "system-events")
    _tab(page, "Settings")
    expect(page.locator('tr[data-setting="admin_password"]')).to_contain_text("(set)")
    assert server.password not in page.content()
    _shot(page, screenshots, "system-settings")
    _tab(page, "Jobs")
    expect(page.get_by_role("heading", name="Background jobs", exact=True)).to_be_visible()

    # On a phone: the team page still reads well.
    phone = context.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"{base}/accounts/organizations/acme/teams/developers")
    expect(phone.locator('tr[data-grant="acme/api"]')).to_be_visible()
    _shot(phone, screenshots, "accounts-team-phone")
    phone.goto(f"{base}/system")
    _shot(phone, screenshots, "system-overview-phone")
    context.close()

    # bob: no System in the navigation, refused it by address; his own profile and team are there.
    bob = chromium.new_context(viewport={"width": 1366, "height": 900}).new_page()
    _sign_in(bob, base, "bob", BOB_PASSWORD)
    nav = bob.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Accounts")).to_be_visible()
    expect(nav.get_by_role("link", name="System")).to_have_count(0)
    response = bob.goto(f"{base}/system")
    assert response is not None
    assert response.status == 403
    response = bob.goto(f"{base}/accounts/users")
    assert response is not None
    assert response.status == 403
    bob.goto(f"{base}/accounts/organizations/acme/teams/developers")
    expect(bob.locator('tr[data-grant="acme/api"]')).to_contain_text("read-write")
    expect(bob.get_by_role("button", name="Grant access")).to_have_count(0)
    bob.context.close()
