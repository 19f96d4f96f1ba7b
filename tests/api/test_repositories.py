"""Repositories: create, list with filters, get (nested names), settings, delete."""

from __future__ import annotations

import httpx
import pytest
from tests.api.helpers import API, UserFactory, make_repository


async def test_create_get_update_delete(client: httpx.AsyncClient) -> None:
    r = await client.post(
        f"{API}/repositories",
        json={
            "name": "admin/words",
            "visibility": "public",
            "description": "Word lists",
            "immutableTags": True,
        },
    )
    assert r.status_code == 201
    body = r.json()
    assert body == {
        "name": "admin/words",
        "namespace": "admin",
        "visibility": "public",
        "description": "Word lists",
        "immutableTags": True,
        "createdAt": body["createdAt"],
        "level": "admin",
        "scanOnPush": None,
    }
    assert (await client.get(f"{API}/repositories/admin/words")).json() == body
    r = await client.patch(
        f"{API}/repositories/admin/words", json={"visibility": "private", "immutableTags": False}
    )
    assert r.status_code == 200
    assert (r.json()["visibility"], r.json()["immutableTags"], r.json()["description"]) == (
        "private",
        False,
        "Word lists",
    )
    assert (
        await client.patch(f"{API}/repositories/admin/words", json={"visibility": "secret"})
    ).status_code == 422
    assert (await client.delete(f"{API}/repositories/admin/words")).status_code == 204
    assert (await client.get(f"{API}/repositories/admin/words")).status_code == 404
    assert (await client.delete(f"{API}/repositories/admin/words")).status_code == 404


async def test_defaults_and_conflicts(client: httpx.AsyncClient) -> None:
    body = await make_repository(client, "admin/app")
    assert (body["visibility"], body["description"], body["immutableTags"]) == ("private", None, False)
    r = await client.post(f"{API}/repositories", json={"name": "admin/app"})
    assert (r.status_code, r.json()["field"]) == (409, "name")
    r = await client.post(f"{API}/repositories", json={"name": "nobody/app"})
    assert r.status_code == 404


async def test_nested_names(client: httpx.AsyncClient) -> None:
    await make_repository(client, "admin/a/b/c")
    r = await client.get(f"{API}/repositories/admin/a/b/c")
    assert (r.status_code, r.json()["name"], r.json()["namespace"]) == (200, "admin/a/b/c", "admin")
    assert (
        await client.patch(f"{API}/repositories/admin/a/b/c", json={"description": "deep"})
    ).status_code == 200
    assert (await client.get(f"{API}/repositories/admin/a/b")).status_code == 404
    assert (await client.delete(f"{API}/repositories/admin/a/b/c")).status_code == 204


@pytest.mark.parametrize(
    "name",
    [
        "admin/../etc",
        "admin/./x",
        "../admin/x",
        "admin//x",
        "admin/x/",
        "/admin/x",
        "admin/UPPER",
        "noslash",
        "admin/x\u0000",
    ],
)
async def test_path_tricks_in_names_are_refused(client: httpx.AsyncClient, name: str) -> None:
    r = await client.post(f"{API}/repositories", json={"name": name})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "name"
    assert (await client.get(f"{API}/repositories")).json()["total"] == 0


@pytest.mark.parametrize(
    "path", ["admin/%2e%2e/etc", "admin/..%2fadmin", "..%2f..%2fetc/passwd", "admin/x%00"]
)
async def test_path_tricks_in_urls_find_nothing(client: httpx.AsyncClient, path: str) -> None:
    await make_repository(client, "admin/x")
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(method, f"{API}/repositories/{path}", json={} if method == "PATCH" else None)
        assert r.status_code in (404, 422), (method, path, r.text)
    assert (await client.get(f"{API}/repositories/admin/x")).status_code == 200


async def test_list_filters_and_pagination(client: httpx.AsyncClient) -> None:
    await client.post(f"{API}/organizations", json={"name": "acme"})
    for name, visibility in [
        ("admin/one", "public"),
        ("admin/two", "private"),
        ("acme/one", "public"),
        ("acme/web_ui", "private"),
    ]:
        await make_repository(client, name, visibility=visibility)

    async def names(**params: str | int) -> list[str]:
        r = await client.get(f"{API}/repositories", params=params)
        assert r.status_code == 200, r.text
        return [i["name"] for i in r.json()["items"]]

    assert await names() == ["acme/one", "acme/web_ui", "admin/one", "admin/two"]
    assert await names(namespace="acme") == ["acme/one", "acme/web_ui"]
    assert await names(visibility="public") == ["acme/one", "admin/one"]
    assert await names(q="one") == ["acme/one", "admin/one"]
    assert await names(q="_") == ["acme/web_ui"]  # LIKE wildcards are literal
    assert await names(q="%") == []
    assert await names(namespace="admin", visibility="private") == ["admin/two"]
    r = await client.get(f"{API}/repositories", params={"perPage": 3})
    assert r.json()["total"] == 4
    assert 'page=2>; rel="next"' in r.headers["link"]
    assert await names(perPage=3, page=2) == ["admin/two"]
    assert (await client.get(f"{API}/repositories", params={"visibility": "hidden"})).json()[
        "field"
    ] == "visibility"


async def test_others_see_public_repositories_only(client: httpx.AsyncClient, new_user: UserFactory) -> None:
    bob = await new_user("bob")
    await make_repository(client, "admin/open", visibility="public")
    await make_repository(client, "admin/closed")
    await make_repository(bob, "bob/mine")
    listing = (await bob.get(f"{API}/repositories")).json()
    assert [(i["name"], i["level"]) for i in listing["items"]] == [
        ("admin/open", "read-only"),
        ("bob/mine", "admin"),
    ]
    assert (
        await bob.get(f"{API}/repositories/admin/closed")
    ).status_code == 404  # not 403: existence is private
    assert (await bob.patch(f"{API}/repositories/admin/closed", json={"description": "x"})).status_code == 404
    assert (await bob.delete(f"{API}/repositories/admin/closed")).status_code == 404
    assert (await bob.patch(f"{API}/repositories/admin/open", json={"description": "x"})).status_code == 403
    assert (await bob.delete(f"{API}/repositories/admin/open")).status_code == 403
    r = await bob.post(f"{API}/repositories", json={"name": "admin/sneaky"})
    assert r.status_code == 403
    # The administrator sees everything.
    assert (await client.get(f"{API}/repositories")).json()["total"] == 3
