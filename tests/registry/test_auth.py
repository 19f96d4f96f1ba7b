"""Credentials on ``/v2/`` and ``/auth/token``: basic, personal access tokens, bearer tokens of
deleted or deactivated users, oversized or malformed credentials, path tricks, login throttling."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import ADMIN_PASSWORD, Backend, make_settings
from tests.registry.imagekit import MANIFEST_TYPE, push_image, sha256

from moorage.app import MoorageApp, create_app
from moorage.registry.auth import MAX_AUTHORIZATION_LENGTH
from moorage.services import passwords
from moorage.services.access import Principal
from moorage.services.errors import Forbidden, InvalidInput

PASSWORD = "correct horse battery"
BASE = "http://moorage.test"

AppFactory = Callable[..., Awaitable[MoorageApp]]


@pytest.fixture
async def make_app(tmp_path: Path, backend: Backend) -> AsyncIterator[AppFactory]:
    """Builds registries (settings overridable) with users alice and bob, organization ``acme``
    owned by the administrator with team ``writers`` (alice: read-write on all of acme), and
    images tagged v1 in ``acme/app`` (private) and ``bob/secret`` (private)."""
    apps: list[MoorageApp] = []

    async def build(**overrides: object) -> MoorageApp:
        app = create_app(make_settings(tmp_path / f"data{len(apps)}", backend, **overrides))
        await app.services.prepare()
        apps.append(app)
        c = app.services
        admin = await admin_of(app)
        for user in ("alice", "bob"):
            await c.accounts.create_user(admin, user, PASSWORD)
        await c.accounts.create_organization(admin, "acme")
        await c.accounts.create_team(admin, "acme", "writers", None)
        await c.accounts.add_team_member(admin, "acme", "writers", "alice")
        await c.accounts.grant_namespace(admin, "acme", "writers", "read-write")
        await c.repositories.create(admin, "acme/app")
        await c.repositories.create(admin, "bob/secret")
        async with client_for(app, "admin") as client:
            await push_image(client, "acme/app")
            await push_image(client, "bob/secret", layer=b"bob's secret layer")
        return app

    try:
        yield build
    finally:
        for app in apps:
            await app.services.db.close()


async def admin_of(app: MoorageApp) -> Principal:
    return await app.services.authn.password("admin", ADMIN_PASSWORD, None)


def client_for(
    app: MoorageApp, user: str | None = None, secret: str | None = None, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    auth = None if user is None else (user, secret or (ADMIN_PASSWORD if user == "admin" else PASSWORD))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE, auth=auth, headers=headers
    )


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


async def tags(app: MoorageApp, repo: str) -> list[str]:
    async with client_for(app, "admin") as client:
        return (await client.get(f"/v2/{repo}/tags/list")).json()["tags"]  # type: ignore[no-any-return]


async def bearer_token(app: MoorageApp, user: str, secret: str, scope: str) -> str:
    async with client_for(app, user, secret) as client:
        r = await client.get("/auth/token", params={"service": "moorage", "scope": scope})
    assert r.status_code == 200, r.text
    return r.json()["token"]  # type: ignore[no-any-return]


def refused(r: httpx.Response, status: int = 401, code: str = "UNAUTHORIZED") -> str:
    assert r.status_code == status, r.text
    [error] = r.json()["errors"]
    assert error["code"] == code
    assert error["message"]
    return error["message"]  # type: ignore[no-any-return]


async def audit(app: MoorageApp, action: str) -> list[dict[str, Any]]:
    entries, _ = await app.services.audit.entries(0, 1000)
    return [e for e in entries if e["action"] == action]


# -- basic credentials --------------------------------------------------------------------------
async def test_basic_credentials(make_app: AppFactory) -> None:
    app = await make_app()
    async with client_for(app, "alice") as alice:
        assert (await alice.get("/v2/")).status_code == 200
        await push_image(alice, "acme/app", tag="v2", layer=b"by alice")
    async with client_for(app, "alice", "wrong password") as wrong:
        r = await wrong.put(
            "/v2/acme/app/manifests/v3", content=b"{}", headers={"Content-Type": MANIFEST_TYPE}
        )
        refused(r)
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        refused(await wrong.get("/v2/"))
    async with client_for(app, "nobody") as nobody:
        refused(await nobody.get("/v2/acme/app/tags/list"))
    assert await tags(app, "acme/app") == ["v1", "v2"]
    assert {e["actor"] for e in await audit(app, "login.failed")} == {"alice", "nobody"}


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b":" + PASSWORD.encode()).decode(),
        "Basic " + base64.b64encode(b"alice:").decode(),
        "Basic",
        "Digest username=alice",
        "Bearer",
        "Bearer " + "x" * 100,
        "alice:" + PASSWORD,
    ],
)
async def test_malformed_credentials(make_app: AppFactory, header: str) -> None:
    app = await make_app()
    async with client_for(app, headers={"Authorization": header}) as client:
        refused(await client.get("/v2/"))
        refused(await client.post("/v2/acme/app/blobs/uploads/"))
        r = await client.get("/auth/token", params={"scope": "repository:acme/app:pull"})
        assert r.status_code in (400, 401), r.text
        assert "token" not in r.json()


async def test_oversized_credentials(make_app: AppFactory) -> None:
    app = await make_app()
    huge_user = basic("a" * MAX_AUTHORIZATION_LENGTH, PASSWORD)
    huge_secret = basic("alice", "p" * MAX_AUTHORIZATION_LENGTH)
    just_too_long = basic("alice", "p" * (passwords.MAX_SECRET_LENGTH + 1))
    megabyte = basic("alice", "p" * (1 << 20))
    for headers in (
        huge_user,
        huge_secret,
        just_too_long,
        megabyte,
        {"Authorization": "Bearer " + "e" * 50_000},
    ):
        async with client_for(app, headers=headers) as client:
            message = refused(await client.get("/v2/"))
            assert len(message) < 300
            refused(await client.post("/v2/acme/app/blobs/uploads/"))
            r = await client.get("/auth/token", params={"scope": "repository:acme/app:pull"})
            assert r.status_code == 401, r.text
            assert len(r.text) < 1000
    assert await tags(app, "acme/app") == ["v1"]
    # Oversized guesses are refused before they cost anything, and lock nobody out.
    async with client_for(app, "alice") as alice:
        assert (await alice.get("/v2/")).status_code == 200


# -- personal access tokens ---------------------------------------------------------------------
async def test_personal_access_token_lifecycle(make_app: AppFactory) -> None:
    app = await make_app(auth_cache_seconds=0)
    accounts = app.services.accounts
    alice = await app.services.authn.password("alice", PASSWORD, None)
    token, secret = await accounts.create_token(alice, "laptop")
    async with client_for(app, "alice", secret) as client:
        await push_image(client, "acme/app", tag="by-token", layer=b"pushed with a token")
        assert (
            await client.get("/auth/token", params={"scope": "repository:acme/app:push"})
        ).status_code == 200
    assert (await accounts.list_tokens(alice))[0].last_used_at is not None
    # Someone else's name with alice's token: refused.
    async with client_for(app, "bob", secret) as client:
        refused(await client.get("/v2/"))

    await accounts.update_token(alice, token.id, is_active=False)
    async with client_for(app, "alice", secret) as client:
        refused(await client.get("/v2/"))
        refused(
            await client.put(
                "/v2/acme/app/manifests/v9", content=b"{}", headers={"Content-Type": MANIFEST_TYPE}
            )
        )
        r = await client.get("/auth/token", params={"scope": "repository:acme/app:pull,push"})
        assert r.status_code == 401
        assert "token" not in r.json()
    async with client_for(app) as anonymous:
        r = await anonymous.post(
            "/auth/token", data={"grant_type": "password", "username": "alice", "password": secret}
        )
        assert r.status_code == 401

    await accounts.update_token(alice, token.id, is_active=True)
    async with client_for(app, "alice", secret) as client:
        assert (await client.get("/v2/")).status_code == 200
    await accounts.delete_token(alice, token.id)
    async with client_for(app, "alice", secret) as client:
        refused(await client.get("/v2/"))
    assert await tags(app, "acme/app") == ["by-token", "v1"]


# -- deleted and deactivated users --------------------------------------------------------------
async def test_deleted_users_tokens_are_refused(make_app: AppFactory) -> None:
    app = await make_app(auth_cache_seconds=0)
    c = app.services
    alice = await c.authn.password("alice", PASSWORD, None)
    _, pat = await c.accounts.create_token(alice, "ci")
    bearer = await bearer_token(app, "alice", PASSWORD, "repository:acme/app:pull,push")
    async with client_for(app) as anonymous:
        r = await anonymous.get(
            "/auth/token", params={"offline_token": "true"}, headers=basic("alice", PASSWORD)
        )
        refresh = r.json()["refresh_token"]
    async with client_for(app, headers={"Authorization": f"Bearer {bearer}"}) as client:
        assert (await client.get("/v2/acme/app/tags/list")).status_code == 200

    await c.accounts.delete_user(await admin_of(app), "alice")

    async with client_for(app, headers={"Authorization": f"Bearer {bearer}"}) as client:
        refused(await client.get("/v2/"))
        refused(await client.get("/v2/acme/app/tags/list"))
        refused(
            await client.put(
                "/v2/acme/app/manifests/v2", content=b"{}", headers={"Content-Type": MANIFEST_TYPE}
            )
        )
    for secret in (pat, PASSWORD):
        async with client_for(app, "alice", secret) as client:
            refused(await client.get("/v2/"))
            assert (
                await client.get("/auth/token", params={"scope": "repository:acme/app:pull"})
            ).status_code == 401
    async with client_for(app) as anonymous:
        r = await anonymous.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh}
        )
        assert r.status_code == 401
    assert await tags(app, "acme/app") == ["v1"]


async def test_a_recreated_user_does_not_inherit_the_old_accounts_tokens(make_app: AppFactory) -> None:
    app = await make_app(auth_cache_seconds=0)
    c = app.services
    bearer = await bearer_token(app, "alice", PASSWORD, "repository:acme/app:pull")
    admin = await admin_of(app)
    await c.accounts.delete_user(admin, "alice")
    await c.accounts.create_user(admin, "alice", PASSWORD + "-new")
    async with client_for(app, headers={"Authorization": f"Bearer {bearer}"}) as client:
        refused(await client.get("/v2/"))
    fresh = await bearer_token(app, "alice", PASSWORD + "-new", "repository:acme/app:pull")
    async with client_for(app, headers={"Authorization": f"Bearer {fresh}"}) as client:
        assert (await client.get("/v2/")).status_code == 200


async def test_deactivated_users_tokens_are_refused(make_app: AppFactory) -> None:
    app = await make_app(auth_cache_seconds=0)
    bearer = await bearer_token(app, "alice", PASSWORD, "repository:acme/app:pull,push")
    await app.services.accounts.update_user(await admin_of(app), "alice", is_active=False)
    async with client_for(app, headers={"Authorization": f"Bearer {bearer}"}) as client:
        refused(await client.get("/v2/acme/app/tags/list"))
    async with client_for(app, "alice") as client:
        refused(await client.get("/v2/"))
    await app.services.accounts.update_user(await admin_of(app), "alice", is_active=True)
    async with client_for(app, headers={"Authorization": f"Bearer {bearer}"}) as client:
        assert (await client.get("/v2/acme/app/tags/list")).status_code == 200


# -- login throttling ---------------------------------------------------------------------------
async def test_login_throttling(make_app: AppFactory) -> None:
    app = await make_app(auth_cache_seconds=0, login_max_failures=3, login_lockout_seconds=120)
    async with client_for(app, "alice", "wrong password") as wrong:
        for _ in range(3):
            refused(await wrong.get("/v2/"))
    async with client_for(app, "alice") as right:
        r = await right.get("/v2/")
        refused(r, 429, "TOOMANYREQUESTS")
        assert 0 < int(r.headers["retry-after"]) <= 121
        r = await right.put(
            "/v2/acme/app/manifests/v2", content=b"{}", headers={"Content-Type": MANIFEST_TYPE}
        )
        assert r.status_code == 429
        r = await right.get("/auth/token", params={"scope": "repository:acme/app:pull"})
        assert r.status_code == 429
        assert 0 < int(r.headers["retry-after"]) <= 121
        assert "token" not in r.json()
    async with client_for(app) as anonymous:
        r = await anonymous.post(
            "/auth/token", data={"grant_type": "password", "username": "alice", "password": PASSWORD}
        )
        assert r.status_code == 429
    failed = await audit(app, "login.failed")
    assert len(failed) == 3
    assert all(e["actor"] == "alice" and e["remoteAddr"] == "127.0.0.1" for e in failed)
    # bob, from the same address, is not locked out.
    async with client_for(app, "bob") as bob:
        assert (await bob.get("/v2/")).status_code == 200
    assert await tags(app, "acme/app") == ["v1"]


# -- path tricks in names -----------------------------------------------------------------------
async def _raw_get(app: MoorageApp, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """A request whose path reaches the app exactly as written (httpx would normalise '..')."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"moorage.test"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("moorage.test", 80),
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


@pytest.mark.parametrize(
    "path",
    [
        "/v2/alice/../bob/secret/manifests/v1",
        "/v2/alice/./../bob/secret/manifests/v1",
        "/v2/alice/x/manifests/../../../bob/secret/manifests/v1",
        "/v2/alice/..%2Fbob/secret/manifests/v1",
        "/v2/alice//bob/secret/manifests/v1",
        "/v2//bob/secret/manifests/v1",
        "/v2/alice/\x00/../bob/secret/manifests/v1",
        "/v2/alice/../bob/secret/tags/list",
        "/v2/alice/../bob/secret/blobs/" + sha256(b"bob's secret layer"),
    ],
)
async def test_path_tricks_do_not_reach_other_namespaces(make_app: AppFactory, path: str) -> None:
    app = await make_app()
    for headers in (basic("alice", PASSWORD), basic("admin", ADMIN_PASSWORD), {}):
        status, body = await _raw_get(app, path, headers)
        assert status == 400, body
        assert json.loads(body)["errors"][0]["code"] == "NAME_INVALID"
        assert b"secret layer" not in body
        assert b"schemaVersion" not in body


async def test_nul_bytes_are_refused_not_crashed_on(make_app: AppFactory) -> None:
    """PostgreSQL refuses NUL in text: such input must be turned away before any query."""
    app = await make_app()
    async with client_for(app, headers=basic("al\x00ice", PASSWORD)) as client:
        refused(await client.get("/v2/"))
        assert (await client.get("/auth/token")).status_code == 401
    async with client_for(app) as anonymous:
        r = await anonymous.post(
            "/auth/token", data={"grant_type": "password", "username": "al\x00ice", "password": PASSWORD}
        )
        assert r.status_code == 401
    async with client_for(app, "alice") as alice:
        refused(await alice.get("/v2/acme/app%00/manifests/v1"), 400, "NAME_INVALID")
        refused(await alice.get("/v2/acme/app%00/tags/list"), 400, "NAME_INVALID")
        for url, last in (("/v2/acme/app/tags/list", "v\x00"), ("/v2/_catalog", "acme\x00")):
            r = await alice.get(url, params={"last": last})
            assert r.status_code == 400, r.text
            assert "NUL" in r.json()["errors"][0]["message"]
        # A mount source that is not a repository name is refused like any bad name.
        refused(
            await alice.post(
                "/v2/acme/app/blobs/uploads/", params={"mount": sha256(b"a layer"), "from": "bob\x00"}
            ),
            400,
            "NAME_INVALID",
        )


async def test_encoded_slashes_are_the_same_name(make_app: AppFactory) -> None:
    app = await make_app()
    async with client_for(app, "alice") as alice:
        refused(await alice.get("/v2/bob%2Fsecret/manifests/v1"), 403, "DENIED")
        r = await alice.get("/v2/alice%2F..%2Fbob%2Fsecret/manifests/v1")
        assert r.status_code == 400
    async with client_for(app, "bob") as bob:
        assert (await bob.get("/v2/bob%2Fsecret/tags/list")).json()["tags"] == ["v1"]


@pytest.mark.parametrize(
    "name", ["../bob", "bob/x", "Bob", "bob.", "-bob", "b\x00b", "b\u043eb", "a" * 65, "", " bob"]
)
async def test_path_tricks_in_account_names(make_app: AppFactory, name: str) -> None:
    app = await make_app()
    c = app.services
    admin = await admin_of(app)
    with pytest.raises(InvalidInput):
        await c.accounts.create_user(admin, name, PASSWORD)
    with pytest.raises(InvalidInput):
        await c.accounts.create_organization(admin, name)
    with pytest.raises(InvalidInput):
        await c.accounts.create_team(admin, "acme", name, None)
    assert await tags(app, "bob/secret") == ["v1"]
    assert (await c.accounts.list_organizations(0, 100))[0] == ["acme"]
    assert [u.username for u in (await c.accounts.list_users(admin, 0, 100))[0]] == ["admin", "alice", "bob"]


async def test_repository_names_stay_in_their_namespace(make_app: AppFactory) -> None:
    app = await make_app()
    repos = app.services.repositories
    alice = await app.services.authn.password("alice", PASSWORD, None)
    for name in (
        "alice/../bob/x",
        "alice/./x",
        "alice//x",
        "/bob/x",
        "alice/x/",
        "alice",
        "Alice/x",
        "alice/x\x00",
    ):
        with pytest.raises(InvalidInput):
            await repos.create(alice, name)
    with pytest.raises(Forbidden):
        await repos.create(alice, "bob/x")
    async with client_for(app, "alice") as client:
        r = await client.get("/auth/token", params={"scope": "repository:alice/../bob/secret:pull"})
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_scope"
