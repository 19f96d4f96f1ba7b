"""The permission matrix: team grants (none, read-only, read-write, admin; on the repository or
on the whole organization), crossed with the management operations on a private repository."""

from __future__ import annotations

import httpx
import pytest
from tests.api.helpers import API, UserFactory, make_repository

TEAMS = f"{API}/organizations/acme/teams"
REPO = f"{API}/repositories/acme/app"

OPERATIONS = ("list", "get", "update", "grant", "revoke", "grant-namespace", "delete")
# Expected status per operation ("list": whether the repository is listed).
EXPECTED: dict[str, dict[str, int | bool]] = {
    "none": {
        "list": False,
        "get": 404,
        "update": 404,
        "grant": 403,
        "revoke": 403,
        "grant-namespace": 403,
        "delete": 404,
    },
    "read-only": {
        "list": True,
        "get": 200,
        "update": 403,
        "grant": 403,
        "revoke": 403,
        "grant-namespace": 403,
        "delete": 403,
    },
    "read-write": {
        "list": True,
        "get": 200,
        "update": 403,
        "grant": 403,
        "revoke": 403,
        "grant-namespace": 403,
        "delete": 403,
    },
    "admin": {
        "list": True,
        "get": 200,
        "update": 200,
        "grant": 200,
        "revoke": 204,
        "grant-namespace": 403,
        "delete": 204,
    },
    "owner": {
        "list": True,
        "get": 200,
        "update": 200,
        "grant": 200,
        "revoke": 204,
        "grant-namespace": 200,
        "delete": 204,
    },
}


async def _run(user: httpx.AsyncClient, operation: str) -> int | bool:
    if operation == "list":
        r = await user.get(f"{API}/repositories")
        assert r.status_code == 200
        return "acme/app" in [i["name"] for i in r.json()["items"]]
    if operation == "get":
        r = await user.get(REPO)
    elif operation == "update":
        r = await user.patch(REPO, json={"description": "changed", "visibility": "private"})
    elif operation == "grant":
        r = await user.put(f"{TEAMS}/ops/access/repositories/acme/app", json={"level": "read-write"})
    elif operation == "revoke":
        r = await user.delete(f"{TEAMS}/auditors/access/repositories/acme/app")
    elif operation == "grant-namespace":
        r = await user.put(f"{TEAMS}/ops/access/namespace", json={"level": "read-only"})
    else:
        r = await user.delete(REPO)
    assert r.headers["content-type"] == "application/json" or r.status_code == 204
    return r.status_code


CASES = [
    ("none", "team"),
    *(
        (level, scope)
        for level in ("read-only", "read-write", "admin")
        for scope in ("repository", "namespace")
    ),
    ("owner", "organization"),
]


@pytest.mark.parametrize(("level", "scope"), CASES)
async def test_matrix(client: httpx.AsyncClient, new_user: UserFactory, level: str, scope: str) -> None:
    await client.post(f"{API}/organizations", json={"name": "acme"})
    await make_repository(client, "acme/app")  # private
    for team in ("devs", "ops", "auditors"):
        assert (await client.post(TEAMS, json={"name": team})).status_code == 201
    r = await client.put(f"{TEAMS}/auditors/access/repositories/acme/app", json={"level": "read-only"})
    assert r.status_code == 200
    bob = await new_user("bob")
    if level == "owner":
        await client.put(f"{API}/organizations/acme/members/bob", json={"role": "owner"})
    else:
        assert (await client.put(f"{TEAMS}/devs/members/bob")).status_code == 200
        if level != "none":
            target = "access/namespace" if scope == "namespace" else "access/repositories/acme/app"
            assert (await client.put(f"{TEAMS}/devs/{target}", json={"level": level})).status_code == 200
            if level in ("read-only", "read-write"):
                assert (await bob.get(REPO)).json()["level"] == level

    results = {op: await _run(bob, op) for op in OPERATIONS}
    assert results == EXPECTED[level]

    # Nothing was changed by a refused operation.
    repo = await client.get(REPO)
    if EXPECTED[level]["delete"] == 204:
        assert repo.status_code == 404
        return
    assert repo.json()["description"] is None
    access = (await client.get(f"{TEAMS}/ops")).json()["access"]
    assert access == []
    assert (await client.get(f"{TEAMS}/auditors")).json()["access"] != []


async def test_grants_add_up_across_teams(client: httpx.AsyncClient, new_user: UserFactory) -> None:
    await client.post(f"{API}/organizations", json={"name": "acme"})
    await make_repository(client, "acme/app")
    bob = await new_user("bob")
    for team, level in (("readers", "read-only"), ("writers", "read-write")):
        await client.post(TEAMS, json={"name": team})
        await client.put(f"{TEAMS}/{team}/members/bob")
        await client.put(f"{TEAMS}/{team}/access/repositories/acme/app", json={"level": level})
    assert (await bob.get(REPO)).json()["level"] == "read-write"
    await client.put(f"{TEAMS}/readers/access/namespace", json={"level": "admin"})
    assert (await bob.get(REPO)).json()["level"] == "admin"
    # Leaving the organization drops every grant that came with its teams.
    await client.delete(f"{API}/organizations/acme/members/bob")
    assert (await bob.get(REPO)).status_code == 404
