"""Pruning through the registry API with real content: keep the newest N, a tag limit after pushes,
dry runs, schedules, and manifests that stay while another tag needs them."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import update
from tests.oci import fixtures_cnab as fx
from tests.scanner.inventory.layerkit import file, layer
from tests.services.test_artifacts import admin, push, push_bundle
from tests.services.test_scanning import oci_image

from moorage.app import MoorageApp
from moorage.db.jobs import JobRow
from moorage.db.tables import schedules
from moorage.services import events as ev
from moorage.services.errors import InvalidInput
from moorage.services.pruning import CONSUMER, JOB_KIND, SCHEDULE_PREFIX

REPO = "lab/pruned"


async def drain(app: MoorageApp) -> list[JobRow]:
    services = app.services
    finished: list[JobRow] = []
    while True:
        handled = await services.events.dispatch(CONSUMER)
        ran = 0
        while (job := await services.jobs.claim_next()) is not None:
            await services.jobs.run(job)
            finished.append(await services.jobs.get(job.id))
            ran += 1
        if not handled and not ran:
            return finished


async def tags(client: httpx.AsyncClient, repo: str = REPO) -> list[str]:
    r = await client.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200, r.text
    return sorted(r.json()["tags"] or [])


@pytest.fixture
async def repo(client: httpx.AsyncClient) -> str:
    r = await client.post("/api/v1/organizations", json={"name": "lab"})
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/repositories", json={"name": REPO})
    assert r.status_code == 201, r.text
    return REPO


async def test_keep_the_newest_n_matching_tags(app: MoorageApp, client: httpx.AsyncClient, repo: str) -> None:
    images = {f"v{i}": fx.image(seed=f"v{i}") for i in range(1, 6)}
    for tag, image in images.items():  # pushed in order: v5 is the newest
        await push(client, repo, image, tag)
    await push(client, repo, images["v1"], "latest")  # the newest tag, on v1's manifest
    service = app.services.pruning
    actor = await admin(app)
    policy = await service.create(
        actor, repo, rules=[{"field": "tag", "operator": "startswith", "value": "v"}], keep_newest=2
    )
    plan = await service.dry_run(actor, repo, policy.id)
    assert plan.dry_run
    assert plan.total_tags == 6
    assert [p.tag for p in plan.pruned] == ["v3", "v2", "v1"]
    kept = {p.tag: p.reason for p in plan.kept}
    assert set(kept) == {"latest", "v5", "v4"}
    assert "does not match" in kept["latest"]
    assert "newest 2" in kept["v5"]
    assert await tags(client) == ["latest", "v1", "v2", "v3", "v4", "v5"]  # a dry run changes nothing

    job_id = await service.run_now(actor, repo, policy.id)
    (job,) = await drain(app)
    assert job.id == job_id
    assert job.kind == JOB_KIND
    assert job.status == "succeeded"
    assert job.result is not None
    assert sorted(job.result["pruned"]) == ["v1", "v2", "v3"]
    assert "pruned lab/pruned:v1" in job.log
    assert await tags(client) == ["latest", "v4", "v5"]
    deleted, _ = await app.services.events.recent(repository=repo, types=[ev.TAG_DELETE])
    assert sorted(e.tag or "" for e in deleted) == ["v1", "v2", "v3"]
    # v1's manifest is still needed by "latest"; v2's stays for garbage collection to decide
    for digest in (images["v1"].digest, images["v2"].digest):
        r = await client.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": fx.image().media_type})
        assert r.status_code == 200
    r = await client.get(f"/v2/{repo}/manifests/latest", headers={"Accept": images["v1"].media_type})
    assert r.headers["Docker-Content-Digest"] == images["v1"].digest

    # run again: nothing more to prune
    await service.run_now(actor, repo, policy.id)
    (job,) = await drain(app)
    assert job.result is not None
    assert job.result["pruned"] == []


async def test_a_tag_limit_prunes_the_oldest_after_each_push(
    app: MoorageApp, client: httpx.AsyncClient, repo: str
) -> None:
    service = app.services.pruning
    await service.create(await admin(app), repo, max_tags=3)
    for i in range(1, 6):
        await push(client, repo, fx.image(seed=f"limit-{i}"), f"t{i}")
        await drain(app)
        assert len(await tags(client)) == min(i, 3)
    assert await tags(client) == ["t3", "t4", "t5"]


async def test_an_application_tag_is_pruned_but_its_components_stay_pullable(
    app: MoorageApp, client: httpx.AsyncClient, repo: str
) -> None:
    bundle = fx.bundle_json_bundle()
    await push_bundle(client, repo, bundle, "app-1")
    await push(client, repo, fx.image(seed="newer"), "app-2")
    service = app.services.pruning
    actor = await admin(app)
    policy = await service.create(
        actor, repo, rules=[{"field": "tag", "operator": "oneof", "value": ["app-1", "app-1-invoc"]}]
    )
    plan = await service.dry_run(actor, repo, policy.id)
    assert sorted(p.tag for p in plan.pruned) == ["app-1", "app-1-invoc"]
    await service.run_now(actor, repo, policy.id)
    await drain(app)
    assert await tags(client) == ["app-2"]
    # removing tags removed no manifest: the application is still there by digest, whole
    r = await client.get(f"/v2/{repo}/manifests/{bundle.index.digest}", headers={"Accept": "*/*"})
    assert r.status_code == 200
    for component in bundle.components.values():
        r = await client.get(f"/v2/{repo}/manifests/{component.digest}", headers={"Accept": "*/*"})
        assert r.status_code == 200


async def test_a_cron_schedule_runs_the_policy(app: MoorageApp, client: httpx.AsyncClient, repo: str) -> None:
    for i in range(1, 4):
        await push(client, repo, fx.image(seed=f"cron-{i}"), f"c{i}")
    service = app.services.pruning
    actor = await admin(app)
    with pytest.raises(InvalidInput) as info:
        await service.create(actor, repo, keep_newest=1, cron="0 3 * *")
    assert info.value.field == "cron"
    assert "minute hour day month weekday" in info.value.message
    with pytest.raises(InvalidInput, match="does not parse"):
        await service.create(actor, repo, keep_newest=1, cron="61 3 * * *")
    assert await service.policies(actor, repo) == []
    assert await app.services.jobs.schedules(SCHEDULE_PREFIX) == []

    policy = await service.create(actor, repo, keep_newest=1, cron="0 3 * * *")
    (schedule,) = await app.services.jobs.schedules(SCHEDULE_PREFIX)
    assert schedule.name == f"{SCHEDULE_PREFIX}{policy.id}"
    assert (schedule.kind, schedule.cron, schedule.enabled) == (JOB_KIND, "0 3 * * *", True)
    assert schedule.next_run_at.hour == 3
    # 03:00 has come: the runner fires the schedule
    async with app.services.db.write() as conn:
        await conn.execute(
            update(schedules)
            .where(schedules.c.id == schedule.id)
            .values(next_run_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )
    (fired,) = await app.services.jobs.fire_due_schedules()
    (job,) = await drain(app)
    assert job.id == fired
    assert job.payload["schedule"] == schedule.name
    assert await tags(client) == ["c3"]

    updated = await service.update(actor, repo, policy.id, {"cron": "*/5 * * * *", "enabled": False})
    assert updated.cron == "*/5 * * * *"
    (schedule,) = await app.services.jobs.schedules(SCHEDULE_PREFIX)
    assert (schedule.cron, schedule.enabled) == ("*/5 * * * *", False)
    await service.update(actor, repo, policy.id, {"cron": None})
    assert await app.services.jobs.schedules(SCHEDULE_PREFIX) == []
    await service.update(actor, repo, policy.id, {"cron": "@daily"})
    await service.delete(actor, repo, policy.id)
    assert await app.services.jobs.schedules(SCHEDULE_PREFIX) == []


async def test_pruning_by_age_and_scan_rules_keeps_what_cannot_be_decided(
    app: MoorageApp, client: httpx.AsyncClient, repo: str
) -> None:
    await push(client, repo, oci_image([layer([file("srv/hello", "hi")])]), "old")
    service = app.services.pruning
    actor = await admin(app)
    by_age = await service.create(
        actor, repo, rules=[{"field": "pushed", "operator": "olderthan", "value": "1h"}]
    )
    assert (await service.dry_run(actor, repo, by_age.id)).pruned == []  # pushed just now
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    before = await service.create(
        actor, repo, rules=[{"field": "pushed", "operator": "before", "value": future}]
    )
    assert [p.tag for p in (await service.dry_run(actor, repo, before.id)).pruned] == ["old"]
    # a scan rule on an image not yet scanned: kept, and said why
    scan_rule = await service.create(
        actor, repo, rules=[{"field": "vulnerability.critical", "operator": "gte", "value": 0}]
    )
    plan = await service.dry_run(actor, repo, scan_rule.id)
    assert plan.pruned == []
    assert "0 of 1 images scanned" in plan.kept[0].reason
    await app.services.scanning.work_pending()
    assert [p.tag for p in (await service.dry_run(actor, repo, scan_rule.id)).pruned] == ["old"]


async def test_a_policy_that_would_remove_everything_needs_saying_so(
    app: MoorageApp, client: httpx.AsyncClient, repo: str
) -> None:
    service = app.services.pruning
    actor = await admin(app)
    with pytest.raises(InvalidInput, match="needs rules, keepNewest or maxTags"):
        await service.create(actor, repo)
    with pytest.raises(InvalidInput) as info:
        await service.create(actor, repo, max_tags=0)
    assert info.value.field == "max_tags"
    policy = await service.create(actor, repo, keep_newest=3)
    with pytest.raises(InvalidInput, match="needs rules"):
        await service.update(actor, repo, policy.id, {"keep_newest": None})
    assert (await service.get(actor, repo, policy.id)).keep_newest == 3
