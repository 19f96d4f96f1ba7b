"""Promotion and pruning policies through /api/v1: CRUD, runs, bad input refused with nothing
changed, and only repository administrators."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from tests.api.helpers import API, UserFactory, make_repository
from tests.conftest import ServerProcess
from tests.oci import fixtures_cnab as fx
from tests.services.test_artifacts import push

from moorage.app import MoorageApp
from moorage.services.policies import JOB_KIND as PROMOTION_JOB
from moorage.services.pruning import JOB_KIND as PRUNING_JOB

REPO = "lab/app"
PROMOTION = f"{API}/repositories/{REPO}/promotion-policies"
PRUNING = f"{API}/repositories/{REPO}/pruning-policies"


@pytest.fixture
async def repo(client: httpx.AsyncClient) -> str:
    r = await client.post(f"{API}/organizations", json={"name": "lab"})
    assert r.status_code == 201, r.text
    await make_repository(client, REPO)
    return REPO


async def run_jobs(app: MoorageApp, kind: str) -> list[dict[str, Any]]:
    out = []
    while (job := await app.services.jobs.claim_next()) is not None:
        assert job.kind == kind
        await app.services.jobs.run(job)
        done = await app.services.jobs.get(job.id)
        assert done.status == "succeeded", done.error
        out.append(done.result or {})
    return out


async def test_promotion_policy_crud_and_promote_now(
    app: MoorageApp, client: httpx.AsyncClient, repo: str
) -> None:
    body = {
        "target": "lab/stable",
        "rules": [
            {"field": "tag", "operator": "matches", "value": r"v\d+"},
            {"field": "vulnerability.critical", "operator": "eq", "value": 0},
            {"field": "pushed", "operator": "olderthan", "value": "0s"},
        ],
        "tagTemplate": "%n-stable",
        "enabled": False,
    }
    r = await client.post(PROMOTION, json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert {k: created[k] for k in body} == body
    assert created["repository"] == REPO
    assert created["createdBy"] == "admin"
    policy_url = f"{PROMOTION}/{created['id']}"
    assert (await client.get(PROMOTION)).json() == [created]
    assert (await client.get(policy_url)).json() == created

    r = await client.patch(
        policy_url, json={"rules": [{"field": "tag", "operator": "startswith", "value": "v"}]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["rules"] == [{"field": "tag", "operator": "startswith", "value": "v"}]
    assert r.json()["tagTemplate"] == "%n-stable"  # untouched

    image = fx.image(seed="api")
    await push(client, repo, image, "v7")
    r = await client.post(f"{policy_url}/run", json={"tag": "v7"})
    assert r.status_code == 202, r.text
    job_id = r.json()["jobId"]
    (result,) = await run_jobs(app, PROMOTION_JOB)
    assert result["outcome"] == "promoted"
    r = await client.get("/v2/lab/stable/manifests/v7-stable", headers={"Accept": image.media_type})
    assert r.headers["Docker-Content-Digest"] == image.digest
    job = (await client.get(f"{API}/jobs/{job_id}")).json()
    assert "promoted" in job["log"]

    r = await client.delete(policy_url)
    assert r.status_code == 204
    assert (await client.get(policy_url)).status_code == 404
    assert (await client.get(PROMOTION)).json() == []


BAD_PROMOTIONS = [
    ({"rules": [{"field": "colour", "operator": "eq", "value": "x"}]}, "rules", "unknown field 'colour'"),
    ({"rules": [{"field": "tag", "operator": "like", "value": "x"}]}, "rules", "unknown operator 'like'"),
    (
        {"rules": [{"field": "tag", "operator": "matches", "value": "v(\\d"}]},
        "rules",
        "invalid regular expression",
    ),
    (
        {"rules": [{"field": "pushed", "operator": "olderthan", "value": "a month"}]},
        "rules",
        "units s, m, h, d or w",
    ),
    ({"tagTemplate": "%n-%x"}, "tagTemplate", "unknown field %x"),
    ({"tagTemplate": "-%n"}, "tagTemplate", "not a valid tag"),
    ({"target": REPO}, "target", "another repository than the source"),
    ({"target": "Not Valid"}, "target", "invalid"),
    ({"rules": [{"field": "tag", "op": "eq", "value": "x"}]}, "rules", "Extra inputs are not permitted"),
    ({"colour": "blue"}, "colour", "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD_PROMOTIONS)
async def test_bad_promotion_policies_are_refused_and_change_nothing(
    client: httpx.AsyncClient, repo: str, change: dict[str, Any], field: str, message: str
) -> None:
    good = {"target": "lab/stable", "rules": [{"field": "tag", "operator": "eq", "value": "v1"}]}
    r = await client.post(PROMOTION, json={**good, **change})
    assert r.status_code == 422, r.text
    assert r.json()["field"].startswith(field)
    assert message in r.json()["message"]
    assert (await client.get(PROMOTION)).json() == []
    # and the same change to an existing policy leaves it as it was
    created = (await client.post(PROMOTION, json=good)).json()
    r = await client.patch(f"{PROMOTION}/{created['id']}", json=change)
    assert r.status_code == 422, r.text
    assert (await client.get(f"{PROMOTION}/{created['id']}")).json() == created


async def test_pruning_policy_crud_dry_run_and_run(
    app: MoorageApp, client: httpx.AsyncClient, repo: str
) -> None:
    for i in range(1, 5):
        await push(client, repo, fx.image(seed=f"prune-{i}"), f"build-{i}")
    body = {"rules": [{"field": "tag", "operator": "startswith", "value": "build-"}], "keepNewest": 1}
    r = await client.post(PRUNING, json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["keepNewest"] == 1
    assert created["maxTags"] is None
    assert created["cron"] is None
    policy_url = f"{PRUNING}/{created['id']}"

    r = await client.post(f"{policy_url}/run", params={"dryRun": "true"})
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["dryRun"] is True
    assert [p["tag"] for p in plan["pruned"]] == ["build-3", "build-2", "build-1"]
    assert [p["tag"] for p in plan["kept"]] == ["build-4"]
    assert len((await client.get(f"/v2/{repo}/tags/list")).json()["tags"]) == 4

    r = await client.patch(policy_url, json={"keepNewest": 2, "cron": "30 2 * * 1"})
    assert r.status_code == 200, r.text
    assert (r.json()["keepNewest"], r.json()["cron"]) == (2, "30 2 * * 1")
    schedules = (await client.get(f"{API}/schedules")).json()
    items = schedules["items"] if isinstance(schedules, dict) else schedules
    assert any(s["name"] == f"pruning:{created['id']}" and s["cron"] == "30 2 * * 1" for s in items)

    r = await client.post(f"{policy_url}/run")
    assert r.status_code == 202, r.text
    assert "jobId" in r.json()
    (result,) = await run_jobs(app, PRUNING_JOB)
    assert sorted(result["pruned"]) == ["build-1", "build-2"]
    assert sorted((await client.get(f"/v2/{repo}/tags/list")).json()["tags"]) == ["build-3", "build-4"]

    assert (await client.delete(policy_url)).status_code == 204
    assert (await client.get(PRUNING)).json() == []


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"cron": "every day"}, "cron", "minute hour day month weekday"),
        ({"cron": "0 25 * * *"}, "cron", "does not parse"),
        ({"maxTags": 0}, "maxTags", "greater than or equal to 1"),
        ({"keepNewest": -1}, "keepNewest", "greater than or equal to 0"),
        ({"rules": [{"field": "tag", "operator": "oneof", "value": []}]}, "rules", "non-empty list"),
        ({"rules": [], "keepNewest": None}, "rules", "needs rules, keepNewest or maxTags"),
    ],
)
async def test_bad_pruning_policies_are_refused_and_change_nothing(
    app: MoorageApp, client: httpx.AsyncClient, repo: str, change: dict[str, Any], field: str, message: str
) -> None:
    good: dict[str, Any] = {"keepNewest": 5}
    r = await client.post(PRUNING, json={**good, **change})
    assert r.status_code == 422, r.text
    assert r.json()["field"].startswith(field)
    assert message in r.json()["message"]
    assert (await client.get(PRUNING)).json() == []
    assert await app.services.jobs.schedules("pruning:") == []


async def test_only_repository_administrators_manage_policies(
    client: httpx.AsyncClient, new_user: UserFactory, repo: str
) -> None:
    bob = await new_user("bob")
    eve = await new_user("eve")
    await make_repository(bob, "bob/app", visibility="public")
    own = f"{API}/repositories/bob/app/promotion-policies"
    r = await bob.post(own, json={"target": "bob/app-stable"})  # bob may create it in his namespace
    assert r.status_code == 201, r.text
    r = await bob.post(own, json={"target": "lab/app"})  # exists, but bob may not push there
    assert r.status_code == 403, r.text
    assert r.json()["field"] == "target"
    r = await bob.post(own, json={"target": "lab/new-one"})  # may not create in lab
    assert r.status_code == 403, r.text
    assert r.json()["field"] == "target"
    # eve can read bob's public repository, but may not see or change its policies
    assert (await eve.get(own)).status_code == 403
    assert (await eve.post(own, json={"target": "eve/x"})).status_code == 403
    assert (
        await eve.post(f"{API}/repositories/bob/app/pruning-policies", json={"keepNewest": 1})
    ).status_code == 403
    # and a private repository's policies do not exist for her
    assert (await eve.get(PROMOTION)).status_code == 404
    assert (await eve.get(PRUNING)).status_code == 404
    assert len((await bob.get(own)).json()) == 1


async def test_a_running_server_promotes_and_prunes_by_itself(server: ServerProcess) -> None:
    """The consumers and job handlers are wired into ``moorage serve``'s background loops."""
    async with httpx.AsyncClient(
        base_url=server.url, auth=(server.username, server.password), timeout=30
    ) as c:
        r = await c.post(f"{API}/organizations", json={"name": "lab"})
        assert r.status_code == 201, r.text
        await make_repository(c, REPO)
        r = await c.post(PROMOTION, json={"target": "lab/released", "tagTemplate": "%n-released"})
        assert r.status_code == 201, r.text
        r = await c.post(PRUNING, json={"maxTags": 2})
        assert r.status_code == 201, r.text
        images = [fx.image(seed=f"served-{i}") for i in range(3)]

        async def settled(want_released: int, want_source: list[str]) -> list[str]:
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                released = (await c.get("/v2/lab/released/tags/list")).json().get("tags") or []
                source = (await c.get(f"/v2/{REPO}/tags/list")).json().get("tags") or []
                if len(released) == want_released and sorted(source) == want_source:
                    return list(released)
                assert asyncio.get_running_loop().time() < deadline, (released, source)
                await asyncio.sleep(0.2)

        await push(c, REPO, images[0], "r0")
        await push(c, REPO, images[1], "r1")
        await settled(2, ["r0", "r1"])
        await push(c, REPO, images[2], "r2")  # over the limit of 2: r0 goes
        released = await settled(3, ["r1", "r2"])
        assert sorted(released) == ["r0-released", "r1-released", "r2-released"]
        r = await c.get("/v2/lab/released/manifests/r0-released", headers={"Accept": images[0].media_type})
        assert r.headers["Docker-Content-Digest"] == images[0].digest
        events = (await c.get(f"{API}/events", params={"type": "PROMOTION"})).json()
        items = events["items"] if isinstance(events, dict) else events
        assert len(items) == 3
