"""Signing in and out of the web UI, CSRF protection, and page permissions."""

from __future__ import annotations

import httpx
from tests.conftest import ADMIN_PASSWORD
from tests.web.helpers import Browser, browser_client, csrf_of

from moorage.app import MoorageApp
from moorage.web.view import SESSION_COOKIE


async def test_anonymous_visitor_can_browse_and_is_sent_to_sign_in_for_more(browser: Browser) -> None:
    r = await browser.get("/")
    assert (r.status_code, r.headers["location"]) == (302, "/repositories")
    r = await browser.get("/repositories")
    assert r.status_code == 200
    assert "Sign in" in r.text
    assert "New repository" not in r.text
    r = await browser.get("/repositories/new")
    assert r.status_code == 303
    assert r.headers["location"] == "/sign-in?next=%2Frepositories%2Fnew"
    assert (await browser.get("/static/htmx.min.js")).status_code == 200
    assert (await browser.get("/healthz")).json()["status"] == "ok"


async def test_wrong_password_is_shown_next_to_the_field(browser: Browser) -> None:
    await browser.get("/sign-in")
    r = await browser.post("/sign-in", {"username": "admin", "password": "nope"})
    assert r.status_code == 400
    assert 'id="e-password"' in r.text
    assert "Wrong username or password." in r.text
    assert 'value="admin"' in r.text  # the username is kept
    assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    r = await browser.post("/sign-in", {"username": "", "password": ""})
    assert "Enter your username." in r.text
    assert "Enter your password." in r.text


async def test_sign_in_sets_a_safe_cookie_and_sign_out_revokes_it(app: MoorageApp, browser: Browser) -> None:
    await browser.get("/sign-in?next=/repositories/new")
    r = await browser.post(
        "/sign-in", {"username": "admin", "password": ADMIN_PASSWORD, "next": "/repositories/new"}
    )
    assert (r.status_code, r.headers["location"]) == (303, "/repositories/new")
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith(SESSION_COOKIE)
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie  # plain http here; over TLS the cookie is Secure
    secret = browser.client.cookies[SESSION_COOKIE]
    page = await browser.get("/repositories")
    assert "admin" in page.text
    assert "Sign out" in page.text
    r = await browser.post("/sign-out")
    assert (r.status_code, r.headers["location"]) == (303, "/sign-in")
    # The old cookie, replayed, no longer signs anyone in: the session is gone server-side.
    async with browser_client(app) as other:
        other.cookies.set(SESSION_COOKIE, secret)
        r = await other.get("/repositories/new")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/sign-in")


async def test_open_redirects_are_not_followed_after_sign_in(browser: Browser) -> None:
    await browser.get("/sign-in")
    r = await browser.post(
        "/sign-in", {"username": "admin", "password": ADMIN_PASSWORD, "next": "//evil.example/"}
    )
    assert r.headers["location"] == "/repositories"


async def test_sign_in_over_tls_marks_the_cookie_secure(app: MoorageApp) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://moorage.test"
    ) as c:
        b = Browser(c)
        await b.get("/sign-in")
        r = await b.post("/sign-in", {"username": "admin", "password": ADMIN_PASSWORD})
        assert "secure" in r.headers["set-cookie"].lower()


async def test_missing_or_stale_csrf_token_is_refused_and_changes_nothing(
    app: MoorageApp, admin_browser: Browser
) -> None:
    form = {"namespace": "admin", "name": "csrf", "visibility": "private"}
    r = await admin_browser.post("/repositories", form, csrf=False)
    assert r.status_code == 403
    assert "Form expired" in r.text
    r = await admin_browser.post("/repositories", {**form, "csrf_token": "forged-token-value-1234567890"})
    assert r.status_code == 403
    stale = admin_browser.token
    await admin_browser.post("/sign-out")
    await admin_browser.sign_in("admin", ADMIN_PASSWORD)  # a new session, a new token
    r = await admin_browser.post("/repositories", {**form, "csrf_token": stale})
    assert r.status_code == 403
    assert (await app.services.repositories.list(None, search="csrf"))[1] == 0
    # htmx sends the token as a header instead of a form field.
    r = await admin_browser.client.post(
        "/repositories", data=form, headers={"X-CSRF-Token": admin_browser.token, "HX-Request": "true"}
    )
    assert r.status_code == 204
    assert r.headers["HX-Redirect"] == "/repositories/admin/csrf"


async def test_sign_in_itself_needs_the_csrf_cookie_token(browser: Browser) -> None:
    r = await browser.post("/sign-in", {"username": "admin", "password": ADMIN_PASSWORD}, csrf=False)
    assert r.status_code == 403
    page = await browser.get("/sign-in")
    r = await browser.post(
        "/sign-in", {"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 303


async def test_a_deactivated_users_session_stops_working(app: MoorageApp, browser: Browser) -> None:
    admin = await app.services.authn.password("admin", ADMIN_PASSWORD, None)
    await app.services.accounts.create_user(admin, "carol", "carol-password-1")
    await browser.sign_in("carol", "carol-password-1")
    assert (await browser.get("/repositories/new")).status_code == 200
    await app.services.accounts.update_user(admin, "carol", is_active=False)
    r = await browser.get("/repositories/new")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/sign-in")


async def test_error_pages_and_security_headers(browser: Browser) -> None:
    r = await browser.get("/no/such/page")
    assert r.status_code == 404
    assert "There is no page at this address." in r.text
    r = await browser.get("/repositories/nobody/nothing")
    assert r.status_code == 404
    assert "Repository &#39;nobody/nothing&#39; does not exist" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
