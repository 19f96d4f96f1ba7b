"""Garbage collection under concurrent pushes loses nothing that is referenced.

A real ``moorage serve`` process takes pushes over HTTP from several clients at once (images
sharing layers across repositories, tag overwrites, indexes whose children are pushed by
digest first, signatures attached as referrers, a client that makes garbage with the same
layers) while collections run back to back with a grace period of 0: through the API (a job
in the server) and through ``moorage gc run`` (another process on the same database and
store). A grace of 0 may collect a blob between its upload and the manifest that references
it: the push then fails cleanly (``MANIFEST_BLOB_UNKNOWN`` / ``BLOB_UPLOAD_INVALID``) and
the client pushes again, as real clients do. Afterwards everything tagged, every child and
every referrer of a tagged manifest is pulled back and every digest checked, the garbage is
gone, and the database and store agree.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from tests.conftest import ADMIN_PASSWORD, Backend, ServerProcess, backend_env, make_settings
from tests.services.test_gc import consistency_problems, pull_verified

from moorage.services.container import build_services

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
RETRYABLE = {"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "MANIFEST_UNKNOWN"}
PUSHERS = 3
IMAGES_PER_PUSHER = 8


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _bytes(seed: str, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


SHARED_LAYERS = [_bytes(f"shared-{i}", 2_000 + 37_000 * i) for i in range(6)]


@dataclass
class Built:
    manifest: bytes
    media_type: str
    blobs: list[bytes]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def _descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def image(seed: str, rng: random.Random, arch: str = "amd64") -> Built:
    config = json.dumps({"architecture": arch, "os": "linux", "seed": seed}).encode()
    layers = [*rng.sample(SHARED_LAYERS, 2), _bytes(f"unique-{seed}", rng.randint(100, 20000))]
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar", layer) for layer in layers],
    }
    return Built(json.dumps(doc).encode(), OCI_MANIFEST, [config, *layers])


def index(children: list[tuple[Built, str]]) -> Built:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {**_descriptor(c.media_type, c.manifest), "platform": {"os": "linux", "architecture": arch}}
            for c, arch in children
        ],
    }
    return Built(json.dumps(doc).encode(), OCI_INDEX, [])


def signature(subject: Built, seed: str) -> Built:
    payload = f"signature {seed} of {subject.digest}".encode()
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": _descriptor("application/vnd.oci.empty.v1+json", b"{}"),
        "layers": [_descriptor("application/vnd.dev.cosign.simplesigning.v1+json", payload)],
        "subject": _descriptor(subject.media_type, subject.manifest),
    }
    return Built(json.dumps(doc).encode(), OCI_MANIFEST, [b"{}", payload])


class Retry(Exception):
    """The registry refused something garbage collection removed meanwhile: push again."""


@dataclass
class Outcome:
    tags: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, tag) -> digest
    referrers: list[tuple[str, str, str]] = field(default_factory=list)  # (repo, subject, referrer)
    garbage: list[tuple[str, str]] = field(default_factory=list)  # (repo, digest) untagged for good
    retries: int = 0
    pushes: int = 0


def _code(r: httpx.Response) -> str:
    try:
        return str(r.json()["errors"][0]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


class Client:
    def __init__(self, http: httpx.AsyncClient, rng: random.Random, outcome: Outcome) -> None:
        self.http, self.rng, self.outcome = http, rng, outcome

    def _refused(self, r: httpx.Response, what: str) -> None:
        if r.status_code in (400, 404) and _code(r) in RETRYABLE:
            raise Retry(f"{what}: {_code(r)}")
        raise AssertionError(f"{what}: {r.status_code} {r.text[:300]}")

    async def blob(self, repo: str, data: bytes, mount_from: str | None) -> None:
        digest = sha256(data)
        if (await self.http.head(f"/v2/{repo}/blobs/{digest}")).status_code == 200:
            return  # a real client skips what the registry says it has
        mode = self.rng.choice(
            ["monolithic", "chunked", "mount"] if mount_from else ["monolithic", "chunked"]
        )
        if mode == "mount":
            r = await self.http.post(
                f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": mount_from}
            )
            if r.status_code == 201:
                return
            assert r.status_code == 202, r.text
            location = r.headers["Location"]
            r = await self.http.put(location, params={"digest": digest}, content=data)
        elif mode == "chunked":
            r = await self.http.post(f"/v2/{repo}/blobs/uploads/")
            assert r.status_code == 202, r.text
            location, half = r.headers["Location"], len(data) // 2
            r = await self.http.patch(
                location,
                content=data[:half],
                headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{half - 1}"},
            )
            assert r.status_code == 202, r.text
            r = await self.http.put(r.headers["Location"], params={"digest": digest}, content=data[half:])
        else:
            r = await self.http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
        if r.status_code != 201:
            self._refused(r, f"upload {digest} to {repo}")

    async def manifest(self, repo: str, reference: str, built: Built) -> None:
        r = await self.http.put(
            f"/v2/{repo}/manifests/{reference}",
            content=built.manifest,
            headers={"Content-Type": built.media_type},
        )
        if r.status_code != 201:
            self._refused(r, f"manifest {repo}:{reference}")
        assert r.headers["Docker-Content-Digest"] == built.digest

    async def push(self, repo: str, steps: list[tuple[Built, str]], mount_from: str | None = None) -> None:
        """Push each (manifest, reference) with its blobs, in order; all again after a refusal."""
        for _attempt in range(60):
            try:
                for built, reference in steps:
                    for data in built.blobs:
                        await self.blob(repo, data, mount_from)
                    await self.manifest(repo, reference, built)
                self.outcome.pushes += 1
                return
            except Retry:
                self.outcome.retries += 1
                await asyncio.sleep(self.rng.random() * 0.05)
        raise AssertionError(f"{repo}: could not push {[r for _, r in steps]} in 60 attempts")


async def keeper(http: httpx.AsyncClient, n: int, outcome: Outcome) -> None:
    """Tags images (overwriting some tags), indexes and signatures in two repositories of its own."""
    rng = random.Random(n)
    c = Client(http, rng, outcome)
    repos = [f"keep{n}/app", f"keep{n}/other"]
    for j in range(IMAGES_PER_PUSHER):
        repo = repos[j % 2]
        first = image(f"{n}-{j}-first", rng)
        await c.push(repo, [(first, f"v{j}")], mount_from=repos[(j + 1) % 2])
        if j % 2 == 0:  # the tag moves on: `first` becomes garbage
            final = image(f"{n}-{j}-final", rng)
            await c.push(repo, [(final, f"v{j}")], mount_from="scratch/garbage")
            outcome.garbage.append((repo, first.digest))
        else:
            final = first
        outcome.tags[(repo, f"v{j}")] = final.digest
        sig = signature(final, f"{n}-{j}")
        await c.push(repo, [(sig, sig.digest)])
        outcome.referrers.append((repo, final.digest, sig.digest))
        if j % 3 == 0:  # a two-platform index, children pushed by digest first
            amd, arm = image(f"{n}-{j}-amd", rng), image(f"{n}-{j}-arm", rng, "arm64")
            idx = index([(amd, "amd64"), (arm, "arm64")])
            await c.push(repo, [(amd, amd.digest), (arm, arm.digest), (idx, f"multi{j}")])
            outcome.tags[(repo, f"multi{j}")] = idx.digest


async def litterer(http: httpx.AsyncClient, outcome: Outcome, done: asyncio.Event) -> None:
    """Makes garbage with the keepers' layers: tags, then untags; uploads blobs nothing uses."""
    rng = random.Random(99)
    c = Client(http, rng, outcome)
    j = 0
    while not done.is_set() or j < 4:
        built = image(f"litter-{j}", rng)
        await c.push("scratch/garbage", [(built, "tmp")])  # the previous one is untagged now
        outcome.garbage.append(("scratch/garbage", built.digest))
        try:
            await c.blob("scratch/garbage", _bytes(f"loose-{j}", 3_000), None)
        except Retry:
            outcome.retries += 1
        j += 1
        await asyncio.sleep(0.01)
    r = await http.delete("/v2/scratch/garbage/manifests/tmp")
    assert r.status_code == 202, r.text


@dataclass
class Collections:
    runs: int = 0
    manifests: int = 0
    blobs: int = 0
    cli_runs: int = 0


async def api_collection(http: httpx.AsyncClient) -> dict[str, Any]:
    r = await http.post("/api/v1/system/gc", json={"dryRun": False, "graceSeconds": 0})
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = (await http.get(f"/api/v1/system/gc/runs/{run_id}")).json()
        if run["status"] in ("succeeded", "failed"):
            assert run["status"] == "succeeded", run
            return dict(run)
        await asyncio.sleep(0.05)
    raise AssertionError(f"garbage collection run {run_id} did not finish")


async def cli_collection(server: ServerProcess, backend: Backend) -> str:
    env = {
        **os.environ,
        "MOORAGE_DURABLE_WRITES": "false",
        "MOORAGE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        **backend_env(backend),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "moorage",
        "gc",
        "run",
        "--grace",
        "0",
        "--data-dir",
        str(server.data_dir),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text
    return text


async def collector(
    http: httpx.AsyncClient, server: ServerProcess, backend: Backend, done: asyncio.Event, stats: Collections
) -> None:
    """Collections back to back, alternating the server's job and the CLI, until the pushes end."""
    while not done.is_set():
        if stats.runs % 3 == 2:
            text = await cli_collection(server, backend)
            manifests = re.search(r"sweep: deleted (\d+) manifests", text)
            blobs = re.search(r"sweep: deleted (\d+) blobs", text)
            assert manifests is not None, text
            assert blobs is not None, text
            stats.manifests += int(manifests[1])
            stats.blobs += int(blobs[1])
            stats.cli_runs += 1
        else:
            run = await api_collection(http)
            stats.manifests += run["manifestsDeleted"]
            stats.blobs += run["blobsDeleted"]
        stats.runs += 1


async def test_pushes_during_collections_lose_nothing_referenced(
    server: ServerProcess, backend: Backend
) -> None:
    outcome, stats, done = Outcome(), Collections(), asyncio.Event()
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(
        base_url=server.url, auth=(server.username, server.password), timeout=60, limits=limits
    ) as http:

        async def pushes() -> None:
            try:
                await asyncio.gather(*(keeper(http, n, outcome) for n in range(PUSHERS)))
                while stats.runs < 3:  # on a fast machine: the litterer goes on while they happen
                    await asyncio.sleep(0.1)
            finally:
                done.set()

        await asyncio.gather(
            pushes(), litterer(http, outcome, done), collector(http, server, backend, done, stats)
        )

        # the collections really ran alongside, and really collected
        assert stats.runs >= 3, stats
        assert stats.cli_runs >= 1, stats
        assert stats.manifests > 0, stats
        assert stats.blobs > 0, stats
        final = await api_collection(http)  # and once more, with nothing pushing

        for (repo, tag), digest in sorted(outcome.tags.items()):
            r = await http.head(f"/v2/{repo}/manifests/{tag}")
            assert r.status_code == 200, (repo, tag)
            assert r.headers["Docker-Content-Digest"] == digest, (repo, tag)
            await pull_verified(http, repo, tag)
        for repo, subject, referrer in outcome.referrers:
            await pull_verified(http, repo, referrer)
            listed = (await http.get(f"/v2/{repo}/referrers/{subject}")).json()["manifests"]
            assert referrer in {m["digest"] for m in listed}
        for repo, digest in outcome.garbage:
            assert (await http.get(f"/v2/{repo}/manifests/{digest}")).status_code == 404, (repo, digest)
        loose = sha256(_bytes("loose-0", 3_000))
        assert (await http.get(f"/v2/scratch/garbage/blobs/{loose}")).status_code == 404
        runs = (await http.get("/api/v1/system/gc/runs", params={"perPage": 200})).json()
        assert runs["total"] == stats.runs + 1
        assert all(r["status"] == "succeeded" for r in runs["items"])
        print(
            f"\n{backend.name}: {outcome.pushes} pushes ({outcome.retries} retried), {stats.runs} collections "
            f"during them ({stats.cli_runs} from the CLI) removed {stats.manifests} manifests and "
            f"{stats.blobs} blobs; the last removed {final['manifestsDeleted']} manifests"
        )
    server.stop()

    services = build_services(make_settings(server.data_dir, backend))
    try:
        assert await consistency_problems(services) == []
    finally:
        await services.close()
