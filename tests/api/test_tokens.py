"""Personal access tokens of the caller."""

from __future__ import annotations

import httpx
from tests.api.helpers import API, UserFactory


async def test_token_lifecycle(client: httpx.AsyncClient, new_user: UserFactory) -> None:
    bob = await new_user("bob")
    r = await bob.post(f"{API}/tokens", json={"label": "  laptop  "})
    assert r.status_code == 201
    created = r.json()
    assert created["secret"].startswith("mrg_pat_")
    assert created["label"] == "laptop"
    assert created["prefix"] == created["secret"][len("mrg_pat_") :][:6]
    assert (created["isActive"], created["lastUsedAt"]) == (True, None)
    listing = (await bob.get(f"{API}/tokens")).json()
    assert listing == [{k: v for k, v in created.items() if k != "secret"}]
    assert created["secret"] not in (await bob.get(f"{API}/tokens")).text
    r = await bob.patch(f"{API}/tokens/{created['id']}", json={"label": "desktop"})
    assert (r.status_code, r.json()["label"]) == (200, "desktop")
    # Tokens belong to their user: others neither see nor touch them.
    assert (await client.get(f"{API}/tokens")).json() == []
    assert (await client.patch(f"{API}/tokens/{created['id']}", json={"label": "x"})).status_code == 404
    assert (await client.delete(f"{API}/tokens/{created['id']}")).status_code == 404
    assert (await bob.delete(f"{API}/tokens/{created['id']}")).status_code == 204
    assert (await bob.get(f"{API}/tokens")).json() == []
    actions = [e["action"] for e in (await client.get(f"{API}/audit")).json()["items"]]
    assert {"token.create", "token.update", "token.delete"} <= set(actions)


async def test_bad_token_input(client: httpx.AsyncClient) -> None:
    for body in ({}, {"label": ""}, {"label": "x" * 256}, {"label": "   "}, {"label": "a", "scope": "all"}):
        r = await client.post(f"{API}/tokens", json=body)
        assert r.status_code == 422, body
        assert r.json()["field"] in ("label", "scope")
    for token_id in ("0", "-1", "abc", str(2**40)):
        r = await client.patch(f"{API}/tokens/{token_id}", json={"label": "x"})
        assert (r.status_code, r.json()["field"]) == (422, "tokenId")
    assert (await client.patch(f"{API}/tokens/12345", json={"label": "x"})).status_code == 404
