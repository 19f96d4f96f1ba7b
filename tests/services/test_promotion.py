"""Promotion through the registry API with real content: pushes that promote, applications and
multi-arch images whose scan rules wait for the last image's scan, immutable targets, templates."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.oci import fixtures_cnab as fx
from tests.services.test_artifacts import admin, push, push_bundle
from tests.services.test_scanning import OSV, _real_image, _subset, django_layer, oci_image

from moorage.app import MoorageApp
from moorage.db.jobs import JobRow
from moorage.services import events as ev
from moorage.services.policies import CONSUMER, JOB_KIND, spdx_names

SOURCE = "lab/source"
TARGET = "lab/target"


@pytest.fixture(scope="module")
def osv_django(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OSV records of Django (the PyPI ecosystem's), which the test images hold."""
    d = tmp_path_factory.mktemp("osv-django")
    _subset(d, OSV / "PyPI" / "all.zip", {"django"})
    return d


async def drain(app: MoorageApp) -> list[JobRow]:
    """Hand new events to the promotion consumer and run the jobs it queues, until nothing is left."""
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


async def promotions(app: MoorageApp) -> list[dict[str, Any]]:
    found, _ = await app.services.events.recent(types=[ev.PROMOTION], limit=100)
    return [e.contents for e in found]


async def target_digest(client: httpx.AsyncClient, tag: str, repo: str = TARGET) -> str | None:
    r = await client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": "*/*"})
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return r.headers["Docker-Content-Digest"]


async def pull_all(client: httpx.AsyncClient, repo: str, built: fx.Built) -> None:
    """Every manifest and blob of ``built`` is in ``repo``, with the same bytes."""
    r = await client.get(f"/v2/{repo}/manifests/{built.digest}", headers={"Accept": built.media_type})
    assert r.status_code == 200, r.text
    assert r.content == built.content
    for child in built.children:
        await pull_all(client, repo, child)
    blobs = dict(built.layers)
    if built.config_blob is not None:
        blobs[fx.digest_of(built.config_blob)] = built.config_blob
    for digest, data in blobs.items():
        r = await client.get(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 200, (repo, digest)
        assert r.content == data


async def policy(app: MoorageApp, **kw: Any) -> int:
    created = await app.services.promotion.create(await admin(app), SOURCE, **kw)
    return created.id


async def ensure_source(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/organizations", json={"name": "lab"})
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/repositories", json={"name": SOURCE})
    assert r.status_code == 201, r.text


async def test_a_push_that_matches_promotes_by_digest(app: MoorageApp, client: httpx.AsyncClient) -> None:
    await ensure_source(client)
    policy_id = await policy(
        app, target=TARGET, rules=[{"field": "tag", "operator": "matches", "value": r"v\d+\.\d+"}]
    )
    image = fx.image(seed="promote-me")
    await push(client, SOURCE, image, "v1.0")
    await push(client, SOURCE, fx.image(seed="not-me"), "latest")
    jobs = await drain(app)
    assert {j.kind for j in jobs} == {JOB_KIND}
    assert all(j.status == "succeeded" for j in jobs), [j.error for j in jobs]
    by_tag = {j.payload["tag"]: j for j in jobs}
    assert by_tag["v1.0"].result == {
        "tag": "v1.0",
        "digest": image.digest,
        "target": f"{TARGET}:v1.0",
        "outcome": "promoted",
    }
    assert "promoted" in by_tag["v1.0"].log
    assert by_tag["latest"].result is not None
    assert by_tag["latest"].result["outcome"] == "no-match"
    assert "does not match" in by_tag["latest"].log
    assert await target_digest(client, "v1.0") == image.digest
    assert await target_digest(client, "latest") is None
    await pull_all(client, TARGET, image)
    assert await promotions(app) == [
        {
            "namespace": "lab",
            "repository": SOURCE,
            "tag": "v1.0",
            "imageName": f"{SOURCE}:v1.0",
            "digest": image.digest,
            "author": "admin",
            "sourceRepository": SOURCE,
            "sourceTag": "v1.0",
            "sourceDigest": image.digest,
            "targetRepository": TARGET,
            "targetTag": "v1.0",
            "policyId": policy_id,
            "artifactKind": "image",
            "promotedAt": (await promotions(app))[0]["promotedAt"],
        }
    ]
    # the copy went through the manifest service: the target's push events exist too
    pushes, _ = await app.services.events.recent(repository=TARGET, types=[ev.TAG_PUSH])
    assert [(e.tag, e.digest) for e in pushes] == [("v1.0", image.digest)]

    # the same push again: nothing new to do
    await push(client, SOURCE, image, "v1.0")
    jobs = await drain(app)
    assert [j.result["outcome"] if j.result else None for j in jobs] == ["already-promoted"]
    assert len(await promotions(app)) == 1


async def test_a_tag_template_names_the_target_tag(app: MoorageApp, client: httpx.AsyncClient) -> None:
    await ensure_source(client)
    await policy(app, target=TARGET, tag_template="%n-promoted-%Y%m%d-%D")
    image = fx.image(seed="template")
    await push(client, SOURCE, image, "rc1")
    (job,) = await drain(app)
    assert job.result is not None
    target = job.result["target"]
    tag = target.split(":", 1)[1]
    assert tag.startswith("rc1-promoted-")
    assert tag.endswith("-" + image.digest.split(":")[1][:12])
    assert await target_digest(client, tag) == image.digest


async def test_a_multi_arch_image_waits_for_every_platform_scan(
    app: MoorageApp, client: httpx.AsyncClient, osv_django: Path
) -> None:
    await app.services.vulndb.import_path(osv_django)
    await ensure_source(client)
    await policy(app, target=TARGET, rules=[{"field": "vulnerability.all", "operator": "gte", "value": 1}])
    amd64 = oci_image([django_layer()])
    arm64 = oci_image([django_layer(), django_layer()], arch="arm64", variant="v8")
    index = fx.multi_arch([amd64, arm64])
    await push(client, SOURCE, index, "multi")
    (job,) = await drain(app)
    assert job.result is not None
    assert job.result["outcome"] == "waiting"
    assert "0 of 2 images scanned" in job.log
    scanning = app.services.scanning
    first = await scanning.claim_next()
    assert first is not None
    await scanning.run_claimed(first)
    (job,) = await drain(app)  # the scan event found the index that holds the platform
    assert job.payload["trigger"] == "scan"
    assert job.payload["tag"] == "multi"
    assert job.result is not None
    assert job.result["outcome"] == "waiting"
    assert "1 of 2 images scanned" in job.log
    assert await target_digest(client, "multi") is None
    last = await scanning.claim_next()
    assert last is not None
    await scanning.run_claimed(last)
    (job,) = await drain(app)
    assert job.result is not None
    assert job.result["outcome"] == "promoted"
    assert await target_digest(client, "multi") == index.digest
    await pull_all(client, TARGET, index)
    assert len(await promotions(app)) == 1


async def test_an_application_is_promoted_exactly_after_its_last_component_scan(
    app: MoorageApp, client: httpx.AsyncClient, osv_django: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await app.services.vulndb.import_path(osv_django)
    monkeypatch.setattr(fx, "image", _real_image)
    bundle = fx.bundle_json_bundle()  # invocation, another-image, image-1 (amd64 + arm64)
    await ensure_source(client)
    await policy(
        app,
        target=TARGET,
        rules=[
            {"field": "tag", "operator": "eq", "value": "app"},
            {"field": "component.name", "operator": "oneof", "value": ["django"]},
            {"field": "vulnerability.all", "operator": "gte", "value": 1},
        ],
    )
    await push_bundle(client, SOURCE, bundle, "app")
    jobs = await drain(app)
    outcomes = {j.payload["tag"]: j.result["outcome"] if j.result else None for j in jobs}
    assert outcomes == {"app-invoc": "no-match", "app": "waiting"}
    assert await target_digest(client, "app") is None

    scanning = app.services.scanning
    images = await app.services.promotion.facts.images(SOURCE, bundle.index.digest)
    assert len(images) == 4
    for done in range(1, len(images) + 1):
        scan_id = await scanning.claim_next()
        assert scan_id is not None
        await scanning.run_claimed(scan_id)
        jobs = await drain(app)
        app_jobs = [j for j in jobs if j.payload["tag"] == "app"]
        assert len(app_jobs) == 1, [j.payload for j in jobs]
        result = app_jobs[0].result
        assert result is not None
        if done < len(images):
            assert result["outcome"] == "waiting"
            assert f"{done} of {len(images)} images scanned" in app_jobs[0].log
            assert await target_digest(client, "app") is None
            assert await promotions(app) == []
        else:
            assert result["outcome"] == "promoted", app_jobs[0].log
    assert await target_digest(client, "app") == bundle.index.digest
    (event,) = await promotions(app)
    assert event["artifactKind"] == "application"
    assert (event["sourceTag"], event["targetTag"], event["sourceDigest"]) == (
        "app",
        "app",
        bundle.index.digest,
    )
    # the whole application came along: invocation, components and their platforms, config
    await pull_all(client, TARGET, bundle.index)
    await pull_all(client, TARGET, bundle.invocation)
    await pull_all(client, TARGET, bundle.config_manifest)
    for component in bundle.components.values():
        await pull_all(client, TARGET, component)
    tags = {t["name"]: t for t in (await client.get(f"/api/v1/repositories/{TARGET}/tags")).json()}
    assert tags["app"]["type"] == "application"
    assert tags["app"]["pushedBy"] == "admin"  # the policy's creator


async def test_an_immutable_target_tag_is_not_overwritten(app: MoorageApp, client: httpx.AsyncClient) -> None:
    await ensure_source(client)
    r = await client.post("/api/v1/repositories", json={"name": TARGET, "immutableTags": True})
    assert r.status_code == 201, r.text
    existing = fx.image(seed="already-there")
    await push(client, TARGET, existing, "v1")
    await policy(app, target=TARGET)
    image = fx.image(seed="newer")
    await push(client, SOURCE, image, "v1")
    await push(client, SOURCE, fx.image(seed="fresh"), "v2")
    jobs = {j.payload["tag"]: j for j in await drain(app)}
    assert jobs["v1"].status == "succeeded"  # reported, not crashed
    assert jobs["v1"].result is not None
    assert jobs["v1"].result["outcome"] == "refused"
    assert "immutable" in jobs["v1"].log
    assert await target_digest(client, "v1") == existing.digest
    assert jobs["v2"].result is not None
    assert jobs["v2"].result["outcome"] == "promoted"  # a new tag in an immutable repository is fine
    assert [p["sourceTag"] for p in await promotions(app)] == ["v2"]


async def test_disabled_policies_wait_for_promote_now(app: MoorageApp, client: httpx.AsyncClient) -> None:
    await ensure_source(client)
    policy_id = await policy(
        app, target=TARGET, enabled=False, rules=[{"field": "tag", "operator": "startswith", "value": "v"}]
    )
    a, b = fx.image(seed="a"), fx.image(seed="b")
    await push(client, SOURCE, a, "v1")
    await push(client, SOURCE, b, "v2")
    await push(client, SOURCE, fx.image(seed="c"), "dev")
    assert await drain(app) == []
    job_id = await app.services.promotion.run_now(await admin(app), SOURCE, policy_id)
    (job,) = await drain(app)
    assert job.id == job_id
    assert job.result is not None
    assert job.result["promoted"] == 2
    assert {r["tag"]: r["outcome"] for r in job.result["results"]} == {
        "v1": "promoted",
        "v2": "promoted",
        "dev": "no-match",
    }
    assert await target_digest(client, "v1") == a.digest
    assert await target_digest(client, "v2") == b.digest


async def test_licenses_come_from_annotations_labels_and_the_bundle() -> None:
    assert spdx_names("MIT OR (Apache-2.0 AND BSD-3-Clause)") == {"MIT", "Apache-2.0", "BSD-3-Clause"}
    assert spdx_names("GPL-2.0-only WITH Classpath-exception-2.0") == {
        "GPL-2.0-only",
        "Classpath-exception-2.0",
    }


async def test_license_rules_read_the_image_label(
    app: MoorageApp, client: httpx.AsyncClient, osv_django: Path
) -> None:
    await app.services.vulndb.import_path(osv_django)
    await ensure_source(client)
    await policy(
        app, target=TARGET, rules=[{"field": "license.name", "operator": "noneof", "value": ["GPL-3.0-only"]}]
    )
    mit = oci_image([django_layer()])
    assert mit.config is not None
    cfg = {**mit.config, "config": {"Labels": {"org.opencontainers.image.licenses": "MIT OR Apache-2.0"}}}
    gpl_cfg = {**mit.config, "config": {"Labels": {"org.opencontainers.image.licenses": "gpl-3.0-only"}}}
    images = {}
    for tag, config in (("mit", cfg), ("gpl", gpl_cfg)):
        blob = fx.canonical(config)
        doc = json.loads(json.dumps(mit.document))
        doc["config"] = fx.descriptor(mit.document["config"]["mediaType"], blob)
        images[tag] = fx.Built(doc, mit.media_type, config, blob, mit.layers)
        await push(client, SOURCE, images[tag], tag)
    assert {j.result["outcome"] for j in await drain(app) if j.result} == {"waiting"}
    await app.services.scanning.work_pending()
    jobs = {j.payload["tag"]: j for j in await drain(app)}
    assert jobs["mit"].result is not None
    assert jobs["mit"].result["outcome"] == "promoted"
    assert jobs["gpl"].result is not None
    assert jobs["gpl"].result["outcome"] == "no-match"  # names compare without case
    assert await target_digest(client, "mit") == images["mit"].digest
    assert await target_digest(client, "gpl") is None


async def test_two_jobs_promoting_the_same_tag_at_once_announce_it_once(
    app: MoorageApp, client: httpx.AsyncClient
) -> None:
    await ensure_source(client)
    policy_id = await policy(app, target=TARGET)
    image = fx.image(seed="concurrent")
    await push(client, SOURCE, image, "v1")
    assert await app.services.events.dispatch(CONSUMER) >= 1  # queues the push's job
    await app.services.promotion.run_now(await admin(app), SOURCE, policy_id, "v1")
    jobs = app.services.jobs
    first, second = await jobs.claim_next(), await jobs.claim_next()
    assert first is not None
    assert second is not None
    await asyncio.gather(jobs.run(first), jobs.run(second))
    results = [(await jobs.get(j.id)).result or {} for j in (first, second)]
    outcomes = sorted(r.get("outcome", "") for r in results)
    assert outcomes == ["already-promoted", "promoted"]
    assert len(await promotions(app)) == 1
    assert await target_digest(client, "v1") == image.digest
