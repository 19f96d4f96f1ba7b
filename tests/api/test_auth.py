"""Authentication of the management API: HTTP basic with a password or personal access token."""

from __future__ import annotations

import base64

import httpx
import pytest
from tests.api.helpers import API, PASSWORD, UserFactory, as_user
from tests.conftest import ADMIN_PASSWORD

from moorage.app import MoorageApp


def basic(username: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()}


async def test_anonymous_gets_a_basic_challenge(anonymous: httpx.AsyncClient) -> None:
    for path in ("/me", "/users", "/repositories", "/organizations", "/tokens", "/audit"):
        r = await anonymous.get(API + path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == 'Basic realm="moorage"'
        assert r.json()["code"] == "unauthorized"


async def test_openapi_document_needs_no_credentials(anonymous: httpx.AsyncClient) -> None:
    r = await anonymous.get(f"{API}/openapi.json")
    assert r.status_code == 200
    assert r.json()["components"]["securitySchemes"]["basic"] == {
        "type": "http",
        "scheme": "basic",
        "description": "Username with a password or a personal access token (mrg_pat_…).",
    }


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Digest username=admin",
        "Basic " + base64.b64encode(b":").decode(),
    ],
)
async def test_malformed_credentials_are_refused(anonymous: httpx.AsyncClient, header: str) -> None:
    r = await anonymous.get(f"{API}/me", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Basic realm="moorage"'


async def test_registry_bearer_tokens_are_not_accepted(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    r = await client.get("/auth/token", params={"scope": "repository:admin/x:pull"})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    r = await anonymous.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert "bearer" in r.json()["message"]


@pytest.mark.parametrize(
    ("username", "secret"),
    [("admin", "x" * 5000), ("a" * 300, ADMIN_PASSWORD), ("admin", ADMIN_PASSWORD + "y" * 1100)],
)
async def test_oversized_credentials_are_refused(
    anonymous: httpx.AsyncClient, username: str, secret: str
) -> None:
    r = await anonymous.get(f"{API}/me", headers=basic(username, secret))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Basic realm="moorage"'


async def test_wrong_password_is_refused_and_audited(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    r = await anonymous.get(f"{API}/me", headers=basic("admin", "wrong-password"))
    assert r.status_code == 401
    r = await anonymous.get(f"{API}/me", headers=basic("admin", ADMIN_PASSWORD))
    assert r.status_code == 200
    assert r.json()["username"] == "admin"
    entries = (await client.get(f"{API}/audit")).json()["items"]
    actions = [(e["action"], e["actor"]) for e in entries]
    assert ("login.failed", "admin") in actions
    assert ("login", "admin") in actions
    login = next(e for e in entries if e["action"] == "login")
    assert login["detail"] == {"method": "password"}
    assert login["remoteAddr"] == "127.0.0.1"


async def test_repeated_failures_are_throttled(anonymous: httpx.AsyncClient, new_user: UserFactory) -> None:
    await new_user("victim")
    for _ in range(5):
        r = await anonymous.get(f"{API}/me", headers=basic("victim", "guess-guess"))
        assert r.status_code == 401
    r = await anonymous.get(f"{API}/me", headers=basic("victim", PASSWORD))
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert r.json()["code"] == "too_many_requests"


async def test_personal_access_token_authenticates(app: MoorageApp, new_user: UserFactory) -> None:
    bob = await new_user("bob")
    r = await bob.post(f"{API}/tokens", json={"label": "ci"})
    secret = r.json()["secret"]
    async with as_user(app, "bob", secret) as by_token:
        r = await by_token.get(f"{API}/me")
        assert r.status_code == 200
        assert r.json()["username"] == "bob"
    tokens = (await bob.get(f"{API}/tokens")).json()
    assert tokens[0]["lastUsedAt"] is not None
    # A token works for its own user only.
    async with as_user(app, "admin", secret) as wrong_user:
        assert (await wrong_user.get(f"{API}/me")).status_code == 401


async def test_deactivated_token_is_refused(app: MoorageApp, new_user: UserFactory) -> None:
    bob = await new_user("bob")
    token = (await bob.post(f"{API}/tokens", json={"label": "ci"})).json()
    async with as_user(app, "bob", token["secret"]) as by_token:
        assert (await by_token.get(f"{API}/me")).status_code == 200
        r = await bob.patch(f"{API}/tokens/{token['id']}", json={"isActive": False})
        assert r.status_code == 200
        assert r.json()["isActive"] is False
        assert (await by_token.get(f"{API}/me")).status_code == 401
        r = await bob.patch(f"{API}/tokens/{token['id']}", json={"isActive": True})
        assert (await by_token.get(f"{API}/me")).status_code == 200


async def test_deleted_token_is_refused(app: MoorageApp, new_user: UserFactory) -> None:
    bob = await new_user("bob")
    token = (await bob.post(f"{API}/tokens", json={"label": "ci"})).json()
    async with as_user(app, "bob", token["secret"]) as by_token:
        assert (await by_token.get(f"{API}/me")).status_code == 200
        assert (await bob.delete(f"{API}/tokens/{token['id']}")).status_code == 204
        assert (await by_token.get(f"{API}/me")).status_code == 401


async def test_deleted_users_token_is_refused(
    app: MoorageApp, client: httpx.AsyncClient, new_user: UserFactory
) -> None:
    bob = await new_user("bob")
    secret = (await bob.post(f"{API}/tokens", json={"label": "ci"})).json()["secret"]
    async with as_user(app, "bob", secret) as by_token:
        assert (await by_token.get(f"{API}/me")).status_code == 200
        assert (await client.delete(f"{API}/users/bob")).status_code == 204
        assert (await by_token.get(f"{API}/me")).status_code == 401
    # A new user of the same name does not inherit the old one's tokens.
    await client.post(f"{API}/users", json={"username": "bob", "password": PASSWORD})
    async with as_user(app, "bob", secret) as by_token:
        assert (await by_token.get(f"{API}/me")).status_code == 401


async def test_deactivated_user_is_refused(client: httpx.AsyncClient, new_user: UserFactory) -> None:
    bob = await new_user("bob")
    assert (await bob.get(f"{API}/me")).status_code == 200
    r = await client.patch(f"{API}/users/bob", json={"isActive": False})
    assert r.status_code == 200
    assert (await bob.get(f"{API}/me")).status_code == 401
