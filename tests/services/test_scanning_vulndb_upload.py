"""POST /api/v1/system/vulndb: bad bodies are refused and change nothing; an import leaves the event
loop free (requests are answered while it runs); findings' severities always add up."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import SHARED
from tests.services.test_artifacts import push
from tests.services.test_scanning import REPO, counted, django_layer, ids, oci_image, os_layer, report

from moorage.app import MoorageApp
from moorage.scanner import osv

OSV = SHARED / "testdata" / "osv"
URL = "/api/v1/system/vulndb"

RECORD: dict[str, Any] = {
    "id": "TEST-2025-1",
    "modified": "2025-01-01T00:00:00Z",
    "summary": "a v4-rated record",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "django"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.0"}]}],
        }
    ],
    "severity": [
        {"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:A/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N"}
    ],
}


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def _tar(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


GOOD = json.dumps(RECORD).encode()
BAD_BODIES = {
    "random bytes": b"\x00\x01not an archive at all" * 10,
    "plain text": b"hello, this is not OSV",
    "an empty zip": _zip({}),
    "a zip without json": _zip({"README.txt": b"nothing here"}),
    "a zip of invalid records": _zip({"A.json": b'{"id": "A"}', "B.json": b"{not json"}),
    "a truncated zip": _zip({"A.json": GOOD, "B.json": GOOD})[:-40],
    "gzip that is not a tar": gzip.compress(GOOD),
    "a truncated tar.gz": _tar({"A.json": GOOD * 50})[:200],
    "a json that is not a record": b'{"hello": "world"}',
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
async def test_bad_bodies_are_refused_and_change_nothing(
    app: MoorageApp, client: httpx.AsyncClient, name: str
) -> None:
    first = await client.post(URL, content=_zip({"TEST-2025-1.json": GOOD}))
    assert first.status_code == 200, first.text
    before = (await client.get(URL)).json()

    r = await client.post(URL, content=BAD_BODIES[name])
    assert r.status_code == 422, r.text
    error = r.json()
    text = json.dumps(error)
    assert "nothing was imported" in text or "not applied" in text, text
    assert (await client.get(URL)).json() == before  # same version, import time and counts


async def test_a_refused_first_import_leaves_no_database_version(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=_zip({"README.txt": b"x"}))
    assert r.status_code == 422, r.text
    assert "holds no valid OSV record" in r.text
    status = (await client.get(URL)).json()
    assert (status["version"], status["records"]) == (None, 0)


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz", "w"])
async def test_tar_bodies_in_every_compression(client: httpx.AsyncClient, mode: str) -> None:
    r = await client.post(URL, content=_tar({"osv/TEST-2025-1.json": GOOD}, mode))
    assert r.status_code == 200, r.text
    assert (r.json()["records"], r.json()["added"]) == (1, 1)


async def test_a_single_json_body_with_a_byte_order_mark(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=b"\xef\xbb\xbf\n  " + GOOD)
    assert r.status_code == 200, r.text
    assert r.json()["ecosystems"] == {"PyPI": 1}


async def test_the_event_loop_keeps_serving_during_an_import(
    app: MoorageApp, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Go database (4,291 records) through the API: the records are parsed off the event
    loop, and requests are answered while they are. The parser is held after its first record
    until a request has been answered during the import, so this does not depend on timing: were
    parsing on the loop, no request could be answered and the hold would time out."""
    body = (OSV / "Go" / "all.zip").read_bytes()
    original = osv.read_records
    loop_thread = threading.get_ident()
    parsed_on: set[int] = set()
    answered_during_import = threading.Event()
    importing = asyncio.Event()

    def held_read_records(path: Path) -> Iterator[Any]:
        for i, item in enumerate(original(path)):
            parsed_on.add(threading.get_ident())
            if i == 0:
                app_loop.call_soon_threadsafe(importing.set)
                assert answered_during_import.wait(60), "no request was answered while records were parsed"
            yield item

    app_loop = asyncio.get_running_loop()
    monkeypatch.setattr(osv, "read_records", held_read_records)

    async def reader() -> None:
        await importing.wait()
        r = await client.get(URL)
        assert r.status_code == 200
        answered_during_import.set()

    response, _ = await asyncio.gather(client.post(URL, content=body), reader())
    assert response.status_code == 200, response.text
    assert response.json()["records"] == 4291
    assert answered_during_import.is_set()
    assert parsed_on
    assert loop_thread not in parsed_on


async def test_unrated_findings_count_as_unknown_and_v4_records_are_scored(
    app: MoorageApp, client: httpx.AsyncClient
) -> None:
    """Debian DSAs carry no rating (unknown); a CVSS v4 record is scored from its vector."""
    with zipfile.ZipFile(OSV / "Debian" / "all.zip") as source:
        debian = _zip({n: source.read(n) for n in ("DSA-5139-1.json", "DSA-5169-1.json", "DSA-5343-1.json")})
    for upload in (debian, _zip({"TEST-2025-1.json": GOOD})):
        r = await client.post(URL, content=upload)
        assert r.status_code == 200, r.text
    image = oci_image([os_layer(), django_layer()])
    await push(client, REPO, image, "1.0")
    await app.services.scanning.work_pending()
    body = await report(client, image.digest)
    by_id = {f["id"]: f for f in body["findings"]}
    assert {"DSA-5139-1", "DSA-5169-1", "DSA-5343-1", "TEST-2025-1"} <= ids(body["findings"])
    assert (by_id["TEST-2025-1"]["severity"], by_id["TEST-2025-1"]["score"]) == ("medium", 5.1)
    assert by_id["DSA-5139-1"]["severity"] == "unknown"
    assert body["summary"] == counted(body["findings"])
    assert (body["summary"]["unknown"], body["summary"]["medium"]) == (3, 1)
    tags = (await client.get(f"/api/v1/repositories/{REPO}/tags")).json()
    assert tags[0]["scan"] == {"status": "completed", **body["summary"]}

    # Hiding an unrated finding takes it out of the unknown bucket, like any other.
    url = f"/api/v1/repositories/{REPO}/manifests/{image.digest}/vulnerabilities/overrides"
    assert (await client.post(url, json={"id": "DSA-5139-1", "package": "*"})).status_code == 204
    after = await report(client, image.digest)
    assert after["summary"]["unknown"] == 2
    assert after["summary"] == counted(after["findings"])
    assert [h["severity"] for h in after["hidden"]] == ["unknown"]
