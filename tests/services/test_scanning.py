"""Scans end to end: images built here from real package data, pushed through /v2, matched
against the shared OSV data; multi-arch images, applications, overrides, rescans, the queue."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import tarfile
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import SHARED, make_settings
from tests.oci import fixtures_cnab as fx
from tests.scanner.inventory.layerkit import Member, file, layer
from tests.services.test_artifacts import push, push_bundle

from moorage.app import MoorageApp, create_app
from moorage.config import Settings
from moorage.db import scans as q
from moorage.jobs.scans import ScanWorker
from moorage.oci import mediatypes as mt

OSV = SHARED / "testdata" / "osv"
DEBIAN_11_OS_RELEASE = (
    b'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nNAME="Debian GNU/Linux"\nVERSION_ID="11"\n'
    b'VERSION="11 (bullseye)"\nVERSION_CODENAME=bullseye\nID=debian\n'
)
#: A bullseye openssl release: later Debian security advisories fix it.
OLD_OPENSSL = "1.1.1n-0+deb11u1"
DJANGO_METADATA = (
    "Metadata-Version: 2.1\nName: Django\nVersion: 3.2\nSummary: A high-level Python Web framework that "
    "encourages rapid development and clean, pragmatic design.\nHome-page: https://www.djangoproject.com/\n"
    "Author: Django Software Foundation\nLicense: BSD-3-Clause\nRequires-Python: >=3.6\n"
    "Requires-Dist: asgiref (<4,>=3.3.2)\nRequires-Dist: pytz\nRequires-Dist: sqlparse (>=0.2.2)\n"
)
DJANGO_DIR = "usr/lib/python3/dist-packages/Django-3.2.dist-info"
REPO = "lab/scanned"


def dpkg_status() -> bytes:
    """This machine's dpkg database, with openssl set back to a vulnerable bullseye release."""
    text = Path("/var/lib/dpkg/status").read_text()
    stanzas = text.split("\n\n")
    out = []
    for stanza in stanzas:
        if re.search(r"^Package: openssl$", stanza, re.M):
            stanza = re.sub(r"^Version: .*$", f"Version: {OLD_OPENSSL}", stanza, flags=re.M)
        out.append(stanza)
    return "\n\n".join(out).encode()


def os_layer() -> bytes:
    return layer([file("etc/os-release", DEBIAN_11_OS_RELEASE), file("var/lib/dpkg/status", dpkg_status())])


@contextlib.asynccontextmanager
async def registry_with(
    tmp_path: Path, backend: Any, **overrides: Any
) -> AsyncIterator[tuple[MoorageApp, httpx.AsyncClient]]:
    """An app with its own settings and a client signed in as the administrator."""
    settings = make_settings(tmp_path / "data", backend, **overrides)
    application = create_app(settings)
    await application.services.prepare()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),
            base_url="http://moorage.test",
            auth=("admin", settings.admin_password or ""),
        ) as client:
            yield application, client
    finally:
        await application.services.db.close()


def django_layer() -> bytes:
    return layer([file(f"{DJANGO_DIR}/METADATA", DJANGO_METADATA)])


def oci_image(layers: list[bytes], arch: str = "amd64", variant: str | None = None) -> fx.Built:
    cfg = fx.image_config("linux", arch, variant)
    cfg["rootfs"] = {"type": "layers", "diff_ids": [fx.digest_of(gzip.decompress(x)) for x in layers]}
    blob = fx.canonical(cfg)
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": fx.descriptor(mt.OCI_CONFIG, blob),
        "layers": [fx.descriptor(mt.OCI_LAYER_GZIP, x) for x in layers],
    }
    return fx.Built(doc, mt.OCI_MANIFEST, cfg, blob, {fx.digest_of(x): x for x in layers})


def _subset(directory: Path, archive: Path, packages: set[str]) -> None:
    with zipfile.ZipFile(archive) as z:
        for name in z.namelist():
            data = z.read(name)
            record = json.loads(data)
            if any(a.get("package", {}).get("name") in packages for a in record.get("affected", [])):
                (directory / Path(name).name).write_bytes(data)


@pytest.fixture(scope="module")
def osv_openssl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("osv-openssl")
    _subset(d, OSV / "Debian" / "all.zip", {"openssl"})
    return d


@pytest.fixture(scope="module")
def osv_django(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("osv-django")
    _subset(d, OSV / "PyPI" / "all.zip", {"django"})
    return d


@pytest.fixture
async def vulndb(app: MoorageApp, osv_openssl: Path, osv_django: Path) -> None:
    await app.services.vulndb.import_path(osv_openssl)
    await app.services.vulndb.import_path(osv_django)


async def report(client: httpx.AsyncClient, digest: str, repo: str = REPO) -> dict[str, Any]:
    r = await client.get(f"/api/v1/repositories/{repo}/manifests/{digest}/vulnerabilities")
    assert r.status_code == 200, r.text
    return dict(r.json())


def ids(findings: list[dict[str, Any]]) -> set[str]:
    return {f["id"] for f in findings}


SEVERITIES = ("critical", "high", "medium", "low", "unknown")


def counted(findings: list[dict[str, Any]]) -> dict[str, int]:
    """The summary the findings make; every finding is in exactly one bucket (``unknown`` when unrated)."""
    assert all(f["severity"] in SEVERITIES for f in findings)
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITIES}
    assert sum(counts.values()) == len(findings)
    return counts


async def test_image_scan_reports_os_and_python_findings_with_layer_and_path(
    app: MoorageApp, client: httpx.AsyncClient, vulndb: None
) -> None:
    base, django = os_layer(), django_layer()
    image = oci_image([base, django])
    await push(client, REPO, image, "1.0")
    tags = (await client.get(f"/api/v1/repositories/{REPO}/tags")).json()
    assert tags[0]["scan"]["status"] == "pending"  # scan on push queued it
    assert (await report(client, image.digest))["status"] == "pending"

    assert await app.services.scanning.work_pending() == 1
    body = await report(client, image.digest)
    assert body["status"] == "completed"
    by_id = {f["id"]: f for f in body["findings"]}
    for dsa in ("DSA-5139-1", "DSA-5169-1", "DSA-5343-1"):
        assert by_id[dsa]["package"] == "openssl"
        assert by_id[dsa]["version"] == OLD_OPENSSL
        assert by_id[dsa]["layer"] == fx.digest_of(base)
        assert by_id[dsa]["path"] == "var/lib/dpkg/status"
        assert by_id[dsa]["ecosystem"] == "Debian:11"
        assert (by_id[dsa]["severity"], by_id[dsa]["score"]) == ("unknown", None)  # DSAs carry no rating
    assert "DSA-4963-1" not in by_id  # fixed before the installed version
    pysec = by_id["PYSEC-2021-7"]
    assert pysec["package"].lower() == "django"
    assert pysec["layer"] == fx.digest_of(django)
    assert pysec["path"] == f"{DJANGO_DIR}/METADATA"
    assert "CVE-2021-31542" in pysec["aliases"]
    assert pysec["fixedVersions"]
    counts = body["summary"]
    assert counts == counted(body["findings"])
    assert counts["unknown"] >= 3

    tags = (await client.get(f"/api/v1/repositories/{REPO}/tags")).json()
    assert tags[0]["scan"] == {"status": "completed", **counts}

    sbom = (await client.get(f"/api/v1/repositories/{REPO}/manifests/{image.digest}/sbom")).json()
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["specVersion"] == "1.5"
    purls = {c.get("purl") for c in sbom["components"]}
    assert "pkg:pypi/django@3.2" in purls
    assert any(p and p.startswith("pkg:deb/debian/openssl@1.1.1n-0%2Bdeb11u1") for p in purls)


async def test_whiteout_removes_a_vulnerable_package(
    app: MoorageApp, client: httpx.AsyncClient, vulndb: None
) -> None:
    removal = layer([Member(f"{Path(DJANGO_DIR).parent}/.wh.{Path(DJANGO_DIR).name}")])
    image = oci_image([os_layer(), django_layer(), removal])
    await push(client, REPO, image, "removed")
    await app.services.scanning.work_pending()
    body = await report(client, image.digest)
    assert body["status"] == "completed"
    assert "PYSEC-2021-7" not in ids(body["findings"])
    assert "DSA-5139-1" in ids(body["findings"])


async def test_override_hides_a_finding_from_counts(
    app: MoorageApp, client: httpx.AsyncClient, vulndb: None
) -> None:
    image = oci_image([django_layer()])
    await push(client, REPO, image, "py")
    await app.services.scanning.work_pending()
    before = await report(client, image.digest)
    assert "PYSEC-2021-7" in ids(before["findings"])
    url = f"/api/v1/repositories/{REPO}/manifests/{image.digest}/vulnerabilities/overrides"
    r = await client.post(url, json={"id": "PYSEC-2021-7", "package": "Django", "note": "not reachable"})
    assert r.status_code == 204, r.text
    after = await report(client, image.digest)
    assert "PYSEC-2021-7" not in ids(after["findings"])
    hidden = next(h for h in after["hidden"] if h["id"] == "PYSEC-2021-7")
    assert hidden["override"]["note"] == "not reachable"
    assert after["summary"] == counted(after["findings"])
    r = await client.delete(url, params={"id": "PYSEC-2021-7", "package": "Django"})
    assert r.status_code == 204, r.text
    assert "PYSEC-2021-7" in ids((await report(client, image.digest))["findings"])


async def test_multi_arch_image_scans_every_platform(
    app: MoorageApp, client: httpx.AsyncClient, vulndb: None
) -> None:
    amd64 = oci_image([os_layer()])
    arm64 = oci_image([django_layer()], arch="arm64", variant="v8")
    index = fx.multi_arch([amd64, arm64])
    await push(client, REPO, index, "multi")
    assert await app.services.scanning.work_pending() == 2
    body = await report(client, index.digest)
    assert body["status"] == "completed"
    assert {"DSA-5139-1", "PYSEC-2021-7"} <= ids(body["findings"])
    platforms = {p["architecture"]: p for p in body["platforms"]}
    assert platforms["amd64"]["digest"] == amd64.digest
    assert platforms["arm64"]["status"] == "completed"
    assert platforms["arm64"]["digest"] == arm64.digest
    assert platforms["amd64"]["variant"] is None


def _real_image(
    os_: str = "linux",
    arch: str = "amd64",
    variant: str | None = None,
    *,
    docker: bool = False,
    config: dict[str, Any] | None = None,
    seed: str = "",
) -> fx.Built:
    layers = [django_layer(), layer([file(f"srv/{seed}/{arch}", seed)])]
    return oci_image(layers, arch, variant)


async def test_application_is_pending_until_every_component_is_scanned(
    app: MoorageApp, client: httpx.AsyncClient, vulndb: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fx, "image", _real_image)
    bundle = fx.bundle_json_bundle()  # components: an image and a multi-arch image (two platforms)
    await push_bundle(client, REPO, bundle, "app")
    scanning = app.services.scanning
    images = await scanning.enqueue(REPO, bundle.index.digest)
    assert len(images) == 4  # invocation, another-image, image-1 amd64 and arm64
    for _ in range(len(images) - 1):
        scan_id = await scanning.claim_next()
        assert scan_id is not None
        await scanning.run_claimed(scan_id)
        assert (await scanning.summary(REPO, bundle.index.digest))["status"] == "pending"
        tags = {t["name"]: t for t in (await client.get(f"/api/v1/repositories/{REPO}/tags")).json()}
        assert tags["app"]["scan"]["status"] == "pending"
    last = await scanning.claim_next()
    assert last is not None
    await scanning.run_claimed(last)
    body = await report(client, bundle.index.digest)
    assert body["status"] == "completed"
    assert "PYSEC-2021-7" in ids(body["findings"])
    assert body["summary"] == counted(body["findings"])  # deduplicated over components
    assert len([f for f in body["findings"] if f["id"] == "PYSEC-2021-7"]) == 1
    components = {c["name"]: c for c in body["components"]}
    assert set(components) == {"invocation", "another-image", "image-1"}
    assert all(c["status"] == "completed" for c in components.values())
    assert components["image-1"]["digest"] == bundle.components["image-1"].digest
    assert components["image-1"]["reference"] == "my.registry/namespace/image-1"
    tags = {t["name"]: t for t in (await client.get(f"/api/v1/repositories/{REPO}/tags")).json()}
    assert tags["app"]["scan"] == {"status": "completed", **body["summary"]}
    assert tags["app-invoc"]["scan"]["status"] == "completed"


async def test_rescan_after_a_database_update_reads_no_layer(
    app: MoorageApp, client: httpx.AsyncClient, osv_openssl: Path, osv_django: Path
) -> None:
    await app.services.vulndb.import_path(osv_openssl)
    base, django = os_layer(), django_layer()
    image = oci_image([base, django])
    await push(client, REPO, image, "1.0")
    await app.services.scanning.work_pending()
    before = await report(client, image.digest)
    assert "PYSEC-2021-7" not in ids(before["findings"])
    assert "DSA-5139-1" in ids(before["findings"])
    for blob in (base, django):  # a rescan that read a layer would now fail
        assert await app.services.store.delete(fx.digest_of(blob))
    await app.services.vulndb.import_path(osv_django)
    assert await app.services.scanning.rescan_all() == 1
    after = await report(client, image.digest)
    assert after["status"] == "completed"
    assert {"PYSEC-2021-7", "DSA-5139-1"} <= ids(after["findings"])


async def test_rescan_through_the_api_import(
    app: MoorageApp, client: httpx.AsyncClient, osv_django: Path, tmp_path: Path
) -> None:
    image = oci_image([django_layer()])
    await push(client, REPO, image, "1.0")
    await app.services.scanning.work_pending()
    assert (await report(client, image.digest))["findings"] == []
    archive = tmp_path / "django.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in osv_django.iterdir():
            tar.add(path, arcname=path.name)
    r = await client.post("/api/v1/system/vulndb", content=archive.read_bytes())
    assert r.status_code == 200, r.text
    assert r.json()["rematched"] == 1
    status = (await client.get("/api/v1/system/vulndb")).json()
    assert status["version"] == r.json()["version"]
    assert status["ecosystems"]["PyPI"] >= 1
    assert "PYSEC-2021-7" in ids((await report(client, image.digest))["findings"])


async def test_corrupt_layer_fails_with_a_clear_reason(
    app: MoorageApp, client: httpx.AsyncClient, vulndb: None
) -> None:
    good = os_layer()
    truncated = good[: len(good) // 2]
    image = oci_image([django_layer()])
    doc = dict(image.document)
    doc["layers"] = [fx.descriptor(mt.OCI_LAYER_GZIP, truncated)]
    broken = fx.Built(
        doc, mt.OCI_MANIFEST, image.config, image.config_blob, {fx.digest_of(truncated): truncated}
    )
    await push(client, REPO, broken, "broken")
    await app.services.scanning.work_pending()
    body = await report(client, broken.digest)
    assert body["status"] == "failed"
    async with app.services.db.read() as conn:
        reason = (await q.scans_of(conn, 1, [broken.digest]))[broken.digest].reason
    assert reason is not None
    assert fx.digest_of(truncated) in reason
    assert "corrupt or truncated" in reason
    assert (await client.get("/healthz")).status_code == 200


async def test_manual_scan_needs_read_write_and_scan_on_push_can_be_off(
    tmp_path: Path, backend: Any, osv_django: Path
) -> None:
    async with registry_with(tmp_path, backend, scan_on_push_default=False) as (application, client):
        image = oci_image([django_layer()])
        await push(client, REPO, image, "1.0")
        assert (await report(client, image.digest))["status"] == "not_scanned"
        r = await client.post(f"/api/v1/repositories/{REPO}/manifests/{image.digest}/scan")
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "pending"
        await application.services.scanning.work_pending()
        assert (await report(client, image.digest))["status"] == "completed"


async def test_a_repository_setting_overrides_the_scan_on_push_default(
    tmp_path: Path, backend: Any, osv_django: Path
) -> None:
    async with registry_with(tmp_path, backend, scan_on_push_default=False) as (_, client):
        namespace = REPO.split("/")[0]
        assert (await client.post("/api/v1/organizations", json={"name": namespace})).status_code == 201
        r = await client.post("/api/v1/repositories", json={"name": REPO, "scanOnPush": True})
        assert r.status_code == 201, r.text
        assert r.json()["scanOnPush"] is True
        image = oci_image([django_layer()])
        await push(client, REPO, image, "1.0")
        assert (await report(client, image.digest))["status"] == "pending"
        r = await client.patch(f"/api/v1/repositories/{REPO}", json={"scanOnPush": False})
        assert r.json()["scanOnPush"] is False
        other = oci_image([django_layer(), layer([file("etc/motd", b"hello")])])
        await push(client, REPO, other, "2.0")
        assert (await report(client, other.digest))["status"] == "not_scanned"


async def _wait_completed(application: MoorageApp, digest: str) -> dict[str, Any]:
    for _ in range(200):
        summary = await application.services.scanning.summary(REPO, digest)
        if summary["status"] in ("completed", "failed"):
            return summary
        await asyncio.sleep(0.05)
    raise AssertionError(f"scan of {digest} did not finish: {summary}")


async def _findings(application: MoorageApp, digest: str) -> list[Any]:
    async with application.services.db.read() as conn:
        scan = (await q.scans_of(conn, 1, [digest]))[digest]
        return (await q.findings_of(conn, [scan.id]))[scan.id]


async def test_queue_survives_a_restart(settings: Settings, osv_django: Path) -> None:
    first = create_app(settings)
    await first.services.prepare()
    image = oci_image([django_layer()])
    try:
        await first.services.vulndb.import_path(osv_django)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=first),
            base_url="http://moorage.test",
            auth=("admin", settings.admin_password or ""),
        ) as client:
            await push(client, REPO, image, "1.0")
        # a worker was killed mid-scan: its row stays 'scanning'
        scan_id = await first.services.scanning.claim_next()
        assert scan_id is not None
    finally:
        await first.services.db.close()

    second = create_app(settings)
    await second.services.prepare()
    worker = asyncio.create_task(ScanWorker(second.services.scanning, 2, poll_seconds=0.05).run())
    try:
        summary = await _wait_completed(second, image.digest)
        assert summary["status"] == "completed"
        assert "PYSEC-2021-7" in {f.vuln_id for f in await _findings(second, image.digest)}
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await second.services.db.close()


async def test_decompression_bomb_fails_under_the_unpacked_size_limit(tmp_path: Path, backend: Any) -> None:
    async with registry_with(tmp_path, backend, scan_max_unpacked_bytes=1 << 20) as (application, client):
        bomb = layer([file("zeros", bytes(8 << 20))])  # 8 MiB of zeros, a few KiB gzipped
        assert len(bomb) < 64 << 10
        image = oci_image([bomb])
        await push(client, REPO, image, "bomb")
        await application.services.scanning.work_pending()
        assert (await report(client, image.digest))["status"] == "failed"
        async with application.services.db.read() as conn:
            reason = (await q.scans_of(conn, 1, [image.digest]))[image.digest].reason
        assert reason is not None
        assert "max_unpacked_bytes" in reason
        assert (await client.get("/healthz")).status_code == 200
