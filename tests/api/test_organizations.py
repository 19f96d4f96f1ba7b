"""Organizations and their members."""

from __future__ import annotations

import httpx
from tests.api.helpers import API, UserFactory, make_repository


async def test_create_get_list_delete(client: httpx.AsyncClient, new_user: UserFactory) -> None:
    bob = await new_user("bob")
    r = await bob.post(f"{API}/organizations", json={"name": "acme"})
    assert r.status_code == 201
    assert r.json() == {"name": "acme", "members": [{"username": "bob", "role": "owner"}], "teams": []}
    await client.post(f"{API}/organizations", json={"name": "zeta"})
    listing = (await bob.get(f"{API}/organizations", params={"perPage": 1})).json()
    assert listing == {"items": [{"name": "acme"}], "total": 2, "page": 1, "perPage": 1}
    assert (await bob.post(f"{API}/organizations/acme/teams", json={"name": "devs"})).status_code == 201
    r = await bob.get(f"{API}/organizations/acme")
    assert r.json()["teams"] == [{"name": "devs", "description": None}]
    assert (await bob.delete(f"{API}/organizations/zeta")).status_code == 403
    assert (await bob.delete(f"{API}/organizations/acme")).status_code == 204
    assert (await bob.get(f"{API}/organizations/acme")).status_code == 404


async def test_names_are_checked(client: httpx.AsyncClient, new_user: UserFactory) -> None:
    await new_user("bob")
    for name in ("bob", "admin"):
        r = await client.post(f"{API}/organizations", json={"name": name})
        assert (r.status_code, r.json()["field"]) == (409, "name")
    for name in ("../up", "Acme", "a/b", "", "x" * 65):
        r = await client.post(f"{API}/organizations", json={"name": name})
        assert (r.status_code, r.json()["field"]) == (422, "name"), name
    assert (await client.get(f"{API}/organizations/bob")).status_code == 404  # a user, not an organization


async def test_organization_with_repositories_is_not_deleted(client: httpx.AsyncClient) -> None:
    await client.post(f"{API}/organizations", json={"name": "acme"})
    await make_repository(client, "acme/app")
    r = await client.delete(f"{API}/organizations/acme")
    assert r.status_code == 422
    assert (await client.get(f"{API}/organizations/acme")).status_code == 200


async def test_members(client: httpx.AsyncClient, new_user: UserFactory) -> None:
    bob = await new_user("bob")
    carol = await new_user("carol")
    await bob.post(f"{API}/organizations", json={"name": "acme"})
    r = await bob.put(f"{API}/organizations/acme/members/carol", json={"role": "member"})
    assert r.status_code == 200
    assert r.json() == {"username": "carol", "role": "member"}
    # Members may not manage members; owners may.
    assert (
        await carol.put(f"{API}/organizations/acme/members/carol", json={"role": "owner"})
    ).status_code == 403
    assert (await carol.delete(f"{API}/organizations/acme/members/bob")).status_code == 403
    assert (
        await bob.put(f"{API}/organizations/acme/members/carol", json={"role": "owner"})
    ).status_code == 200
    members = (await client.get(f"{API}/organizations/acme")).json()["members"]
    assert members == [{"username": "bob", "role": "owner"}, {"username": "carol", "role": "owner"}]
    r = await bob.put(f"{API}/organizations/acme/members/carol", json={"role": "boss"})
    assert (r.status_code, r.json()["field"]) == (422, "role")
    assert (
        await bob.put(f"{API}/organizations/acme/members/nobody", json={"role": "member"})
    ).status_code == 404
    assert (
        await bob.put(f"{API}/organizations/nope/members/carol", json={"role": "member"})
    ).status_code == 404
    assert (await bob.delete(f"{API}/organizations/acme/members/carol")).status_code == 204
    assert (await bob.delete(f"{API}/organizations/acme/members/carol")).status_code == 404
    entries = (await client.get(f"{API}/audit")).json()["items"]
    changes = [
        (e["action"], e["target"], e["detail"]) for e in entries if e["action"].startswith("organization.")
    ]
    assert ("organization.member.set", "acme/carol", {"role": "owner"}) in changes
    assert ("organization.member.remove", "acme/carol", None) in changes
    assert ("organization.create", "acme", None) in changes
