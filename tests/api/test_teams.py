"""Teams: members, descriptions and access grants on repositories and namespaces."""

from __future__ import annotations

import httpx
from tests.api.helpers import API, UserFactory, make_repository

TEAMS = f"{API}/organizations/acme/teams"


async def _acme(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"{API}/organizations", json={"name": "acme"})).status_code == 201


async def test_team_lifecycle(client: httpx.AsyncClient, new_user: UserFactory) -> None:
    await _acme(client)
    bob = await new_user("bob")
    r = await client.post(TEAMS, json={"name": "devs", "description": "Developers"})
    assert r.status_code == 201
    assert r.json() == {
        "organization": "acme",
        "name": "devs",
        "description": "Developers",
        "members": [],
        "access": [],
    }
    assert (await client.post(TEAMS, json={"name": "devs"})).status_code == 409
    assert (await client.post(TEAMS, json={"name": "Dev Ops"})).json()["field"] == "name"
    assert (await client.get(TEAMS)).json() == [{"name": "devs", "description": "Developers"}]
    r = await client.patch(f"{TEAMS}/devs", json={"description": "People who ship"})
    assert r.json()["description"] == "People who ship"
    # Outsiders may not see or change the team.
    assert (await bob.get(f"{TEAMS}/devs")).status_code == 403
    assert (await bob.patch(f"{TEAMS}/devs", json={"description": "x"})).status_code == 403
    assert (await bob.post(TEAMS, json={"name": "mine"})).status_code == 403
    r = await client.put(f"{TEAMS}/devs/members/bob")
    assert (r.status_code, r.json()) == (200, {"username": "bob"})
    # Joining a team makes bob a member of the organization, who may now look at the team.
    assert (await bob.get(f"{TEAMS}/devs")).json()["members"] == ["bob"]
    org = (await client.get(f"{API}/organizations/acme")).json()
    assert {"username": "bob", "role": "member"} in org["members"]
    assert (await bob.delete(f"{TEAMS}/devs")).status_code == 403
    assert (await client.delete(f"{TEAMS}/devs/members/bob")).status_code == 204
    assert (await client.delete(f"{TEAMS}/devs/members/bob")).status_code == 404
    assert (await client.put(f"{TEAMS}/devs/members/nobody")).status_code == 404
    assert (await client.get(f"{TEAMS}/nope")).status_code == 404
    assert (await client.delete(f"{TEAMS}/devs")).status_code == 204
    assert (await client.get(f"{TEAMS}/devs")).status_code == 404
    assert (await client.get(f"{API}/organizations/nope/teams")).status_code == 404


async def test_access_grants(client: httpx.AsyncClient) -> None:
    await _acme(client)
    await client.post(TEAMS, json={"name": "devs"})
    await make_repository(client, "acme/app")
    await make_repository(client, "acme/tools/build")
    r = await client.put(f"{TEAMS}/devs/access/repositories/acme/app", json={"level": "read-write"})
    assert (r.status_code, r.json()) == (
        200,
        {"kind": "repository", "name": "acme/app", "level": "read-write"},
    )
    r = await client.put(f"{TEAMS}/devs/access/repositories/acme/tools/build", json={"level": "admin"})
    assert r.json()["name"] == "acme/tools/build"
    r = await client.put(f"{TEAMS}/devs/access/namespace", json={"level": "read-only"})
    assert r.json() == {"kind": "namespace", "name": "acme", "level": "read-only"}
    access = (await client.get(f"{TEAMS}/devs")).json()["access"]
    assert access == [
        {"kind": "namespace", "name": "acme", "level": "read-only"},
        {"kind": "repository", "name": "acme/app", "level": "read-write"},
        {"kind": "repository", "name": "acme/tools/build", "level": "admin"},
    ]
    # Changing a grant replaces it.
    await client.put(f"{TEAMS}/devs/access/repositories/acme/app", json={"level": "read-only"})
    assert {"kind": "repository", "name": "acme/app", "level": "read-only"} in (
        await client.get(f"{TEAMS}/devs")
    ).json()["access"]
    r = await client.put(f"{TEAMS}/devs/access/repositories/acme/app", json={"level": "owner"})
    assert (r.status_code, r.json()["field"]) == (422, "level")
    assert (await client.put(f"{TEAMS}/devs/access/repositories/acme/app", json={})).json()[
        "field"
    ] == "level"
    assert (
        await client.put(f"{TEAMS}/devs/access/repositories/acme/nope", json={"level": "admin"})
    ).status_code == 404
    # Teams are granted their own organization's repositories only.
    await make_repository(client, "admin/private")
    r = await client.put(f"{TEAMS}/devs/access/repositories/admin/private", json={"level": "admin"})
    assert r.status_code == 422
    assert (await client.delete(f"{TEAMS}/devs/access/repositories/acme/app")).status_code == 204
    assert (await client.delete(f"{TEAMS}/devs/access/repositories/acme/app")).status_code == 404
    assert (await client.delete(f"{TEAMS}/devs/access/namespace")).status_code == 204
    assert (await client.delete(f"{TEAMS}/devs/access/namespace")).status_code == 404
    access = (await client.get(f"{TEAMS}/devs")).json()["access"]
    assert access == [{"kind": "repository", "name": "acme/tools/build", "level": "admin"}]
    entries = (await client.get(f"{API}/audit")).json()["items"]
    grants = [(e["action"], e["target"], e["detail"]) for e in entries if e["action"].startswith("access.")]
    assert ("access.grant", "acme/app", {"team": "acme/devs", "level": "read-write"}) in grants
    assert ("access.grant", "acme", {"team": "acme/devs", "level": "read-only"}) in grants
    assert ("access.revoke", "acme/app", {"team": "acme/devs"}) in grants
    assert ("access.revoke", "acme", {"team": "acme/devs"}) in grants
    assert all(e["actor"] == "admin" for e in entries if e["action"].startswith("access."))
