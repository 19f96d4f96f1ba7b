"""The audit log: administrators only, newest first, paginated; authentications and permission changes."""

from __future__ import annotations

import httpx
from tests.api.helpers import API, UserFactory, make_repository


async def test_only_administrators_read_the_audit_log(new_user: UserFactory) -> None:
    bob = await new_user("bob")
    r = await bob.get(f"{API}/audit")
    assert r.status_code == 403


async def test_records_authentications_and_permission_changes(
    client: httpx.AsyncClient, new_user: UserFactory
) -> None:
    bob = await new_user("bob")
    assert (await bob.get(f"{API}/me")).status_code == 200
    await client.post(f"{API}/organizations", json={"name": "acme"})
    await client.post(f"{API}/organizations/acme/teams", json={"name": "devs"})
    await client.put(f"{API}/organizations/acme/teams/devs/members/bob")
    await make_repository(client, "acme/app")
    await client.put(
        f"{API}/organizations/acme/teams/devs/access/repositories/acme/app", json={"level": "admin"}
    )
    await client.patch(f"{API}/repositories/acme/app", json={"visibility": "public"})
    await client.patch(f"{API}/users/bob", json={"isAdmin": True})
    entries = (await client.get(f"{API}/audit", params={"perPage": 200})).json()["items"]
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)
    seen = {(e["action"], e["actor"], e["target"]) for e in entries}
    assert {
        ("login", "bob", None),
        ("user.create", "admin", "bob"),
        ("organization.create", "admin", "acme"),
        ("team.create", "admin", "acme/devs"),
        ("team.member.add", "admin", "acme/devs"),
        ("repository.create", "admin", "acme/app"),
        ("access.grant", "admin", "acme/app"),
        ("repository.update", "admin", "acme/app"),
        ("user.update", "admin", "bob"),
    } <= seen
    update = next(e for e in entries if e["action"] == "user.update")
    assert update["detail"] == {"changed": ["is_admin"]}


async def test_pagination(client: httpx.AsyncClient) -> None:
    for i in range(4):
        await client.post(f"{API}/tokens", json={"label": f"t{i}"})
    first = await client.get(f"{API}/audit", params={"perPage": 2})
    total = first.json()["total"]
    assert total >= 5
    assert len(first.json()["items"]) == 2
    assert 'rel="next"' in first.headers["link"]
    last_page = (total + 1) // 2
    last = await client.get(f"{API}/audit", params={"perPage": 2, "page": last_page})
    assert "next" not in last.headers["link"]
    assert last.json()["items"][-1]["action"] == "user.create"  # the bootstrap of admin, the oldest entry
