"""Users: ``/users`` and ``/me``."""

from __future__ import annotations

import httpx
import pytest
from tests.api.helpers import API, PASSWORD, UserFactory, make_repository


async def test_create_get_list_and_me(client: httpx.AsyncClient, new_user: UserFactory) -> None:
    bob = await new_user("bob", fullName="Bob Builder", email="bob@example.test")
    r = await client.get(f"{API}/users/bob")
    assert r.status_code == 200
    body = r.json()
    assert body == {
        "username": "bob",
        "fullName": "Bob Builder",
        "email": "bob@example.test",
        "isAdmin": False,
        "isActive": True,
        "createdAt": body["createdAt"],
    }
    assert body["createdAt"].endswith("Z")
    assert "password" not in r.text
    assert (await bob.get(f"{API}/me")).json()["username"] == "bob"
    listing = (await bob.get(f"{API}/users")).json()
    assert [u["username"] for u in listing["items"]] == ["admin", "bob"]
    assert (listing["total"], listing["page"], listing["perPage"]) == (2, 1, 50)


async def test_only_administrators_create_and_delete_users(
    client: httpx.AsyncClient, new_user: UserFactory
) -> None:
    bob = await new_user("bob")
    r = await bob.post(f"{API}/users", json={"username": "eve", "password": PASSWORD})
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"
    assert (await bob.delete(f"{API}/users/admin")).status_code == 403
    assert (await client.get(f"{API}/users/eve")).status_code == 404
    assert (await client.delete(f"{API}/users/bob")).status_code == 204
    assert (await client.get(f"{API}/users/bob")).status_code == 404
    assert (await client.delete(f"{API}/users/bob")).status_code == 404


async def test_administrators_cannot_delete_or_demote_themselves(client: httpx.AsyncClient) -> None:
    assert (await client.delete(f"{API}/users/admin")).status_code == 422
    r = await client.patch(f"{API}/users/admin", json={"isActive": False})
    assert (r.status_code, r.json()["field"]) == (422, "isActive")
    r = await client.patch(f"{API}/users/admin", json={"isAdmin": False})
    assert (r.status_code, r.json()["field"]) == (422, "isAdmin")
    assert (await client.get(f"{API}/me")).json()["isAdmin"] is True


async def test_user_with_repositories_is_not_deleted(
    client: httpx.AsyncClient, new_user: UserFactory
) -> None:
    bob = await new_user("bob")
    await make_repository(bob, "bob/app")
    r = await client.delete(f"{API}/users/bob")
    assert r.status_code == 422
    assert "repositories" in r.json()["message"]


async def test_duplicate_names_conflict(client: httpx.AsyncClient, new_user: UserFactory) -> None:
    await new_user("bob")
    r = await client.post(f"{API}/users", json={"username": "bob", "password": PASSWORD})
    assert r.status_code == 409
    assert r.json()["field"] == "username"
    assert (await client.post(f"{API}/organizations", json={"name": "acme"})).status_code == 201
    r = await client.post(f"{API}/users", json={"username": "acme", "password": PASSWORD})
    assert r.status_code == 409


async def test_self_service_changes(client: httpx.AsyncClient, new_user: UserFactory) -> None:
    bob = await new_user("bob")
    r = await bob.patch(f"{API}/users/bob", json={"fullName": "Robert", "email": "r@example.test"})
    assert r.status_code == 200
    assert (r.json()["fullName"], r.json()["email"]) == ("Robert", "r@example.test")
    # Neither promotion nor changing someone else.
    assert (await bob.patch(f"{API}/users/bob", json={"isAdmin": True})).status_code == 403
    assert (await bob.patch(f"{API}/users/bob", json={"isActive": True})).status_code == 403
    assert (await bob.patch(f"{API}/users/admin", json={"fullName": "Pwned"})).status_code == 403
    # A new password replaces the old one.
    assert (await bob.patch(f"{API}/users/bob", json={"password": "a-brand-new-password"})).status_code == 200
    assert (await bob.get(f"{API}/me")).status_code == 401
    bob.auth = httpx.BasicAuth("bob", "a-brand-new-password")
    assert (await bob.get(f"{API}/me")).status_code == 200
    # Administrators promote and deactivate.
    r = await client.patch(f"{API}/users/bob", json={"isAdmin": True})
    assert r.json()["isAdmin"] is True
    assert (await bob.get(f"{API}/audit")).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "../etc", "password": PASSWORD}, "username"),
        ({"username": "a/b", "password": PASSWORD}, "username"),
        ({"username": "UPPER", "password": PASSWORD}, "username"),
        ({"username": "x" * 65, "password": PASSWORD}, "username"),
        ({"username": "", "password": PASSWORD}, "username"),
        ({"username": "nul\u0000", "password": PASSWORD}, "username"),
        ({"username": "carol", "password": "short"}, "password"),
        ({"username": "carol", "password": "mrg_pat_looks-like-a-token"}, "password"),
        ({"username": "carol", "password": "p" * 2000}, "password"),
        ({"username": "carol"}, "password"),
        ({"username": "carol", "password": PASSWORD, "fullName": "f" * 256}, "fullName"),
        ({"username": "carol", "password": PASSWORD, "isadmin": True}, "isadmin"),
        ({"username": "carol", "password": PASSWORD, "isAdmin": "maybe"}, "isAdmin"),
    ],
)
async def test_bad_input_names_the_field(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    r = await client.post(f"{API}/users", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"
    assert r.json()["field"] == field
    assert (await client.get(f"{API}/users")).json()["total"] == 1


async def test_malformed_json_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{API}/users", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_input"


@pytest.mark.parametrize("path", ["/users/..%2f..%2fetc", "/users/%2e%2e", "/users/admin%00"])
async def test_path_tricks_in_user_names_find_nothing(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(API + path)
    assert r.status_code in (404, 422)
    assert r.headers["content-type"] == "application/json"


async def test_pagination_with_link_header(client: httpx.AsyncClient) -> None:
    for i in range(5):
        r = await client.post(f"{API}/users", json={"username": f"user{i}", "password": PASSWORD})
        assert r.status_code == 201
    r = await client.get(f"{API}/users", params={"perPage": 2})
    assert [u["username"] for u in r.json()["items"]] == ["admin", "user0"]
    assert r.json()["total"] == 6
    assert r.headers["link"] == '<http://moorage.test/api/v1/users?perPage=2&page=2>; rel="next"'
    seen: list[str] = []
    url: str | None = f"{API}/users?perPage=2"
    while url:
        r = await client.get(url)
        seen += [u["username"] for u in r.json()["items"]]
        links = httpx.Response(200, headers={"link": r.headers.get("link", "")}).links
        url = links.get("next", {}).get("url")
    assert seen == ["admin", "user0", "user1", "user2", "user3", "user4"]
    r = await client.get(f"{API}/users", params={"perPage": 2, "page": 3})
    assert r.headers["link"] == '<http://moorage.test/api/v1/users?perPage=2&page=2>; rel="prev"'
    assert (await client.get(f"{API}/users", params={"page": 9})).json()["items"] == []
    for bad in ({"perPage": 201}, {"perPage": 0}, {"page": 0}, {"page": "x"}):
        r = await client.get(f"{API}/users", params=bad)
        assert r.status_code == 422
        assert r.json()["field"] == next(iter(bad))
