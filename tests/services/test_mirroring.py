"""Push and pull mirroring against real registries on loopback: a second Moorage (a real
``moorage serve``) and the CNCF reference registry (Debian's ``docker-registry``, htpasswd).

The local Moorage is the in-process app; its outbox consumer and jobs are driven by hand
(``drive``), so each test sees exactly the jobs its pushes caused. Digests are checked by
reading every manifest back from the other side and hashing its bytes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from tests.conftest import ADMIN_PASSWORD, ServerProcess, free_port, start_server
from tests.oci import fixtures_cnab as fx
from tests.services.test_artifacts import push, push_bundle

from moorage.app import MoorageApp
from moorage.db.jobs import JobRow
from moorage.oci import mediatypes as mt
from moorage.services import events as ev

API = "/api/v1"
REFERENCE_BIN = "/usr/bin/docker-registry"
ACCEPT = ", ".join(
    [mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST, "application/json"]
)


# -- remote registries ------------------------------------------------------------------------


@dataclass
class Reference:
    """The reference registry with one htpasswd user."""

    url: str
    username: str
    password: str
    process: subprocess.Popen[bytes]


def start_reference(root: Path, port: int | None = None) -> Reference:
    if not Path(REFERENCE_BIN).exists():
        pytest.fail(
            "docker-registry is not installed (Debian package 'docker-registry'; `make test` installs it)"
        )
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    htpasswd = root / "htpasswd"
    htpasswd.write_text(f"alice:{bcrypt.hashpw(b'alice-secret', bcrypt.gensalt(5)).decode()}\n")
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: mirroring-tests\n"
        f"auth:\n  htpasswd:\n    realm: reference\n    path: {htpasswd}\n"
    )
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen([REFERENCE_BIN, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {(root / 'registry.log').read_text()}")
        try:
            if httpx.get(f"{url}/v2/", timeout=1).status_code == 401:
                return Reference(url, "alice", "alice-secret", process)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("docker-registry did not start")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    ref = start_reference(tmp_path_factory.mktemp("reference"))
    try:
        yield ref
    finally:
        ref.process.terminate()
        ref.process.wait(timeout=20)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A second Moorage (SQLite): the other side of every Moorage-to-Moorage test."""
    proc = start_server(tmp_path_factory.mktemp("remote") / "data")
    try:
        yield proc
    finally:
        proc.stop()


def remote_client(url: str, auth: tuple[str, str] = ("admin", ADMIN_PASSWORD)) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, auth=auth, timeout=60)


# -- content ----------------------------------------------------------------------------------


def manifests_of(built: fx.Built) -> list[fx.Built]:
    """A manifest and every manifest it references, children first."""
    out: list[fx.Built] = []
    for child in built.children:
        out.extend(manifests_of(child))
    out.append(built)
    return out


def application_manifests(bundle: fx.CnabFixture) -> list[fx.Built]:
    out: list[fx.Built] = []
    for component in bundle.components.values():
        out.extend(manifests_of(component))
    return [*out, bundle.invocation, bundle.config_manifest, bundle.index]


def blobs_of(built: fx.Built) -> list[str]:
    out = [fx.digest_of(built.config_blob)] if built.config_blob is not None else []
    return out + list(built.layers)


async def assert_holds(
    http: httpx.AsyncClient, repo: str, tag: str, top: fx.Built, everything: list[fx.Built]
) -> None:
    """``repo:tag`` is ``top``, and every manifest (by digest, same bytes) and blob is there."""
    r = await http.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
    assert r.status_code == 200, r.text
    assert "sha256:" + hashlib.sha256(r.content).hexdigest() == top.digest
    for built in everything:
        r = await http.get(f"/v2/{repo}/manifests/{built.digest}", headers={"Accept": ACCEPT})
        assert r.status_code == 200, (built.digest, r.text)
        assert r.content == built.content
        for blob in blobs_of(built):
            r = await http.head(f"/v2/{repo}/blobs/{blob}")
            assert r.status_code == 200, blob


# -- driving the local registry ---------------------------------------------------------------


async def drive(app: MoorageApp) -> list[JobRow]:
    """Hand the outbox to the mirroring consumer and run the jobs it queued, until none is due."""
    ran: list[JobRow] = []
    for _ in range(100):
        await app.services.events.dispatch("mirroring")
        job = await app.services.jobs.claim_next()
        if job is None:
            break
        await app.services.jobs.run(job)
        ran.append(await app.services.jobs.get(job.id))
    return ran


async def run_job(app: MoorageApp, job_id: int) -> JobRow:
    job = await app.services.jobs.claim_next()
    assert job is not None
    assert job.id == job_id
    await app.services.jobs.run(job)
    return await app.services.jobs.get(job_id)


async def events_of(app: MoorageApp, type: str, repository: str) -> list[dict[str, Any]]:
    rows, _ = await app.services.events.recent(repository=repository, types=[type], limit=200)
    return [r.contents for r in reversed(rows)]


@pytest.fixture
async def local(client: httpx.AsyncClient) -> httpx.AsyncClient:
    return client


async def make_repo(http: httpx.AsyncClient, name: str, **fields: Any) -> None:
    r = await http.post(f"{API}/repositories", json={"name": name, **fields})
    assert r.status_code == 201, r.text


def mirror_body(url: str, remote_repository: str, user: str, password: str, **extra: Any) -> dict[str, Any]:
    return {
        "url": url,
        "remoteRepository": remote_repository,
        "username": user,
        "password": password,
        **extra,
    }


# -- push and pull, Moorage to Moorage --------------------------------------------------------


async def test_image_multi_arch_and_application_mirror_to_moorage_and_back(
    app: MoorageApp, local: httpx.AsyncClient, remote: ServerProcess, backend: Any
) -> None:
    suffix = backend.name
    await make_repo(local, "admin/source")
    r = await local.post(
        f"{API}/repositories/admin/source/push-mirrors",
        json=mirror_body(remote.url, f"admin/mirror-{suffix}", "admin", ADMIN_PASSWORD, tagTemplate="m-%n"),
    )
    assert r.status_code == 201, r.text
    mirror = r.json()
    assert mirror["hasPassword"] is True
    assert "password" not in mirror
    assert mirror["url"] == remote.url
    assert mirror["tagTemplate"] == "m-%n"

    image = fx.image(seed=f"push-{suffix}")
    multi = fx.multi_arch([fx.image(seed=f"amd-{suffix}"), fx.image(arch="arm64", seed=f"arm-{suffix}")])
    bundle = fx.bundle_json_bundle()
    await push(local, "admin/source", image, "img")
    await push(local, "admin/source", multi, "multi")
    await push_bundle(local, "admin/source", bundle, "app")
    jobs = await drive(app)
    # one job per pushed tag (the application's invocation image is tagged too)
    assert sorted(j.payload["tag"] for j in jobs) == ["app", "app-invoc", "img", "multi"]
    assert all(j.status == "succeeded" for j in jobs), [(j.error, j.log) for j in jobs]

    async with remote_client(remote.url) as http:
        await assert_holds(http, f"admin/mirror-{suffix}", "m-img", image, manifests_of(image))
        await assert_holds(http, f"admin/mirror-{suffix}", "m-multi", multi, manifests_of(multi))
        await assert_holds(
            http, f"admin/mirror-{suffix}", "m-app", bundle.index, application_manifests(bundle)
        )

    pushed = await events_of(app, ev.PUSH_MIRRORING, "admin/source")
    assert {e["sourceTag"]: e["status"] for e in pushed} == {
        "img": "succeeded",
        "multi": "succeeded",
        "app": "succeeded",
        "app-invoc": "succeeded",
    }
    app_event = next(e for e in pushed if e["sourceTag"] == "app")
    assert app_event["sourceDigest"] == bundle.index.digest
    assert app_event["remoteUrl"] == remote.url
    assert app_event["remoteTag"] == "m-app"
    assert app_event["remoteRepository"] == f"admin/mirror-{suffix}"
    got = (await local.get(f"{API}/repositories/admin/source/push-mirrors/{mirror['id']}")).json()
    assert got["lastStatus"] == "succeeded"
    assert got["lastJobId"] in {j.id for j in jobs}

    # ... and back: a pull mirror of the remote copy into another local repository.
    await make_repo(local, "admin/back")
    r = await local.post(
        f"{API}/repositories/admin/back/pull-mirrors",
        json=mirror_body(remote.url, f"admin/mirror-{suffix}", "admin", ADMIN_PASSWORD, cron="*/5 * * * *"),
    )
    assert r.status_code == 201, r.text
    pull = r.json()
    assert pull["cron"] == "*/5 * * * *"
    assert pull["nextRunAt"] is not None
    schedule = await app.services.jobs.get_schedule(f"mirror:pull:{pull['id']}")
    assert schedule is not None
    assert schedule.kind == "mirror.pull"

    r = await local.post(f"{API}/repositories/admin/back/pull-mirrors/{pull['id']}/sync")
    assert r.status_code == 202, r.text
    job = await run_job(app, r.json()["jobId"])
    assert job.status == "succeeded", (job.error, job.log)
    assert sorted(job.result["mirrored"]) == ["m-app", "m-app-invoc", "m-img", "m-multi"]
    await assert_holds(local, "admin/back", "m-img", image, manifests_of(image))
    await assert_holds(local, "admin/back", "m-multi", multi, manifests_of(multi))
    await assert_holds(local, "admin/back", "m-app", bundle.index, application_manifests(bundle))
    tags = {t["name"]: t for t in (await local.get(f"{API}/repositories/admin/back/tags")).json()}
    assert tags["m-app"]["type"] == "application"
    assert tags["m-multi"]["type"] == "multi-arch"
    polled = await events_of(app, ev.POLL_MIRRORING, "admin/back")
    assert sorted(e["remoteTag"] for e in polled) == ["m-app", "m-app-invoc", "m-img", "m-multi"]
    assert all(e["status"] == "succeeded" for e in polled)
    assert next(e for e in polled if e["remoteTag"] == "m-multi")["digest"] == multi.digest

    # A second poll finds nothing new; a changed remote tag is copied again.
    job = await run_job(
        app,
        (await local.post(f"{API}/repositories/admin/back/pull-mirrors/{pull['id']}/sync")).json()["jobId"],
    )
    assert job.status == "succeeded"
    assert job.result["mirrored"] == []
    newer = fx.image(seed=f"newer-{suffix}")
    async with remote_client(remote.url) as http:
        await push(http, f"admin/mirror-{suffix}", newer, "m-img")
    job = await run_job(
        app,
        (await local.post(f"{API}/repositories/admin/back/pull-mirrors/{pull['id']}/sync")).json()["jobId"],
    )
    assert job.result["mirrored"] == ["m-img"]
    await assert_holds(local, "admin/back", "m-img", newer, [newer])

    # Deleting the pull mirror removes its schedule.
    assert (await local.delete(f"{API}/repositories/admin/back/pull-mirrors/{pull['id']}")).status_code == 204
    assert await app.services.jobs.get_schedule(f"mirror:pull:{pull['id']}") is None
    assert (await local.get(f"{API}/repositories/admin/back/pull-mirrors")).json() == []


# -- the reference registry ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_push_and_pull_mirroring_with_the_reference_registry(
    app: MoorageApp, local: httpx.AsyncClient, reference: Reference
) -> None:
    await make_repo(local, "admin/ref-source")
    image = fx.image(seed="reference image")
    multi = fx.multi_arch(
        [fx.image(seed="reference amd64"), fx.image(arch="arm", variant="v7", seed="reference arm")]
    )
    bundle = fx.bundle_json_bundle(config_fallback="oci")
    # A layer larger than the client's chunk: it is streamed in PATCH chunks, not held whole.
    big_layer = os.urandom(9 << 20) + b"tail"
    big = fx.Built(
        {
            **image.document,
            "layers": [
                {"mediaType": mt.OCI_LAYER_GZIP, "digest": fx.digest_of(big_layer), "size": len(big_layer)}
            ],
        },
        mt.OCI_MANIFEST,
        image.config,
        image.config_blob,
        {fx.digest_of(big_layer): big_layer},
    )
    await push(local, "admin/ref-source", image, "img")
    await push(local, "admin/ref-source", multi, "multi")
    await push_bundle(local, "admin/ref-source", bundle, "app")
    await push(local, "admin/ref-source", big, "big")
    await push(local, "admin/ref-source", fx.image(seed="not mirrored"), "dev-1")

    # Wrong credentials: refused, nothing stored.
    r = await local.post(
        f"{API}/repositories/admin/ref-source/push-mirrors",
        json=mirror_body(reference.url, "mirrors/ref", "alice", "wrong"),
    )
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "credentials", r.text
    assert "refused" in r.json()["message"]
    assert (await local.get(f"{API}/repositories/admin/ref-source/push-mirrors")).json() == []

    # Content pushed before the mirror existed goes with "sync now"; rules leave dev-* out.
    rules = [{"field": "tag", "operator": "noneof", "value": ["dev-1"]}]
    r = await local.post(
        f"{API}/repositories/admin/ref-source/push-mirrors",
        json=mirror_body(reference.url, "mirrors/ref", reference.username, reference.password, rules=rules),
    )
    assert r.status_code == 201, r.text
    mirror = r.json()
    assert mirror["rules"] == rules
    r = await local.post(f"{API}/repositories/admin/ref-source/push-mirrors/{mirror['id']}/sync")
    job = await run_job(app, r.json()["jobId"])
    assert job.status == "succeeded", (job.error, job.log)
    assert sorted(job.result["mirrored"]) == ["app", "app-invoc", "big", "img", "multi"]
    assert "copied blob " + fx.digest_of(big_layer) in job.log

    async with remote_client(reference.url, (reference.username, reference.password)) as http:
        await assert_holds(http, "mirrors/ref", "img", image, manifests_of(image))
        await assert_holds(http, "mirrors/ref", "multi", multi, manifests_of(multi))
        await assert_holds(http, "mirrors/ref", "app", bundle.index, application_manifests(bundle))
        await assert_holds(http, "mirrors/ref", "big", big, [big])
        assert (
            await http.get("/v2/mirrors/ref/manifests/dev-1", headers={"Accept": ACCEPT})
        ).status_code == 404
        r = await http.get(f"/v2/mirrors/ref/blobs/{fx.digest_of(big_layer)}")
        assert hashlib.sha256(r.content).hexdigest() == fx.digest_of(big_layer).split(":")[1]

    # Syncing again sends nothing: every remote tag is the digest already.
    r = await local.post(f"{API}/repositories/admin/ref-source/push-mirrors/{mirror['id']}/sync")
    job = await run_job(app, r.json()["jobId"])
    assert job.status == "succeeded"
    assert "copied blob" not in job.log

    # Pull it all back from the reference registry, digests preserved.
    await make_repo(local, "admin/ref-back")
    r = await local.post(
        f"{API}/repositories/admin/ref-back/pull-mirrors",
        json=mirror_body(
            reference.url, "mirrors/ref", reference.username, reference.password, cron="0 * * * *"
        ),
    )
    assert r.status_code == 201, r.text
    r = await local.post(f"{API}/repositories/admin/ref-back/pull-mirrors/{r.json()['id']}/sync")
    job = await run_job(app, r.json()["jobId"])
    assert job.status == "succeeded", (job.error, job.log)
    await assert_holds(local, "admin/ref-back", "img", image, manifests_of(image))
    await assert_holds(local, "admin/ref-back", "multi", multi, manifests_of(multi))
    await assert_holds(local, "admin/ref-back", "app", bundle.index, application_manifests(bundle))
    await assert_holds(local, "admin/ref-back", "big", big, [big])
    r = await local.get(f"/v2/admin/ref-back/blobs/{fx.digest_of(big_layer)}")
    assert r.content == big_layer


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_credentials_the_remote_refuses_are_refused_and_nothing_is_stored(
    app: MoorageApp, local: httpx.AsyncClient, remote: ServerProcess
) -> None:
    await make_repo(local, "admin/creds")
    async with remote_client(remote.url) as http:
        r = await http.post(f"{API}/users", json={"username": "carol", "password": "carol-password-1"})
        assert r.status_code in (201, 409), r.text
    cases = [
        (mirror_body(remote.url, "admin/x", "admin", "not-the-password"), "refused"),
        (mirror_body(remote.url, "admin/x", "nobody", "whatever-password"), "refused"),
        # carol exists but may not push into admin/: the token service grants her nothing there
        (mirror_body(remote.url, "admin/x", "carol", "carol-password-1"), "does not let"),
        ({"url": remote.url, "remoteRepository": "admin/x"}, "does not let"),
    ]
    for body, words in cases:
        r = await local.post(f"{API}/repositories/admin/creds/push-mirrors", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "credentials", r.text
        assert words in r.json()["message"], r.text
    # carol may push into her own namespace: accepted
    r = await local.post(
        f"{API}/repositories/admin/creds/push-mirrors",
        json=mirror_body(remote.url, "carol/mine", "carol", "carol-password-1"),
    )
    assert r.status_code == 201, r.text
    mirror_id = r.json()["id"]
    # a pull mirror with wrong credentials, and an update to wrong ones: refused, nothing changed
    r = await local.post(
        f"{API}/repositories/admin/creds/pull-mirrors",
        json=mirror_body(remote.url, "carol/mine", "carol", "wrong-password", cron="* * * * *"),
    )
    assert r.status_code == 422
    assert r.json()["field"] == "credentials"
    assert (await local.get(f"{API}/repositories/admin/creds/pull-mirrors")).json() == []
    r = await local.patch(
        f"{API}/repositories/admin/creds/push-mirrors/{mirror_id}", json={"password": "wrong-password"}
    )
    assert r.status_code == 422
    assert r.json()["field"] == "credentials"
    r = await local.patch(f"{API}/repositories/admin/creds/push-mirrors/{mirror_id}", json={"username": None})
    assert r.status_code == 422  # anonymous may not push there
    assert r.json()["field"] == "credentials"
    image = fx.image(seed="carol's")
    await push(local, "admin/creds", image, "v1")
    jobs = await drive(app)
    assert [j.status for j in jobs] == ["succeeded"], [j.log for j in jobs]  # the stored password still works
    got = (await local.get(f"{API}/repositories/admin/creds/push-mirrors/{mirror_id}")).json()
    assert got["username"] == "carol"
    assert got["hasPassword"] is True

    # Paused: pushes queue nothing.
    r = await local.patch(f"{API}/repositories/admin/creds/push-mirrors/{mirror_id}", json={"enabled": False})
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is False
    await push(local, "admin/creds", fx.image(seed="paused"), "v2")
    assert await drive(app) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_remote_immutable_tag_is_reported_and_not_retried(
    app: MoorageApp, local: httpx.AsyncClient, remote: ServerProcess
) -> None:
    async with remote_client(remote.url) as http:
        r = await http.post(f"{API}/repositories", json={"name": "admin/frozen", "immutableTags": True})
        assert r.status_code == 201, r.text
    await make_repo(local, "admin/thaw")
    r = await local.post(
        f"{API}/repositories/admin/thaw/push-mirrors",
        json=mirror_body(remote.url, "admin/frozen", "admin", ADMIN_PASSWORD),
    )
    assert r.status_code == 201, r.text
    mirror_id = r.json()["id"]
    first, second = fx.image(seed="frozen 1"), fx.image(seed="frozen 2")
    await push(local, "admin/thaw", first, "v1")
    assert [j.status for j in await drive(app)] == ["succeeded"]
    await push(local, "admin/thaw", second, "v1")
    jobs = await drive(app)
    assert len(jobs) == 1
    job = jobs[0]
    assert job.status == "failed"
    assert job.attempts == 1
    assert job.max_attempts > 1
    assert "immutable" in job.log
    assert "refused" in (job.error or "")
    events = await events_of(app, ev.PUSH_MIRRORING, "admin/thaw")
    assert [e["status"] for e in events] == ["succeeded", "failed"]
    assert "immutable" in events[-1]["reason"]
    assert events[-1]["sourceDigest"] == second.digest
    got = (await local.get(f"{API}/repositories/admin/thaw/push-mirrors/{mirror_id}")).json()
    assert got["lastStatus"] == "failed"
    assert "v1" in got["lastError"]
    async with remote_client(remote.url) as http:
        await assert_holds(http, "admin/frozen", "v1", first, [first])


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_blobs_another_mirror_sent_are_mounted_at_the_remote(
    app: MoorageApp, local: httpx.AsyncClient, remote: ServerProcess
) -> None:
    image = fx.image(seed="shared base")
    for name in ("one", "two"):
        await make_repo(local, f"admin/mount-{name}")
        r = await local.post(
            f"{API}/repositories/admin/mount-{name}/push-mirrors",
            json=mirror_body(remote.url, f"admin/mounted-{name}", "admin", ADMIN_PASSWORD),
        )
        assert r.status_code == 201, r.text
    await push(local, "admin/mount-one", image, "v1")
    first = await drive(app)
    await push(local, "admin/mount-two", image, "v1")
    second = await drive(app)
    assert [j.status for j in first + second] == ["succeeded", "succeeded"]
    assert "copied blob" in first[0].log
    assert "copied blob" not in second[0].log
    assert f"mounted blob {fx.digest_of(image.config_blob or b'')} from admin/mounted-one" in second[0].log
    async with remote_client(remote.url) as http:
        await assert_holds(http, "admin/mounted-two", "v1", image, [image])


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_pull_mirror_respects_local_immutable_tags_and_rules(
    app: MoorageApp, local: httpx.AsyncClient, remote: ServerProcess
) -> None:
    one, two, other = fx.image(seed="pull 1"), fx.image(seed="pull 2"), fx.image(seed="pull other")
    async with remote_client(remote.url) as http:
        await push(http, "admin/upstream", one, "v1")
        await push(http, "admin/upstream", other, "nightly")
    await make_repo(local, "admin/downstream", immutableTags=True)
    r = await local.post(
        f"{API}/repositories/admin/downstream/pull-mirrors",
        json=mirror_body(
            remote.url,
            "admin/upstream",
            "admin",
            ADMIN_PASSWORD,
            cron="*/10 * * * *",
            rules=[{"field": "tag", "operator": "startswith", "value": "v"}],
        ),
    )
    assert r.status_code == 201, r.text
    mirror_id = r.json()["id"]
    sync = f"{API}/repositories/admin/downstream/pull-mirrors/{mirror_id}/sync"
    job = await run_job(app, (await local.post(sync)).json()["jobId"])
    assert job.result == {"mirrored": ["v1"], "refused": [], "skipped": []}
    async with remote_client(remote.url) as http:
        await push(http, "admin/upstream", two, "v1")
    job = await run_job(app, (await local.post(sync)).json()["jobId"])
    assert job.status == "succeeded"
    assert job.result["skipped"] == ["v1"]
    assert "immutable" in job.log
    await assert_holds(local, "admin/downstream", "v1", one, [one])
    assert [e["status"] for e in await events_of(app, ev.POLL_MIRRORING, "admin/downstream")] == ["succeeded"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_remote_that_is_down_is_retried_with_backoff(
    app: MoorageApp, local: httpx.AsyncClient, tmp_path: Path
) -> None:
    port = free_port()
    server = start_server(tmp_path / "flaky", port=port)
    try:
        await make_repo(local, "admin/retry")
        r = await local.post(
            f"{API}/repositories/admin/retry/push-mirrors",
            json=mirror_body(server.url, "admin/retried", "admin", ADMIN_PASSWORD),
        )
        assert r.status_code == 201, r.text
    finally:
        server.stop()
    app.services.mirroring.backoff_seconds = 0.0
    image = fx.image(seed="retried")
    await push(local, "admin/retry", image, "v1")
    jobs = await drive(app)  # the remote is down: each attempt fails, until the last
    assert [j.status for j in jobs][-1] == "failed"
    assert len(jobs) == app.services.mirroring.push_attempts
    assert "cannot reach" in (jobs[-1].error or "")
    events = await events_of(app, ev.PUSH_MIRRORING, "admin/retry")
    assert [e["status"] for e in events] == ["failed"]  # reported once, after the last attempt

    server = start_server(tmp_path / "flaky", port=port)
    try:
        await push(local, "admin/retry", fx.image(seed="retried 2"), "v2")
        jobs = await drive(app)
        assert [j.status for j in jobs] == ["succeeded"]
        async with remote_client(server.url) as http:
            assert (
                await http.get("/v2/admin/retried/manifests/v2", headers={"Accept": ACCEPT})
            ).status_code == 200
    finally:
        server.stop()


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_bad_mirror_settings_are_refused_with_the_field_at_fault(
    app: MoorageApp, local: httpx.AsyncClient, remote: ServerProcess
) -> None:
    await make_repo(local, "admin/bad")
    good = mirror_body(remote.url, "admin/anything", "admin", ADMIN_PASSWORD)
    push_cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "url": "ftp://example.com"}, "url"),
        ({**good, "url": "http://127.0.0.1:1/some/path"}, "url"),
        ({**good, "url": f"http://127.0.0.1:{free_port()}"}, "url"),  # nothing listens there
        ({**good, "remoteRepository": "Not/Valid"}, "remoteRepository"),
        ({**good, "tagTemplate": "%q"}, "tagTemplate"),
        ({**good, "tagTemplate": "-%n"}, "tagTemplate"),
        ({**good, "rules": [{"field": "colour", "operator": "eq", "value": "x"}]}, "rules"),
        ({**good, "rules": [{"field": "tag", "operator": "matches", "value": "("}]}, "rules"),
        ({**good, "rules": [{"field": "vulnerability.critical", "operator": "eq", "value": 0}]}, "rules"),
        ({**good, "password": None}, "credentials"),
        ({**good, "caCertificate": "not a certificate"}, "caCertificate"),
    ]
    for body, field in push_cases:
        r = await local.post(f"{API}/repositories/admin/bad/push-mirrors", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["field"] == field, (body, r.text)
    pull_cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "cron": "every minute"}, "cron"),
        (
            {
                **good,
                "cron": "* * * * *",
                "rules": [{"field": "pushed", "operator": "olderthan", "value": "1d"}],
            },
            "rules",
        ),
    ]
    for body, field in pull_cases:
        r = await local.post(f"{API}/repositories/admin/bad/pull-mirrors", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["field"] == field, (body, r.text)
    r = await local.post(f"{API}/repositories/admin/bad/pull-mirrors", json=good)
    assert r.status_code == 422
    assert r.json()["field"] == "cron"
    assert (await local.get(f"{API}/repositories/admin/bad/push-mirrors")).json() == []
    assert (await local.get(f"{API}/repositories/admin/bad/pull-mirrors")).json() == []
    assert await app.services.jobs.schedules("mirror:pull:") == []

    # Only the repository's administrators manage its mirrors.
    r = await local.post(f"{API}/users", json={"username": "dave", "password": "dave-password-1"})
    assert r.status_code == 201, r.text
    r = await local.post(f"{API}/repositories", json={"name": "dave/own"})
    assert r.status_code == 201, r.text
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://moorage.test",
        auth=("dave", "dave-password-1"),
    ) as dave:
        assert (await dave.get(f"{API}/repositories/admin/bad/push-mirrors")).status_code == 404
        r = await dave.post(f"{API}/repositories/admin/bad/push-mirrors", json=good)
        assert r.status_code == 404
    r = await local.get(f"{API}/repositories/admin/bad/push-mirrors/12345")
    assert r.status_code == 404
    r = await local.put(f"{API}/repositories/admin/bad/push-mirrors")
    assert r.status_code == 405
