"""The Docker token-auth flow over the ASGI app: challenge, ``/auth/token``, bearer tokens, and
the tokens and scopes that must be refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.conftest import ADMIN_PASSWORD, Backend, make_settings
from tests.registry.imagekit import MANIFEST_TYPE, push_image, sha256

from moorage.app import MoorageApp, create_app
from moorage.db import accounts as qa
from moorage.oci.scopes import MAX_SCOPE_LENGTH
from moorage.registry.token import MAX_SCOPES
from moorage.services.tokens import TokenService

PASSWORD = "correct horse battery"
BASE = "http://moorage.test"
TTL = 120


@pytest.fixture
async def app(tmp_path: Path, backend: Backend) -> AsyncIterator[MoorageApp]:
    """Registry with token lifetime TTL and these people and repositories:

    - ``alice`` owns organization ``acme`` and her own ``alice/app`` (private);
    - ``bob`` is in team ``readers`` (read-only on ``acme/app``), ``carol`` in ``writers`` (read-write);
    - ``acme/app`` is private, ``acme/pub`` public; each holds an image tagged ``v1``.
    """
    application = create_app(make_settings(tmp_path / "data", backend, token_ttl_seconds=TTL))
    await application.services.prepare()
    c = application.services
    admin = await c.authn.password("admin", ADMIN_PASSWORD, None)
    for user in ("alice", "bob", "carol"):
        await c.accounts.create_user(admin, user, PASSWORD)
    alice = await c.authn.password("alice", PASSWORD, None)
    await c.accounts.create_organization(alice, "acme")
    await c.repositories.create(alice, "alice/app")
    await c.repositories.create(alice, "acme/app")
    await c.repositories.create(alice, "acme/pub", visibility="public")
    for team, member, level in (("readers", "bob", "read-only"), ("writers", "carol", "read-write")):
        await c.accounts.create_team(alice, "acme", team, None)
        await c.accounts.add_team_member(alice, "acme", team, member)
        await c.accounts.grant_repository(alice, "acme", team, "acme/app", level)
    async with client_for(application, "admin") as admin_client:
        for repo in ("alice/app", "acme/app", "acme/pub"):
            await push_image(admin_client, repo)
    try:
        yield application
    finally:
        await application.services.db.close()


def client_for(app: MoorageApp, user: str | None = None, token: str | None = None) -> httpx.AsyncClient:
    auth = None if user is None else (user, ADMIN_PASSWORD if user == "admin" else PASSWORD)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE, auth=auth, headers=headers
    )


async def get_token(app: MoorageApp, user: str | None, *scopes: str, **params: str) -> dict[str, Any]:
    async with client_for(app, user) as client:
        r = await client.get("/auth/token", params={"service": "moorage", "scope": list(scopes), **params})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def access_of(token: str) -> dict[str, list[str]]:
    return {f"{a['type']}:{a['name']}": a["actions"] for a in claims_of(token)["access"]}


async def tags(app: MoorageApp, repo: str) -> list[str]:
    async with client_for(app, "admin") as client:
        return (await client.get(f"/v2/{repo}/tags/list")).json()["tags"]  # type: ignore[no-any-return]


def challenge(r: httpx.Response) -> dict[str, str]:
    header = r.headers["www-authenticate"]
    assert header.startswith("Bearer ")
    out = {}
    for part in header[len("Bearer ") :].split('",'):
        key, _, value = part.partition("=")
        out[key] = value.strip('"')
    return out


# -- the flow --------------------------------------------------------------------------------------
async def test_base_challenge(app: MoorageApp) -> None:
    async with client_for(app) as anonymous:
        r = await anonymous.get("/v2/")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == f'Bearer realm="{BASE}/auth/token",service="moorage"'
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        r = await anonymous.get("/v2/acme/app/manifests/v1")
        assert r.status_code == 401
        assert challenge(r) == {
            "realm": f"{BASE}/auth/token",
            "service": "moorage",
            "scope": "repository:acme/app:pull",
        }
        r = await anonymous.put("/v2/acme/app/manifests/v2", content=b"{}")
        assert challenge(r)["scope"] == "repository:acme/app:pull,push"
        r = await anonymous.delete("/v2/acme/app/manifests/v1")
        assert challenge(r)["scope"] == "repository:acme/app:delete"
    assert await tags(app, "acme/app") == ["v1"]


async def test_token_flow_end_to_end(app: MoorageApp) -> None:
    # The client follows the challenge's realm and service.
    async with client_for(app) as anonymous:
        found = challenge(await anonymous.get("/v2/"))
    async with client_for(app, "alice") as alice:
        r = await alice.get(
            found["realm"], params={"service": found["service"], "scope": "repository:alice/new:pull,push"}
        )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    token = body["token"]
    assert body["access_token"] == token
    assert body["expires_in"] == TTL
    assert body["issued_at"].endswith("Z")
    assert "refresh_token" not in body

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    assert header["kid"] == await app.services.tokens.ensure_key()
    async with app.services.db.read() as conn:
        pem = {kid: pem for kid, pem, _, _ in await qa.signing_keys_all(conn)}[header["kid"]]
    public = serialization.load_pem_private_key(pem.encode(), password=None).public_key()
    claims = jwt.decode(token, public, algorithms=["ES256"], audience="moorage", issuer="moorage")  # type: ignore[arg-type]
    assert claims["iss"] == "moorage"
    assert claims["aud"] == "moorage"
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == TTL
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["jti"]
    assert claims["access"] == [{"type": "repository", "name": "alice/new", "actions": ["pull", "push"]}]

    async with client_for(app, token=token) as bearer:
        assert (await bearer.get("/v2/")).status_code == 200
        manifest = await push_image(bearer, "alice/new")
        r = await bearer.get("/v2/alice/new/manifests/v1", headers={"Accept": MANIFEST_TYPE})
        assert r.status_code == 200
        assert r.content == manifest
        # The token is for alice/new only.
        r = await bearer.get("/v2/alice/app/manifests/v1")
        assert r.status_code == 401
        assert challenge(r)["error"] == "insufficient_scope"


async def test_offline_token_and_refresh(app: MoorageApp) -> None:
    body = await get_token(
        app, "alice", "repository:alice/app:pull", offline_token="true", client_id="docker"
    )
    refresh = body["refresh_token"]
    assert refresh.startswith("mrg_rt_")
    async with client_for(app) as anonymous:
        r = await anonymous.post(
            "/auth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "service": "moorage",
                "client_id": "docker",
                "scope": "repository:alice/app:pull,push",
            },
        )
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        assert r.json()["scope"] == "repository:alice/app:pull,push"
        assert "refresh_token" not in r.json()
        assert claims_of(token)["sub"] == "alice"
        assert access_of(token) == {"repository:alice/app": ["pull", "push"]}
        async with client_for(app, token=token) as bearer:
            await push_image(bearer, "alice/app", tag="v2", layer=b"refreshed")
        for bad in ("", "mrg_rt_forged", refresh + "x", body["token"]):
            r = await anonymous.post(
                "/auth/token", data={"grant_type": "refresh_token", "refresh_token": bad}
            )
            assert r.status_code == 401, bad
            assert r.json()["error"] == "unauthorized"


async def test_password_grant(app: MoorageApp) -> None:
    async with client_for(app) as anonymous:
        form = {
            "grant_type": "password",
            "username": "carol",
            "password": PASSWORD,
            "service": "moorage",
            "scope": "repository:acme/app:pull,push,delete",
            "access_type": "offline",
        }
        r = await anonymous.post("/auth/token", data=form)
        assert r.status_code == 200, r.text
        assert access_of(r.json()["token"]) == {"repository:acme/app": ["delete", "pull", "push"]}
        assert r.json()["refresh_token"].startswith("mrg_rt_")
        r = await anonymous.post("/auth/token", data={**form, "password": "wrong password"})
        assert r.status_code == 401
        assert r.json()["error"] == "unauthorized"
        r = await anonymous.post("/auth/token", data={**form, "grant_type": "client_credentials"})
        assert r.status_code == 400
        assert r.json()["error"] == "unsupported_grant_type"
        r = await anonymous.post("/auth/token", data={**form, "service": "elsewhere"})
        assert r.status_code == 400
        assert "elsewhere" in r.json()["error_description"]


async def test_anonymous_token_pulls_public_only(app: MoorageApp) -> None:
    token = (
        await get_token(app, None, "repository:acme/pub:pull,push,delete,*", "repository:acme/app:pull")
    )["token"]
    assert claims_of(token)["sub"] == ""
    assert access_of(token) == {"repository:acme/pub": ["pull"], "repository:acme/app": []}
    async with client_for(app, token=token) as bearer:
        assert (await bearer.get("/v2/acme/pub/manifests/v1")).status_code == 200
        assert (await bearer.get("/v2/acme/pub/tags/list")).status_code == 200
        r = await bearer.put(
            "/v2/acme/pub/manifests/v2", content=b"{}", headers={"Content-Type": MANIFEST_TYPE}
        )
        assert r.status_code == 401
        assert (await bearer.delete("/v2/acme/pub/manifests/v1")).status_code == 401
        assert (await bearer.get("/v2/acme/app/manifests/v1")).status_code == 401
    assert await tags(app, "acme/pub") == ["v1"]


async def test_subset_rule(app: MoorageApp) -> None:
    token = (await get_token(app, "bob", "repository:acme/app:pull,push", "repository:alice/app:pull"))[
        "token"
    ]
    assert access_of(token) == {"repository:acme/app": ["pull"], "repository:alice/app": []}
    async with client_for(app, token=token) as bearer:
        assert (await bearer.get("/v2/acme/app/manifests/v1")).status_code == 200
        r = await bearer.put(
            "/v2/acme/app/manifests/v2", content=b"{}", headers={"Content-Type": MANIFEST_TYPE}
        )
        assert r.status_code == 403
        assert r.json()["errors"][0]["code"] == "DENIED"
        r = await bearer.get("/v2/alice/app/manifests/v1")
        assert r.status_code == 403
    assert await tags(app, "acme/app") == ["v1"]


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        (None, []),
        ("bob", ["pull"]),
        ("carol", ["delete", "pull", "push"]),
        ("alice", ["*", "delete", "pull", "push"]),
        ("admin", ["*", "delete", "pull", "push"]),
    ],
)
async def test_star_grants_what_is_held(app: MoorageApp, user: str | None, expected: list[str]) -> None:
    token = (await get_token(app, user, "repository:acme/app:*"))["token"]
    assert access_of(token) == {"repository:acme/app": expected}
    # skopeo deletes with such a token: it works exactly when delete is held.
    async with client_for(app, token=token) as bearer:
        r = await bearer.delete("/v2/acme/app/manifests/v1")
    if "delete" in expected:
        assert r.status_code == 202, r.text
        assert await tags(app, "acme/app") == []
    else:
        assert r.status_code == (401 if user is None else 403)
        assert await tags(app, "acme/app") == ["v1"]


@pytest.mark.parametrize(
    ("user", "actions", "visible"),
    [
        (None, [], ["acme/pub"]),
        ("bob", ["*"], ["acme/app", "acme/pub"]),
        ("alice", ["*"], ["acme/app", "acme/pub", "alice/app"]),
    ],
)
async def test_catalog_scope(
    app: MoorageApp, user: str | None, actions: list[str], visible: list[str]
) -> None:
    token = (await get_token(app, user, "registry:catalog:*"))["token"]
    assert claims_of(token)["access"] == [{"type": "registry", "name": "catalog", "actions": actions}]
    async with client_for(app, token=token) as bearer:
        r = await bearer.get("/v2/_catalog")
    assert r.status_code == 200
    assert r.json()["repositories"] == visible


async def test_insufficient_scope_when_the_user_holds_it(app: MoorageApp) -> None:
    token = (await get_token(app, "carol", "repository:acme/app:pull"))["token"]
    async with client_for(app, token=token) as bearer:
        r = await bearer.put(
            "/v2/acme/app/manifests/v2", content=b"{}", headers={"Content-Type": MANIFEST_TYPE}
        )
        assert r.status_code == 401
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert challenge(r) == {
            "realm": f"{BASE}/auth/token",
            "service": "moorage",
            "scope": "repository:acme/app:pull,push",
            "error": "insufficient_scope",
        }
        r = await bearer.delete("/v2/acme/app/manifests/v1")
        assert r.status_code == 401
        assert challenge(r)["scope"] == "repository:acme/app:delete"
    assert await tags(app, "acme/app") == ["v1"]


@pytest.mark.parametrize("mode", ["basic", "bearer"])
async def test_lacking_rights_is_403_denied(app: MoorageApp, mode: str) -> None:
    if mode == "basic":
        client = client_for(app, "bob")
    else:
        client = client_for(
            app, token=(await get_token(app, "bob", "repository:acme/app:pull,push,delete"))["token"]
        )
    async with client:
        r = await client.put(
            "/v2/acme/app/manifests/v2", content=b"{}", headers={"Content-Type": MANIFEST_TYPE}
        )
        assert r.status_code == 403
        [error] = r.json()["errors"]
        assert error["code"] == "DENIED"
        assert "bob" in error["message"]
        assert "acme/app" in error["message"]
        assert "www-authenticate" not in r.headers
        assert (await client.delete("/v2/acme/app/manifests/v1")).status_code == 403
        assert (await client.post("/v2/acme/app/blobs/uploads/")).status_code == 403
        assert (await client.get("/v2/acme/app/manifests/v1")).status_code == 200
    assert await tags(app, "acme/app") == ["v1"]


# -- tokens that must be refused -------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def _signing_key(app: MoorageApp) -> tuple[str, Any]:
    kid = await app.services.tokens.ensure_key()
    async with app.services.db.read() as conn:
        pem = {k: p for k, p, _, _ in await qa.signing_keys_all(conn)}[kid]
    return kid, serialization.load_pem_private_key(pem.encode(), password=None)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "moorage",
        "sub": "alice",
        "aud": "moorage",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 60,
        "access": [{"type": "repository", "name": "alice/app", "actions": ["pull", "push", "delete"]}],
    }
    claims.update(overrides)
    return claims


async def _bad_token(app: MoorageApp, kind: str) -> str:
    kid, key = await _signing_key(app)
    if kind == "tampered payload":
        good = (await get_token(app, "bob", "repository:alice/app:pull"))["token"]
        head, payload, signature = good.split(".")
        forged = json.loads(_unb64(payload))
        forged["access"] = _claims()["access"]
        return f"{head}.{_b64(json.dumps(forged).encode())}.{signature}"
    if kind == "tampered signature":
        good = (await get_token(app, "alice", "repository:alice/app:pull,push"))["token"]
        head, payload, signature = good.split(".")
        raw = bytearray(_unb64(signature))
        raw[0] ^= 1
        return f"{head}.{payload}.{_b64(bytes(raw))}"
    if kind == "expired":
        return jwt.encode(
            _claims(iat=int(time.time()) - 4000, exp=int(time.time()) - 3600),
            key,
            "ES256",
            headers={"kid": kid},
        )
    if kind == "wrong audience":
        other = TokenService(app.services.db, app.services.tokens.clock, "elsewhere", 300)
        return (await other.issue("alice", _claims()["access"]))[0]
    if kind == "wrong issuer":
        return jwt.encode(_claims(iss="evil"), key, "ES256", headers={"kid": kid})
    if kind == "another key, same kid":
        return jwt.encode(_claims(), ec.generate_private_key(ec.SECP256R1()), "ES256", headers={"kid": kid})
    if kind == "another key, another kid":
        return jwt.encode(
            _claims(), ec.generate_private_key(ec.SECP256R1()), "ES256", headers={"kid": "EVIL"}
        )
    if kind == "alg none":
        return jwt.encode(_claims(), None, "none", headers={"kid": kid})
    if kind == "HS256 with the public key":
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}." + _b64(
            json.dumps(_claims()).encode()
        )
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"
    if kind == "garbage":
        return "not-a-token"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "tampered payload",
        "tampered signature",
        "expired",
        "wrong audience",
        "wrong issuer",
        "another key, same kid",
        "another key, another kid",
        "alg none",
        "HS256 with the public key",
        "garbage",
    ],
)
async def test_bad_tokens_are_refused(app: MoorageApp, kind: str) -> None:
    token = await _bad_token(app, kind)
    async with client_for(app, token=token) as bearer:
        for method, path in (
            ("GET", "/v2/"),
            ("GET", "/v2/alice/app/manifests/v1"),
            ("DELETE", "/v2/alice/app/manifests/v1"),
            ("POST", "/v2/alice/app/blobs/uploads/"),
        ):
            r = await bearer.request(method, path)
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
            assert r.json()["errors"][0]["message"]
            assert challenge(r)["error"] == "invalid_token"
    assert await tags(app, "alice/app") == ["v1"]
    async with client_for(app, "admin") as admin:
        assert (await admin.get("/v2/_catalog")).json()["repositories"] == [
            "acme/app",
            "acme/pub",
            "alice/app",
        ]


# -- scopes that must be refused -------------------------------------------------------------------
async def test_escalating_scope_grants_nothing(app: MoorageApp) -> None:
    token = (
        await get_token(
            app, "bob", "repository:alice/app:push", "repository:alice/app:pull", "repository:acme/app:push"
        )
    )["token"]
    assert claims_of(token)["access"] == [
        {"type": "repository", "name": "alice/app", "actions": []},
        {"type": "repository", "name": "alice/app", "actions": []},
        {"type": "repository", "name": "acme/app", "actions": []},
    ]
    async with client_for(app, token=token) as bearer:
        r = await bearer.post("/v2/alice/app/blobs/uploads/", params={"digest": sha256(b"x")}, content=b"x")
        assert r.status_code == 403
    assert await tags(app, "alice/app") == ["v1"]


@pytest.mark.parametrize(
    "scope",
    [
        "repository:acme/app:pull,push,delete,admin",
        "repository::pull",
        "repository:A/B:pull",
        "repository:acme/../alice/app:pull",
        "repository:acme/app",
        "registry:catalog",
        "registry:users:*",
        "repository:acme/app:pull\x00",
        "repository:" + "a" * MAX_SCOPE_LENGTH + ":pull",
        "repository:acme/app:" + "pull," * 1000,
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_malformed_scopes_are_refused(app: MoorageApp, scope: str, method: str) -> None:
    async with client_for(app, "alice") as alice:
        if method == "GET":
            r = await alice.get(
                "/auth/token", params={"service": "moorage", "scope": ["repository:alice/app:pull", scope]}
            )
        else:
            r = await alice.post(
                "/auth/token",
                data={"grant_type": "password", "username": "alice", "password": PASSWORD, "scope": scope},
            )
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "invalid_scope"
    assert body["error_description"]
    assert "token" not in body


async def test_too_many_scopes_and_wrong_service(app: MoorageApp) -> None:
    async with client_for(app, "alice") as alice:
        scopes = [f"repository:alice/r{i}:pull" for i in range(MAX_SCOPES + 1)]
        r = await alice.get("/auth/token", params={"service": "moorage", "scope": scopes})
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_scope"
        r = await alice.get("/auth/token", params={"service": "moorage", "scope": scopes[:MAX_SCOPES]})
        assert r.status_code == 200
        r = await alice.get(
            "/auth/token", params={"service": "elsewhere", "scope": "repository:alice/app:pull"}
        )
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_request"
