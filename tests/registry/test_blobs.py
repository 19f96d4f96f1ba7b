"""Pulling, checking and deleting blobs: ``/v2/<name>/blobs/<digest>`` (end-2, end-10)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

DATA = bytes(range(256)) * 40  # 10240 bytes


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    (entry,) = r.json()["errors"]
    assert entry["code"] == code, entry
    assert entry["message"]
    return entry  # type: ignore[no-any-return]


async def push(client: httpx.AsyncClient, repo: str, data: bytes, digest: str | None = None) -> str:
    digest = digest or sha256(data)
    r = await client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    return digest


async def test_base_endpoint(client: httpx.AsyncClient) -> None:
    for path in ("/v2/", "/v2"):
        r = await client.get(path)
        assert r.status_code == 200
        assert r.json() == {}
        assert r.headers["docker-distribution-api-version"] == "registry/2.0"


async def test_get_blob(client: httpx.AsyncClient) -> None:
    digest = await push(client, "lab/words", DATA)
    r = await client.get(f"/v2/lab/words/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["content-length"] == str(len(DATA))
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["docker-content-digest"] == digest
    assert r.headers["etag"] == f'"{digest}"'
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    assert "content-range" not in r.headers


async def test_head_blob(client: httpx.AsyncClient) -> None:
    digest = await push(client, "lab/words", DATA)
    r = await client.head(f"/v2/lab/words/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == str(len(DATA))
    assert r.headers["docker-content-digest"] == digest
    assert r.headers["etag"] == f'"{digest}"'


async def test_empty_blob(client: httpx.AsyncClient) -> None:
    digest = await push(client, "lab/words", b"")
    r = await client.get(f"/v2/lab/words/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == "0"
    assert r.headers["docker-content-digest"] == digest


async def test_large_blob_round_trip(client: httpx.AsyncClient) -> None:
    data = hashlib.sha256(b"seed").digest() * 100_000  # 3.2 MB: several read chunks
    digest = await push(client, "lab/big", data)
    r = await client.get(f"/v2/lab/big/blobs/{digest}")
    assert r.content == data
    assert hashlib.sha256(r.content).hexdigest() == digest.split(":")[1]


async def test_sha512_blob(client: httpx.AsyncClient) -> None:
    digest = await push(client, "lab/words", DATA, sha512(DATA))
    r = await client.get(f"/v2/lab/words/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["docker-content-digest"] == digest
    # It is stored under its sha512 digest only.
    error(await client.get(f"/v2/lab/words/blobs/{sha256(DATA)}"), 404, "BLOB_UNKNOWN")


RANGES = (
    ("bytes=0-0", 0, 0),
    ("bytes=0-99", 0, 99),
    ("bytes=100-", 100, len(DATA) - 1),
    ("bytes=-10", len(DATA) - 10, len(DATA) - 1),
    ("bytes=-99999", 0, len(DATA) - 1),
    ("bytes=10000-99999", 10000, len(DATA) - 1),
    ("bytes=5000-5001", 5000, 5001),
    ("bytes=10239-", 10239, 10239),
)


async def test_range_requests(client: httpx.AsyncClient) -> None:
    digest = await push(client, "lab/words", DATA)
    for header, start, end in RANGES:
        r = await client.get(f"/v2/lab/words/blobs/{digest}", headers={"Range": header})
        assert r.status_code == 206, header
        assert r.content == DATA[start : end + 1], header
        assert r.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
        assert r.headers["content-length"] == str(end - start + 1)
        assert r.headers["docker-content-digest"] == digest
        assert r.headers["content-type"] == "application/octet-stream"


async def test_range_on_head(client: httpx.AsyncClient) -> None:
    digest = await push(client, "lab/words", DATA)
    r = await client.head(f"/v2/lab/words/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.content == b""
    assert r.headers["content-length"] == "10"
    assert r.headers["content-range"] == f"bytes 10-19/{len(DATA)}"


async def test_unsatisfiable_range_is_416(client: httpx.AsyncClient) -> None:
    digest = await push(client, "lab/words", DATA)
    for header in ("bytes=10240-", "bytes=10240-10241", "bytes=99999-100000", "bytes=-0"):
        r = await client.get(f"/v2/lab/words/blobs/{digest}", headers={"Range": header})
        entry = error(r, 416, "BLOB_UPLOAD_INVALID")
        assert entry["detail"] == {"size": len(DATA)}
        assert r.headers["content-range"] == f"bytes */{len(DATA)}"
        assert DATA not in r.content
    empty = await push(client, "lab/words", b"")
    error(
        await client.get(f"/v2/lab/words/blobs/{empty}", headers={"Range": "bytes=0-"}),
        416,
        "BLOB_UPLOAD_INVALID",
    )


async def test_unsupported_ranges_send_the_whole_blob(client: httpx.AsyncClient) -> None:
    digest = await push(client, "lab/words", DATA)
    for header in ("bytes=0-1,5-6", "items=0-1", "bytes=9-3", "nonsense"):
        r = await client.get(f"/v2/lab/words/blobs/{digest}", headers={"Range": header})
        assert r.status_code == 200, header
        assert r.content == DATA
        assert "content-range" not in r.headers


async def test_unknown_blob(client: httpx.AsyncClient) -> None:
    await push(client, "lab/words", DATA)
    missing = sha256(b"missing")
    entry = error(await client.get(f"/v2/lab/words/blobs/{missing}"), 404, "BLOB_UNKNOWN")
    assert entry["detail"] == {"digest": missing}
    r = await client.head(f"/v2/lab/words/blobs/{missing}")
    assert r.status_code == 404
    error(await client.get(f"/v2/lab/nothing/blobs/{missing}"), 404, "BLOB_UNKNOWN")


async def test_blobs_are_scoped_to_their_repository(client: httpx.AsyncClient) -> None:
    digest = await push(client, "lab/a", DATA)
    await push(client, "lab/b", b"other")
    error(await client.get(f"/v2/lab/b/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert (await client.head(f"/v2/lab/b/blobs/{digest}")).status_code == 404


async def test_invalid_and_unsupported_digests(client: httpx.AsyncClient) -> None:
    await push(client, "lab/words", DATA)
    entry = error(await client.get("/v2/lab/words/blobs/sha256:abc"), 400, "DIGEST_INVALID")
    assert "sha256" in entry["message"]
    error(await client.get("/v2/lab/words/blobs/latest"), 400, "DIGEST_INVALID")
    entry = error(await client.get("/v2/lab/words/blobs/md5:" + "a" * 32), 400, "UNSUPPORTED")
    assert "md5" in entry["message"]


async def test_delete_blob(client: httpx.AsyncClient) -> None:
    digest = await push(client, "lab/a", DATA)
    r = await client.post("/v2/lab/b/blobs/uploads/", params={"mount": digest, "from": "lab/a"})
    assert r.status_code == 201
    r = await client.delete(f"/v2/lab/a/blobs/{digest}")
    assert r.status_code == 202
    assert r.content == b""
    error(await client.get(f"/v2/lab/a/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    # Only the link went: the repository it was mounted into still serves it.
    r = await client.get(f"/v2/lab/b/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == DATA
    error(await client.delete(f"/v2/lab/a/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    # Pushing it again makes it visible again.
    await push(client, "lab/a", DATA)
    assert (await client.get(f"/v2/lab/a/blobs/{digest}")).content == DATA


async def test_delete_unknown_or_invalid_blob(client: httpx.AsyncClient) -> None:
    await push(client, "lab/a", DATA)
    error(await client.delete(f"/v2/lab/a/blobs/{sha256(b'nope')}"), 404, "BLOB_UNKNOWN")
    error(await client.delete(f"/v2/lab/none/blobs/{sha256(b'nope')}"), 404, "BLOB_UNKNOWN")
    error(await client.delete("/v2/lab/a/blobs/sha256:zz"), 400, "DIGEST_INVALID")
    assert (await client.get(f"/v2/lab/a/blobs/{sha256(DATA)}")).status_code == 200


async def test_unsupported_method_on_blob(client: httpx.AsyncClient) -> None:
    digest = await push(client, "lab/a", DATA)
    for method in ("PUT", "PATCH", "POST"):
        r = await client.request(method, f"/v2/lab/a/blobs/{digest}")
        error(r, 405, "UNSUPPORTED")
        assert r.headers["allow"] == "DELETE, GET, HEAD"
    assert (await client.get(f"/v2/lab/a/blobs/{digest}")).content == DATA
