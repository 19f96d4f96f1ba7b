"""Garbage collection: exactly what is collected and what is kept, dry runs, grace, runs and schedule.

Content is pushed through /v2 with real fixtures; the registry runs on a clock the test holds, so
"older than the grace period" is a matter of advancing it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.conftest import ADMIN_PASSWORD, Backend, make_settings
from tests.oci import fixtures_cnab as fx
from tests.services.test_artifacts import push, push_bundle

from moorage.app import MoorageApp
from moorage.db import content as q
from moorage.db import gc as qg
from moorage.db.gc import hold_references
from moorage.db.tables import (
    blobs,
    manifest_blobs,
    manifest_children,
    manifests,
    repositories,
    repository_blobs,
)
from moorage.oci import mediatypes as mt
from moorage.services.container import Services, build_services
from moorage.services.errors import Forbidden
from moorage.services.gc import GcReport

GRACE = dt.timedelta(hours=1)


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def held(tmp_path: Path, backend: Backend, clock: Clock) -> AsyncIterator[MoorageApp]:
    application = MoorageApp(build_services(make_settings(tmp_path / "data", backend), clock))
    await application.services.prepare()
    try:
        yield application
    finally:
        await application.services.close()


@pytest.fixture
async def client(held: MoorageApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=held),
        base_url="http://moorage.test",
        auth=("admin", ADMIN_PASSWORD),
    ) as c:
        yield c


# -- helpers shared with the e2e test -----------------------------------------------------
def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def consistency_problems(services: Services) -> list[str]:
    """What would make a pull fail: every stored manifest's blobs linked, recorded and on disk,
    its children present; every blob row with its file."""
    problems = []
    async with services.db.read() as conn:
        rows = await conn.execute(
            select(repositories.c.name, manifests.c.digest, manifest_blobs.c.digest)
            .select_from(
                manifest_blobs.join(manifests, manifests.c.id == manifest_blobs.c.manifest_id).join(
                    repositories, repositories.c.id == manifests.c.repository_id
                )
            )
            .outerjoin(
                repository_blobs,
                (repository_blobs.c.repository_id == manifests.c.repository_id)
                & (repository_blobs.c.digest == manifest_blobs.c.digest),
            )
            .where(repository_blobs.c.digest.is_(None))
        )
        problems += [f"{r}@{m}: blob {b} not linked" for r, m, b in rows]
        child = manifests.alias("child")
        rows = await conn.execute(
            select(repositories.c.name, manifests.c.digest, manifest_children.c.child_digest)
            .select_from(
                manifest_children.join(manifests, manifests.c.id == manifest_children.c.manifest_id).join(
                    repositories, repositories.c.id == manifests.c.repository_id
                )
            )
            .outerjoin(
                child,
                (child.c.repository_id == manifests.c.repository_id)
                & (child.c.digest == manifest_children.c.child_digest),
            )
            .where(child.c.id.is_(None))
        )
        problems += [f"{r}@{m}: child {c} missing" for r, m, c in rows]
        rows = await conn.execute(
            select(repository_blobs.c.digest)
            .outerjoin(blobs, blobs.c.digest == repository_blobs.c.digest)
            .where(blobs.c.digest.is_(None))
        )
        problems += [f"link to {d} without a blob row" for d in rows.scalars()]
        recorded = {d: s for d, s in await conn.execute(select(blobs.c.digest, blobs.c.size))}
    for digest, size in recorded.items():
        if await services.store.stat(digest) != size:
            problems.append(f"blob {digest} recorded without its file")
    return problems


async def pull_verified(client: httpx.AsyncClient, repo: str, reference: str) -> int:
    """Pull a manifest and everything it references, checking every digest; returns bytes read."""
    r = await client.get(
        f"/v2/{repo}/manifests/{reference}",
        headers={
            "Accept": ", ".join([mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST])
        },
    )
    assert r.status_code == 200, f"{repo}:{reference}: {r.status_code} {r.text}"
    assert sha256(r.content) == r.headers["Docker-Content-Digest"]
    if reference.startswith("sha256:"):
        assert sha256(r.content) == reference
    doc = json.loads(r.content)
    total = len(r.content)
    descriptors = ([doc["config"]] if doc.get("config") else []) + list(doc.get("layers") or [])
    for desc in descriptors:
        b = await client.get(f"/v2/{repo}/blobs/{desc['digest']}")
        assert b.status_code == 200, f"{repo}:{reference}: blob {desc['digest']}: {b.status_code}"
        assert sha256(b.content) == desc["digest"], f"{repo}:{reference}: blob {desc['digest']} corrupt"
        total += len(b.content)
    for child in doc.get("manifests") or []:
        total += await pull_verified(client, repo, child["digest"])
    return total


async def _counts(services: Services) -> dict[str, int]:
    async with services.db.read() as conn:
        out = {
            t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
            for t in (manifests, manifest_blobs, manifest_children, repository_blobs, blobs)
        }
    out["files"] = len([b async for b in services.store.list_blobs()])
    return out


async def _collect(app: MoorageApp, dry_run: bool = False, grace: dt.timedelta = GRACE) -> GcReport:
    return await app.services.gc.collect(dry_run=dry_run, grace=grace)


async def _status(client: httpx.AsyncClient, path: str) -> int:
    return (await client.get(path)).status_code


async def _blob(client: httpx.AsyncClient, repo: str, data: bytes) -> None:
    r = await client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data)
    assert r.status_code == 201, r.text


def _referrer(subject: fx.Built, payload: bytes, artifact_type: str = fx.SPDX_JSON) -> fx.Built:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": fx.descriptor(mt.OCI_EMPTY, b"{}"),
        "layers": [fx.descriptor(artifact_type, payload)],
        "subject": subject.ref(),
    }
    return fx.Built(doc, mt.OCI_MANIFEST, {}, b"{}", {sha256(payload): payload})


def _digests(built: fx.Built) -> set[str]:
    out = set(built.layers)
    if built.config_blob is not None:
        out.add(sha256(built.config_blob))
    return out


# -- what is collected and what is kept ---------------------------------------------------
async def test_untagged_image_goes_tagged_images_and_shared_layers_stay(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    kept = fx.image(seed="kept")
    replaced = fx.image(seed="replaced")
    current = fx.image(seed="current")
    await push(client, "lab/app", kept, "v1")
    await push(client, "lab/app", replaced, "v2")
    await push(client, "lab/app", current, "v2")  # v2 moves: `replaced` is untagged now
    clock.advance(hours=2)

    report = await _collect(held)

    assert (report.manifests, report.blob_links, report.blobs) == (1, 1, 1)
    gone_layer = next(iter(replaced.layers))
    assert report.blob_bytes == len(replaced.layers[gone_layer])
    assert report.manifest_bytes == len(replaced.content)
    assert report.bytes_freed == len(replaced.content) + len(replaced.layers[gone_layer])
    assert await _status(client, f"/v2/lab/app/manifests/{replaced.digest}") == 404
    assert await _status(client, f"/v2/lab/app/blobs/{gone_layer}") == 404
    assert await held.services.store.stat(gone_layer) is None
    # the config blob is the same for all three (same platform): still referenced
    assert kept.config_blob == replaced.config_blob
    await pull_verified(client, "lab/app", "v1")
    await pull_verified(client, "lab/app", "v2")
    assert await consistency_problems(held.services) == []
    again = await _collect(held)
    assert (again.manifests, again.blob_links, again.blobs, again.orphan_files) == (0, 0, 0, 0)


async def test_index_children_are_kept_with_their_index_and_go_with_it(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    tagged_index = fx.multi_arch([fx.image(seed="t1"), fx.image(arch="arm64", seed="t1")])
    untagged_index = fx.multi_arch([fx.image(seed="u1"), fx.image(arch="arm64", seed="u1")])
    also_tagged_child = fx.image(arch="ppc64le", seed="u1")
    nested = fx.multi_arch([untagged_index.children[0], also_tagged_child])
    await push(client, "lab/multi", tagged_index, "latest")
    await push(client, "lab/multi", untagged_index)
    await push(client, "lab/multi", nested)
    await push(client, "lab/multi", also_tagged_child, "ppc")
    clock.advance(hours=2)

    report = await _collect(held)

    # both untagged indexes, and the two children nothing else holds (u1/amd64, u1/arm64)
    assert report.manifests == 4
    for gone in (untagged_index, nested, *untagged_index.children):
        assert await _status(client, f"/v2/lab/multi/manifests/{gone.digest}") == 404
    await pull_verified(client, "lab/multi", "latest")
    await pull_verified(client, "lab/multi", "ppc")
    assert await consistency_problems(held.services) == []


async def test_application_components_are_kept_until_the_application_goes(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    bundle = fx.bundle_json_bundle()
    await push_bundle(client, "lab/shop", bundle, "1.0")
    clock.advance(hours=2)

    report = await _collect(held)
    assert (report.manifests, report.blobs) == (0, 0)
    await pull_verified(client, "lab/shop", "1.0")
    await pull_verified(client, "lab/shop", "1.0-invoc")

    for tag in ("1.0", "1.0-invoc"):
        assert (await client.delete(f"/v2/lab/shop/manifests/{tag}")).status_code == 202
    report = await _collect(held)
    # index, config manifest, invocation, the single-image component, and the component
    # index with its two platform images
    assert report.manifests == 7
    async with held.services.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(manifests))).scalar_one() == 0
        assert (await conn.execute(select(func.count()).select_from(blobs))).scalar_one() == 0
    assert [b async for b in held.services.store.list_blobs()] == []


async def test_referrers_of_kept_manifests_are_kept_and_go_with_their_subject(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    subject = fx.image(seed="signed")
    signature = fx.cosign_signature_referrer(subject)
    sbom = _referrer(subject, b'{"spdxVersion":"SPDX-2.3","name":"signed"}')
    sbom_signature = _referrer(sbom, b"signature of the sbom", fx.COSIGN_SIG_ARTIFACT)
    await push(client, "lab/signed", subject, "v1")
    for ref in (signature, sbom, sbom_signature):
        await push(client, "lab/signed", ref)

    orphan_subject = fx.image(seed="nobody tags me")
    orphan_sig = _referrer(orphan_subject, b"signature of an untagged image", fx.COSIGN_SIG_ARTIFACT)
    await push(client, "lab/signed", orphan_subject)
    await push(client, "lab/signed", orphan_sig)
    dangling = _referrer(fx.image(seed="never pushed"), b"subject never came", fx.COSIGN_SIG_ARTIFACT)
    await push(client, "lab/signed", dangling)
    clock.advance(hours=2)

    report = await _collect(held)

    assert report.manifests == 3  # orphan_subject, orphan_sig, dangling
    for kept in (subject, signature, sbom, sbom_signature):
        await pull_verified(client, "lab/signed", kept.digest)
    for gone in (orphan_subject, orphan_sig, dangling):
        assert await _status(client, f"/v2/lab/signed/manifests/{gone.digest}") == 404
    r = await client.get(f"/v2/lab/signed/referrers/{subject.digest}")
    assert {m["digest"] for m in r.json()["manifests"]} == {signature.digest, sbom.digest}
    assert await consistency_problems(held.services) == []

    # untag the subject: its referrers (and theirs) go with it
    assert (await client.delete("/v2/lab/signed/manifests/v1")).status_code == 202
    report = await _collect(held)
    assert report.manifests == 4
    assert report.blobs == len(
        _digests(subject) | _digests(signature) | _digests(sbom) | _digests(sbom_signature)
    )


async def test_blobs_shared_across_repositories_lose_only_the_unused_link(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    image = fx.image(seed="shared")
    await push(client, "team-a/app", image, "v1")
    await push(client, "team-b/app", image)  # untagged in team-b
    clock.advance(hours=2)

    report = await _collect(held)

    layer = next(iter(image.layers))
    assert (report.manifests, report.blob_links, report.blobs) == (1, 2, 0)
    assert await _status(client, f"/v2/team-b/app/blobs/{layer}") == 404
    assert await _status(client, f"/v2/team-b/app/manifests/{image.digest}") == 404
    await pull_verified(client, "team-a/app", "v1")
    assert await held.services.store.stat(layer) == len(image.layers[layer])


async def test_the_grace_period_keeps_recent_manifests_links_and_blobs(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    old = fx.image(seed="old")
    await push(client, "lab/grace", old)  # untagged
    clock.advance(minutes=90)
    recent = fx.image(seed="recent")
    await push(client, "lab/grace", recent)  # untagged, 30 minutes before the next run
    await _blob(client, "lab/grace", b"uploaded, manifest still to come")  # unreferenced, recent
    clock.advance(minutes=30)

    report = await _collect(held)

    assert report.manifests == 1
    assert await _status(client, f"/v2/lab/grace/manifests/{old.digest}") == 404
    await pull_verified(client, "lab/grace", recent.digest)
    assert await _status(client, f"/v2/lab/grace/blobs/{sha256(b'uploaded, manifest still to come')}") == 200

    clock.advance(hours=1)
    report = await _collect(held)
    assert report.manifests == 1
    assert report.blobs == len(_digests(recent)) + 1


async def test_dry_run_reports_what_a_run_then_frees_and_changes_nothing(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    await push(client, "lab/dry", fx.image(seed="keep"), "v1")
    await push(client, "lab/dry", fx.multi_arch([fx.image(seed="a"), fx.image(arch="arm64", seed="a")]))
    await push_bundle(client, "lab/dry2", fx.docker_app_bundle(), "app")
    assert (await client.delete("/v2/lab/dry2/manifests/app")).status_code == 202
    orphan = sha256(b"an orphan file")
    await held.services.store.put(orphan, b"an orphan file")
    clock.advance(hours=2)
    before = await _counts(held.services)

    dry = await _collect(held, dry_run=True)

    assert await _counts(held.services) == before
    assert dry.dry_run
    assert dry.manifests > 0
    assert dry.blobs > 0
    assert dry.orphan_files == 1
    real = await _collect(held)
    assert (real.manifests, real.manifest_bytes, real.blob_links, real.blobs, real.blob_bytes) == (
        dry.manifests,
        dry.manifest_bytes,
        dry.blob_links,
        dry.blobs,
        dry.blob_bytes,
    )
    assert (real.orphan_files, real.bytes_freed) == (1, dry.bytes_freed)
    after = await _counts(held.services)
    assert after["manifests"] == before["manifests"] - dry.manifests
    assert after["blobs"] == before["blobs"] - dry.blobs
    assert after["files"] == before["files"] - dry.blobs - 1
    await pull_verified(client, "lab/dry", "v1")
    assert await held.services.store.stat(orphan) is None


async def test_an_upload_in_progress_survives_the_collection_of_its_blob(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    data = b"pushed once, unreferenced, pushed again"
    await _blob(client, "lab/up", data)
    r = await client.post("/v2/lab/up/blobs/uploads/")
    assert r.status_code == 202
    location = r.headers["Location"]
    r = await client.patch(location, content=data[:10], headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    clock.advance(hours=2)

    report = await _collect(held)  # the first copy goes; the upload in progress is untouched
    assert report.blobs == 1
    assert await held.services.store.stat(sha256(data)) is None
    assert await _status(client, f"/v2/lab/up/blobs/{sha256(data)}") == 404  # HEAD/GET see the row

    r = await client.put(location, params={"digest": sha256(data)}, content=data[10:])
    assert r.status_code == 201, r.text
    assert (await client.get(f"/v2/lab/up/blobs/{sha256(data)}")).content == data
    assert await consistency_problems(held.services) == []


class _RacingStore:
    """Interleaves a collection between a publication's look at the store and its transaction:
    the real store answers, then the real collector runs, as a concurrent one would."""

    def __init__(self, app: MoorageApp, digest: str) -> None:
        self.app, self.digest, self.store = app, digest, app.services.store
        self.fired = False

    async def stat(self, digest: str) -> int | None:
        size = await self.store.stat(digest)
        if digest == self.digest and not self.fired:
            self.fired = True
            report = await self.app.services.gc.collect(dry_run=False, grace=GRACE)
            assert report.blobs == 1
        return size

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_a_blob_collected_while_its_upload_is_published_is_stored_again(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    data = b"collected between the look and the record"
    await _blob(client, "lab/race", data)
    clock.advance(hours=2)
    held.services.blobs.store = _RacingStore(held, sha256(data))  # type: ignore[assignment]
    try:
        await _blob(client, "lab/race", data)  # saw the old file; the collector removes it; then records
    finally:
        held.services.blobs.store = held.services.store
    assert (await client.get(f"/v2/lab/race/blobs/{sha256(data)}")).content == data
    assert await consistency_problems(held.services) == []


async def test_a_sweep_waits_for_a_push_in_flight_and_keeps_what_it_references(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    garbage = fx.image(seed="tagged at the last moment")
    await push(client, "lab/fence", garbage)
    clock.advance(hours=2)
    async with held.services.db.write() as conn:  # a push's transaction, as ManifestService.put opens it
        await hold_references(conn)
        rid = await q.repository_id(conn, "lab/fence")
        assert rid is not None
        found = await q.manifest_by_digest(conn, "lab/fence", garbage.digest)
        assert found is not None  # the push's check: present
        sweep = asyncio.create_task(held.services.gc.collect(dry_run=False, grace=GRACE))
        await asyncio.sleep(0.5)
        assert not sweep.done()  # marked it as garbage, waits to sweep
        await q.set_tag(conn, rid, "late", found.id, clock(), None)
    report = await sweep

    assert (report.manifests, report.blob_links, report.blobs) == (0, 0, 0)
    await pull_verified(client, "lab/fence", "late")
    assert await consistency_problems(held.services) == []


async def test_a_set_aside_file_is_put_back_when_its_row_survived(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    image = fx.image(seed="interrupted")
    await push(client, "lab/crash", image, "v1")
    layer = next(iter(image.layers))
    # a sweep that died after setting the file aside, before its transaction committed
    assert await held.services.store.set_aside(layer)
    stray = sha256(b"its row was deleted")
    await held.services.store.put(stray, b"its row was deleted")
    assert await held.services.store.set_aside(stray)

    report = await _collect(held)

    assert report.restored_files == 1
    assert [d async for d in held.services.store.list_aside()] == []
    await pull_verified(client, "lab/crash", "v1")


async def test_recent_orphan_files_are_kept(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    old, new = sha256(b"old orphan"), sha256(b"new orphan")
    await held.services.store.put(old, b"old orphan")
    await held.services.store.put(new, b"new orphan")
    path = held.services.store.local_path(old)
    assert path is not None
    stamp = (clock.now - dt.timedelta(hours=3)).timestamp()
    os.utime(path, (stamp, stamp))

    report = await _collect(held)

    assert (report.orphan_files, report.orphan_bytes) == (1, len(b"old orphan"))
    assert await held.services.store.stat(old) is None
    assert await held.services.store.stat(new) == len(b"new orphan")


# -- runs, API, schedule ------------------------------------------------------------------
async def _run_job(app: MoorageApp) -> Any:
    job = await app.services.jobs.claim_next()
    assert job is not None
    await app.services.jobs.run(job)
    return await app.services.jobs.get(job.id)


async def test_runs_through_the_api_are_jobs_recorded_with_their_counts_and_log(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    image = fx.image(seed="api")
    await push(client, "lab/api", image)
    clock.advance(hours=2)

    r = await client.post("/api/v1/system/gc", json={"dryRun": True, "graceSeconds": 3600})
    assert r.status_code == 202, r.text
    queued = r.json()
    assert (queued["status"], queued["dryRun"], queued["trigger"]) == ("queued", True, "api")
    r = await client.post("/api/v1/system/gc", json={})
    assert r.status_code == 409
    assert r.json()["code"] == "conflict"
    job = await _run_job(held)
    assert job.status == "succeeded", job.error
    assert job.result["manifests"] == 1

    run = (await client.get(f"/api/v1/system/gc/runs/{queued['id']}")).json()
    assert run["status"] == "succeeded"
    assert run["jobId"] == job.id
    assert run["manifestsDeleted"] == 1
    assert run["blobsDeleted"] == len(_digests(image))
    assert run["bytesFreed"] == len(image.content) + sum(len(v) for v in image.layers.values()) + len(
        image.config_blob or b""
    )
    assert run["summary"]["manifests"] == 1
    assert "dry run" in run["log"]
    assert await _status(client, f"/v2/lab/api/manifests/{image.digest}") == 200  # dry run

    r = await client.post("/api/v1/system/gc")  # no body: a real run with the default grace (24h)
    assert r.status_code == 202
    job = await _run_job(held)
    assert job.status == "succeeded"
    assert job.result["manifests"] == 0
    r = await client.post("/api/v1/system/gc", json={"dryRun": False, "graceSeconds": 0})
    job = await _run_job(held)
    assert job.result["manifests"] == 1
    assert await _status(client, f"/v2/lab/api/manifests/{image.digest}") == 404

    page = (await client.get("/api/v1/system/gc/runs", params={"perPage": 2})).json()
    assert page["total"] == 3
    assert [r["id"] for r in page["items"]] == [r.json()["id"], r.json()["id"] - 1]
    assert page["items"][0]["dryRun"] is False
    assert page["items"][0]["graceSeconds"] == 0


async def test_a_run_whose_process_stopped_runs_again_with_its_job(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    held.services.jobs.clock = clock
    await push(client, "lab/stop", fx.image(seed="stopped"))
    clock.advance(hours=2)
    run_id = (await client.post("/api/v1/system/gc", json={"graceSeconds": 3600})).json()["id"]
    job = await held.services.jobs.claim_next()
    assert job is not None
    async with held.services.db.write() as conn:  # it had started when its process stopped
        assert await qg.start_run(conn, run_id, clock(), job.id)
    clock.advance(minutes=10)
    assert await held.services.jobs.requeue_stale(clock()) == 1  # what the next start does

    job = await _run_job(held)
    assert job.status == "succeeded", job.error
    run = (await client.get(f"/api/v1/system/gc/runs/{run_id}")).json()
    assert run["status"] == "succeeded"
    assert run["manifestsDeleted"] == 1


async def test_bad_input_and_non_administrators_are_refused(
    held: MoorageApp, client: httpx.AsyncClient
) -> None:
    r = await client.post("/api/v1/system/gc", json={"dryRun": "yes"})
    assert r.status_code == 422
    r = await client.post("/api/v1/system/gc", json={"graceSeconds": -1})
    assert r.status_code == 422
    r = await client.put("/api/v1/system/gc/schedule", json={"cron": "every sunday", "enabled": True})
    assert r.status_code == 422
    assert r.json()["field"] == "cron"
    assert (await client.get("/api/v1/system/gc/schedule")).status_code == 404
    assert await _status(client, "/api/v1/system/gc/runs/999") == 404
    async with held.services.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(manifests))).scalar_one() == 0

    r = await client.post(
        "/api/v1/users", json={"username": "dev", "password": "a long enough password", "isAdmin": False}
    )
    assert r.status_code == 201, r.text
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=held),
        base_url="http://moorage.test",
        auth=("dev", "a long enough password"),
    ) as dev:
        assert (await dev.post("/api/v1/system/gc", json={"dryRun": True})).status_code == 403
        assert (await dev.get("/api/v1/system/gc/runs")).status_code == 403
        assert (await dev.put("/api/v1/system/gc/schedule", json={"cron": "0 4 * * 0"})).status_code == 403
    principal = await held.services.authn.password("dev", "a long enough password", None)
    with pytest.raises(Forbidden):
        await held.services.gc.request(principal, True)
    assert (await client.get("/api/v1/system/gc/runs")).json()["total"] == 0


async def test_the_schedule_fires_a_collection(
    held: MoorageApp, client: httpx.AsyncClient, clock: Clock
) -> None:
    held.services.jobs.clock = clock
    await push(client, "lab/cron", fx.image(seed="cron"))
    r = await client.put("/api/v1/system/gc/schedule", json={"cron": "0 4 * * *", "enabled": True})
    assert r.status_code == 200, r.text
    schedule = r.json()
    assert schedule["cron"] == "0 4 * * *"
    assert schedule["enabled"] is True
    assert (await client.get("/api/v1/system/gc/schedule")).json() == schedule
    clock.advance(days=2)

    fired = await held.services.jobs.fire_due_schedules()
    assert len(fired) == 1
    job = await _run_job(held)
    assert job.status == "succeeded", job.error
    assert job.result["manifests"] == 1
    runs = (await client.get("/api/v1/system/gc/runs")).json()["items"]
    assert runs[0]["trigger"] == "schedule"
    assert runs[0]["jobId"] == job.id
    assert runs[0]["dryRun"] is False

    r = await client.put("/api/v1/system/gc/schedule", json={"cron": "0 4 * * *", "enabled": False})
    assert r.json()["enabled"] is False
    clock.advance(days=2)
    assert await held.services.jobs.fire_due_schedules() == []


async def test_the_configured_schedule_is_applied_at_start(tmp_path: Path, backend: Backend) -> None:
    services = build_services(make_settings(tmp_path / "data", backend, gc_schedule="30 3 * * 6"))
    try:
        await services.prepare()
        found = await services.jobs.get_schedule("gc")
        assert found is not None
        assert (found.cron, found.enabled, found.kind) == ("30 3 * * 6", True, "gc.run")
    finally:
        await services.close()
