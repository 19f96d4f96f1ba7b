"""Accounts pages: your profile, password and access tokens; users (administrators); organizations,
their members and teams, and the repositories a team reaches. Bad input re-shows the form with the
error by its field; what a user may not do is neither shown nor done."""

from __future__ import annotations

import html as html_module
import re

import httpx
from tests.api.helpers import PASSWORD
from tests.conftest import ADMIN_PASSWORD
from tests.web.helpers import Browser, browser_client

from moorage.app import MoorageApp
from moorage.services.access import Level, Principal


async def _admin(app: MoorageApp) -> Principal:
    return await app.services.authn.password("admin", ADMIN_PASSWORD, None)


async def _signed_in(app: MoorageApp, name: str, password: str = PASSWORD) -> Browser:
    b = Browser(browser_client(app))
    await b.sign_in(name, password)
    return b


async def _user(app: MoorageApp, name: str) -> Browser:
    await app.services.accounts.create_user(await _admin(app), name, PASSWORD)
    return await _signed_in(app, name)


async def _can_sign_in(app: MoorageApp, name: str, password: str) -> bool:
    async with browser_client(app) as c:
        b = Browser(c)
        await b.get("/sign-in")
        r = await b.post("/sign-in", {"username": name, "password": password})
        return r.status_code == 303


def _field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="e-{field}">(.*?)</p>', html, re.S)
    assert match, f"no error shown next to {field}"
    return html_module.unescape(match.group(1))


def _nav(html: str) -> str:
    match = re.search(r'<nav class="mainnav".*?</nav>', html, re.S)
    assert match
    return match.group(0)


# -- navigation and who sees what -----------------------------------------------------------
async def test_accounts_are_in_the_nav_for_signed_in_users_only(app: MoorageApp, browser: Browser) -> None:
    assert "/accounts" not in _nav((await browser.get("/repositories")).text)
    r = await browser.get("/accounts/profile")
    assert r.status_code == 303
    assert r.headers["location"] == "/sign-in?next=%2Faccounts%2Fprofile"
    bob = await _user(app, "bob")
    nav = _nav((await bob.get("/repositories")).text)
    assert 'href="/accounts"' in nav
    assert 'href="/system"' not in nav
    r = await bob.get("/accounts")
    assert (r.status_code, r.headers["location"]) == (302, "/accounts/profile")
    page = await bob.get("/accounts/profile")
    assert page.status_code == 200
    assert 'aria-current="page">Accounts' in page.text
    assert 'href="/accounts/users"' not in page.text  # the Users tab is for administrators


# -- profile and password -------------------------------------------------------------------
async def test_profile_is_saved_and_a_bad_email_is_shown_by_its_field(app: MoorageApp) -> None:
    bob = await _user(app, "bob")
    r = await bob.post("/accounts/profile", {"full_name": "Bob Builder", "email": "not an address"})
    assert r.status_code == 400
    assert "name@example.com" in _field_error(r.text, "email")
    assert 'value="Bob Builder"' in r.text  # what was typed is kept
    assert (await app.services.accounts.get_user("bob")).full_name is None  # nothing saved
    r = await bob.post("/accounts/profile", {"full_name": "Bob Builder", "email": "bob@example.com"})
    assert (r.status_code, r.headers["location"]) == (303, "/accounts/profile")
    record = await app.services.accounts.get_user("bob")
    assert (record.full_name, record.email) == ("Bob Builder", "bob@example.com")
    assert "Profile saved." in (await bob.get("/accounts/profile")).text


async def test_changing_the_password_needs_the_current_one(app: MoorageApp) -> None:
    bob = await _user(app, "bob")
    new = "a-much-better-password"
    r = await bob.post(
        "/accounts/password", {"current_password": "wrong-password", "password": new, "confirm": new}
    )
    assert r.status_code == 400
    assert _field_error(r.text, "current_password") == "That is not your current password."
    assert await _can_sign_in(app, "bob", PASSWORD)  # unchanged
    r = await bob.post(
        "/accounts/password", {"current_password": PASSWORD, "password": new, "confirm": "different-one"}
    )
    assert r.status_code == 400
    assert _field_error(r.text, "confirm") == "The two passwords differ."
    r = await bob.post(
        "/accounts/password", {"current_password": PASSWORD, "password": "short", "confirm": "short"}
    )
    assert "at least 8" in _field_error(r.text, "password")
    # An access token is not the current password, even though it signs registry clients in.
    _, secret = await app.services.accounts.create_token(
        await app.services.authn.password("bob", PASSWORD, None), "ci"
    )
    r = await bob.post("/accounts/password", {"current_password": secret, "password": new, "confirm": new})
    assert "not an access token" in _field_error(r.text, "current_password")
    r = await bob.post("/accounts/password", {"current_password": PASSWORD, "password": new, "confirm": new})
    assert (r.status_code, r.headers["location"]) == (303, "/accounts/profile")
    assert await _can_sign_in(app, "bob", new)
    assert not await _can_sign_in(app, "bob", PASSWORD)


# -- access tokens --------------------------------------------------------------------------
async def test_a_token_is_shown_once_works_and_can_be_deactivated_and_deleted(app: MoorageApp) -> None:
    bob = await _user(app, "bob")
    r = await bob.post("/accounts/tokens", {"label": "  "})
    assert r.status_code == 400
    assert "Enter a label" in _field_error(r.text, "label")
    r = await bob.post("/accounts/tokens", {"label": "ci-builder"})
    assert r.status_code == 201
    assert r.headers["cache-control"] == "no-store"
    secret = re.search(r'data-copy="(mrg_pat_[^"]+)"', r.text)
    assert secret, "the new token's secret is on the page"
    token = secret.group(1)
    assert "shown only this once" in r.text
    listing = await bob.get("/accounts/tokens")
    assert token not in listing.text  # never again
    assert "ci-builder" in listing.text
    assert f"mrg_pat_{token[8:14]}…" in listing.text  # its recognisable prefix

    async def me() -> int:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://moorage.test", auth=("bob", token)
        ) as c:
            return (await c.get("/api/v1/me")).status_code

    assert await me() == 200
    (found,) = await app.services.accounts.list_tokens(await app.services.authn.principal("bob"))
    r = await bob.post(f"/accounts/tokens/{found.id}/active", {"active": "false"})
    assert r.status_code == 303
    assert "Deactivated" in (await bob.get("/accounts/tokens")).text
    assert await me() == 401
    await bob.post(f"/accounts/tokens/{found.id}/active", {"active": "true"})
    assert await me() == 200
    r = await bob.post(f"/accounts/tokens/{found.id}/delete")
    assert r.status_code == 303
    assert await me() == 401
    page = await bob.get("/accounts/tokens")
    assert "No tokens yet" in page.text
    # Someone else's token (or one that is gone) is not found.
    assert (await bob.post(f"/accounts/tokens/{found.id}/delete")).status_code == 404


async def test_token_pages_refuse_forms_without_a_valid_csrf_token(app: MoorageApp) -> None:
    bob = await _user(app, "bob")
    await bob.get("/accounts/tokens")
    r = await bob.post("/accounts/tokens", {"label": "sneaky"}, csrf=False)
    assert r.status_code == 403
    assert "Form expired" in r.text
    r = await bob.post("/accounts/tokens", {"label": "sneaky", "csrf_token": "stale-token-from-before"})
    assert r.status_code == 403
    assert await app.services.accounts.list_tokens(await app.services.authn.principal("bob")) == []


# -- users (administrators) -----------------------------------------------------------------
async def test_admin_creates_users_and_sees_errors_by_the_field(
    app: MoorageApp, admin_browser: Browser
) -> None:
    page = await admin_browser.get("/accounts/users/new")
    assert page.status_code == 200
    r = await admin_browser.post(
        "/accounts/users", {"username": "Bad Name", "password": PASSWORD, "confirm": PASSWORD}
    )
    assert r.status_code == 400
    assert "lowercase letters and digits" in _field_error(r.text, "username")
    r = await admin_browser.post(
        "/accounts/users", {"username": "admin", "password": PASSWORD, "confirm": PASSWORD}
    )
    assert r.status_code == 400
    assert "taken" in _field_error(r.text, "username")
    r = await admin_browser.post(
        "/accounts/users", {"username": "carol", "password": PASSWORD, "confirm": "something-else"}
    )
    assert _field_error(r.text, "confirm") == "The two passwords differ."
    assert 'value="carol"' in r.text
    r = await admin_browser.post(
        "/accounts/users",
        {
            "username": "carol",
            "full_name": "Carol",
            "email": "carol@example.com",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert (r.status_code, r.headers["location"]) == (303, "/accounts/users/carol")
    assert await _can_sign_in(app, "carol", PASSWORD)
    listing = await admin_browser.get("/accounts/users")
    assert 'data-user="carol"' in listing.text
    assert 'data-user="admin"' in listing.text
    found = await admin_browser.get("/accounts/users?q=CAROL@")
    assert 'data-user="carol"' in found.text
    assert 'data-user="admin"' not in found.text
    partial = await admin_browser.get(
        "/accounts/users?q=nobody", headers={"HX-Request": "true", "HX-Target": "user-results"}
    )
    assert "No user matches" in partial.text
    assert "<html" not in partial.text


async def test_admin_deactivates_promotes_resets_and_deletes_a_user(
    app: MoorageApp, admin_browser: Browser
) -> None:
    await app.services.accounts.create_user(await _admin(app), "dave", PASSWORD)
    page = await admin_browser.get("/accounts/users/dave")
    assert "Deactivate" in page.text
    assert "Make administrator" in page.text
    r = await admin_browser.post("/accounts/users/dave/active", {"active": "false"})
    assert (r.status_code, r.headers["location"]) == (303, "/accounts/users/dave")
    assert not await _can_sign_in(app, "dave", PASSWORD)
    assert "Reactivate" in (await admin_browser.get("/accounts/users/dave")).text
    await admin_browser.post("/accounts/users/dave/active", {"active": "true"})
    assert await _can_sign_in(app, "dave", PASSWORD)
    await admin_browser.post("/accounts/users/dave/admin", {"admin": "true"})
    assert (await app.services.accounts.get_user("dave")).is_admin
    await admin_browser.post("/accounts/users/dave/admin", {"admin": "false"})
    assert not (await app.services.accounts.get_user("dave")).is_admin
    r = await admin_browser.post("/accounts/users/dave/password", {"password": "x", "confirm": "x"})
    assert r.status_code == 400
    assert "at least 8" in _field_error(r.text, "password")
    new = "handed-over-password"
    r = await admin_browser.post("/accounts/users/dave/password", {"password": new, "confirm": new})
    assert r.status_code == 303
    assert await _can_sign_in(app, "dave", new)
    # A user with repositories cannot be deleted: the reason is shown, nothing changes.
    dave = await app.services.authn.principal("dave")
    await app.services.repositories.create(dave, "dave/tools", visibility="private")
    r = await admin_browser.post("/accounts/users/dave/delete")
    assert r.headers["location"] == "/accounts/users/dave"
    assert "still has repositories" in (await admin_browser.get("/accounts/users/dave")).text
    await app.services.repositories.delete(await _admin(app), "dave/tools")
    r = await admin_browser.post("/accounts/users/dave/delete")
    assert (r.status_code, r.headers["location"]) == (303, "/accounts/users")
    assert (await admin_browser.get("/accounts/users/dave")).status_code == 404


async def test_admins_cannot_lock_themselves_out(admin_browser: Browser) -> None:
    page = await admin_browser.get("/accounts/users/admin")
    assert "This is you" in page.text
    assert "/accounts/users/admin/active" not in page.text
    assert "/accounts/users/admin/delete" not in page.text
    r = await admin_browser.post("/accounts/users/admin/active", {"active": "false"})
    assert r.status_code == 303
    assert "cannot deactivate themselves" in (await admin_browser.get("/accounts/users/admin")).text
    assert (await admin_browser.get("/accounts/profile")).status_code == 200  # still signed in


async def test_user_administration_is_refused_to_other_users(app: MoorageApp) -> None:
    bob = await _user(app, "bob")
    await app.services.accounts.create_user(await _admin(app), "eve", PASSWORD)
    for url in ("/accounts/users", "/accounts/users/new", "/accounts/users/eve"):
        assert (await bob.get(url)).status_code == 403, url
    await bob.get("/accounts/profile")
    r = await bob.post("/accounts/users", {"username": "mallory", "password": PASSWORD, "confirm": PASSWORD})
    assert r.status_code == 403
    for action, data in (("active", {"active": "false"}), ("admin", {"admin": "true"}), ("delete", {})):
        assert (await bob.post(f"/accounts/users/eve/{action}", data)).status_code == 403
    r = await bob.post("/accounts/users/eve/password", {"password": "taken-over!", "confirm": "taken-over!"})
    assert r.status_code == 403
    eve = await app.services.accounts.get_user("eve")
    assert (eve.is_active, eve.is_admin) == (True, False)
    assert await _can_sign_in(app, "eve", PASSWORD)
    assert not await _can_sign_in(app, "mallory", PASSWORD)


# -- organizations and teams ----------------------------------------------------------------
async def test_organizations_are_created_with_their_errors_by_the_field(app: MoorageApp) -> None:
    bob = await _user(app, "bob")
    r = await bob.post("/accounts/organizations", {"name": "Not Valid!"})
    assert r.status_code == 400
    assert "lowercase letters" in _field_error(r.text, "name")
    r = await bob.post("/accounts/organizations", {"name": "bob"})
    assert "taken" in _field_error(r.text, "name")
    r = await bob.post("/accounts/organizations", {"name": "acme"})
    assert (r.status_code, r.headers["location"]) == (303, "/accounts/organizations/acme")
    page = await bob.get("/accounts/organizations")
    row = re.search(r'<tr data-org="acme">(.*?)</tr>', page.text, re.S)
    assert row
    assert "Owner" in row.group(1)
    r = await bob.post("/accounts/organizations", {"name": "acme"})
    assert "taken" in _field_error(r.text, "name")


async def test_owners_manage_members_teams_and_team_access(app: MoorageApp) -> None:
    bob = await _user(app, "bob")
    for name in ("carol", "dave"):
        await app.services.accounts.create_user(await _admin(app), name, PASSWORD)
    await bob.post("/accounts/organizations", {"name": "acme"})
    owner = await app.services.authn.principal("bob")
    assert owner is not None
    await app.services.repositories.create(owner, "acme/api", visibility="private")
    await app.services.repositories.create(owner, "acme/web", visibility="private")

    r = await bob.post("/accounts/organizations/acme/members", {"username": "nobody", "role": "member"})
    assert r.status_code == 400
    assert _field_error(r.text, "username") == "There is no user 'nobody'."
    r = await bob.post("/accounts/organizations/acme/members", {"username": "carol", "role": "member"})
    assert r.status_code == 303
    # A role change from the members table.
    await bob.post(
        "/accounts/organizations/acme/members", {"username": "carol", "role": "owner", "from": "row"}
    )
    org = await app.services.accounts.get_organization(owner, "acme")
    assert {"username": "carol", "role": "owner"} in org["members"]
    await bob.post(
        "/accounts/organizations/acme/members", {"username": "carol", "role": "member", "from": "row"}
    )

    r = await bob.post("/accounts/organizations/acme/teams", {"name": "Dev Team"})
    assert r.status_code == 400
    assert "lowercase letters" in _field_error(r.text, "name")
    r = await bob.post("/accounts/organizations/acme/teams", {"name": "devs", "description": "Builders"})
    assert (r.status_code, r.headers["location"]) == (303, "/accounts/organizations/acme/teams/devs")
    r = await bob.post("/accounts/organizations/acme/teams", {"name": "devs"})
    assert "already exists" in _field_error(r.text, "name")

    team = "/accounts/organizations/acme/teams/devs"
    r = await bob.post(f"{team}/members", {"username": "ghost"})
    assert _field_error(r.text, "username") == "There is no user 'ghost'."
    assert (await bob.post(f"{team}/members", {"username": "dave"})).status_code == 303
    page = await bob.get(team)
    assert 'data-member="dave"' in page.text
    assert '<option value="acme/api">' in page.text  # offered for a grant
    r = await bob.post(f"{team}/access", {"repository": "acme/api", "level": "superuser"})
    assert r.status_code == 400
    assert "read-only, read-write or admin" in _field_error(r.text, "level")
    r = await bob.post(f"{team}/access", {"repository": "bob/elsewhere", "level": "read-only"})
    assert r.status_code == 400
    assert "does not exist" in _field_error(r.text, "repository")
    r = await bob.post(f"{team}/access", {"repository": "acme/api", "level": "read-write"})
    assert r.status_code == 303
    page = await bob.get(team)
    grant = re.search(r'<tr data-grant="acme/api">(.*?)</tr>', page.text, re.S)
    assert grant
    assert "read-write" in grant.group(1)
    dave = await app.services.authn.principal("dave")
    assert (await app.services.access.repository(dave, "acme/api")).level == Level.READ_WRITE
    assert (await app.services.access.repository(dave, "acme/web")).level == Level.NONE
    # Organization-wide: every repository, then taken back.
    await bob.post(f"{team}/namespace", {"namespace_level": "read-only"})
    assert (await app.services.access.repository(dave, "acme/web")).level == Level.READ_ONLY
    await bob.post(f"{team}/namespace", {"namespace_level": "none"})
    assert (await app.services.access.repository(dave, "acme/web")).level == Level.NONE
    r = await bob.post(f"{team}/access/revoke", {"repository": "acme/api"})
    assert r.status_code == 303
    assert (await app.services.access.repository(dave, "acme/api")).level == Level.NONE
    await bob.post(f"{team}/members/dave/remove")
    assert (await app.services.accounts.get_team(owner, "acme", "devs"))["members"] == []
    await bob.post(team, {"description": "Builds things"})
    assert (await app.services.accounts.get_team(owner, "acme", "devs"))["description"] == "Builds things"
    r = await bob.post(f"{team}/delete")
    assert (r.status_code, r.headers["location"]) == (303, "/accounts/organizations/acme")
    assert (await app.services.accounts.get_organization(owner, "acme"))["teams"] == []


async def test_members_see_but_cannot_manage_an_organization(app: MoorageApp) -> None:
    bob = await _user(app, "bob")
    carol = await _user(app, "carol")
    await bob.post("/accounts/organizations", {"name": "acme"})
    await bob.post("/accounts/organizations/acme/members", {"username": "carol", "role": "member"})
    await bob.post("/accounts/organizations/acme/teams", {"name": "devs"})
    owner = await app.services.authn.principal("bob")
    await app.services.repositories.create(owner, "acme/api", visibility="private")

    page = await carol.get("/accounts/organizations/acme")
    assert page.status_code == 200
    assert 'data-member="bob"' in page.text
    assert "Add a member" not in page.text
    assert "New team" not in page.text
    assert "Delete organization" not in page.text
    team = await carol.get("/accounts/organizations/acme/teams/devs")
    assert team.status_code == 200
    assert "Grant a repository" not in team.text
    assert "Add to team" not in team.text
    # And the server refuses it anyway.
    base = "/accounts/organizations/acme"
    refused = [
        (f"{base}/members", {"username": "carol", "role": "owner"}),
        (f"{base}/members/bob/remove", {}),
        (f"{base}/teams", {"name": "mine"}),
        (f"{base}/teams/devs/members", {"username": "carol"}),
        (f"{base}/teams/devs/access", {"repository": "acme/api", "level": "admin"}),
        (f"{base}/teams/devs/namespace", {"namespace_level": "admin"}),
        (f"{base}/teams/devs/delete", {}),
        (f"{base}/delete", {}),
    ]
    for url, data in refused:
        assert (await carol.post(url, data)).status_code == 403, url
    org = await app.services.accounts.get_organization(owner, "acme")
    assert {"username": "carol", "role": "member"} in org["members"]
    assert [t["name"] for t in org["teams"]] == ["devs"]
    detail = await app.services.accounts.get_team(owner, "acme", "devs")
    assert (detail["members"], detail["access"]) == ([], [])
    # Someone outside the organization cannot open its teams.
    eve = await _user(app, "eve")
    assert (await eve.get("/accounts/organizations/acme/teams/devs")).status_code == 403
    assert (await eve.get("/accounts/organizations/nope")).status_code == 404


async def test_an_organization_with_repositories_is_not_deleted(app: MoorageApp) -> None:
    bob = await _user(app, "bob")
    await bob.post("/accounts/organizations", {"name": "acme"})
    owner = await app.services.authn.principal("bob")
    await app.services.repositories.create(owner, "acme/api", visibility="private")
    r = await bob.post("/accounts/organizations/acme/delete")
    assert r.headers["location"] == "/accounts/organizations/acme"
    assert "still has repositories" in (await bob.get("/accounts/organizations/acme")).text
    await app.services.repositories.delete(owner, "acme/api")
    r = await bob.post("/accounts/organizations/acme/delete")
    assert r.headers["location"] == "/accounts/organizations"
    assert (await bob.get("/accounts/organizations/acme")).status_code == 404
