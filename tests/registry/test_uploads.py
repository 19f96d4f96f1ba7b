"""Pushing blobs: monolithic, POST+PUT, chunked PATCH, status, cancel and mount (end-4 to end-6, end-11, end-13, end-14)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import ADMIN_PASSWORD, Backend, make_settings

from moorage.app import MoorageApp, create_app

DATA = b"0123456789abcdef" * 64  # 1024 bytes


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


async def start(client: httpx.AsyncClient, repo: str = "lab/words") -> str:
    r = await client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    return r.headers["location"]  # type: ignore[no-any-return]


async def patch(
    client: httpx.AsyncClient, location: str, data: bytes, start_at: int | None
) -> httpx.Response:
    headers = {"Content-Type": "application/octet-stream"}
    if start_at is not None:
        headers["Content-Range"] = f"{start_at}-{start_at + len(data) - 1}"
    return await client.patch(location, content=data, headers=headers)


async def assert_blob(client: httpx.AsyncClient, repo: str, digest: str, data: bytes) -> None:
    r = await client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200, r.text
    assert r.content == data
    assert r.headers["docker-content-digest"] == digest


async def assert_no_blob(client: httpx.AsyncClient, repo: str, digest: str) -> None:
    r = await client.head(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 404


async def assert_no_upload(client: httpx.AsyncClient, location: str) -> None:
    error(await client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


# -- monolithic ----------------------------------------------------------------------
async def test_monolithic_post(client: httpx.AsyncClient) -> None:
    digest = sha256(DATA)
    r = await client.post("/v2/lab/words/blobs/uploads/", params={"digest": digest}, content=DATA)
    assert r.status_code == 201
    assert r.headers["location"] == f"/v2/lab/words/blobs/{digest}"
    assert r.headers["docker-content-digest"] == digest
    assert r.headers["content-length"] == "0"
    await assert_blob(client, "lab/words", digest, DATA)


async def test_monolithic_post_sha512(client: httpx.AsyncClient) -> None:
    digest = sha512(DATA)
    r = await client.post("/v2/lab/words/blobs/uploads/", params={"digest": digest}, content=DATA)
    assert r.status_code == 201
    assert r.headers["docker-content-digest"] == digest
    await assert_blob(client, "lab/words", digest, DATA)


async def test_monolithic_push_of_existing_blob_is_idempotent(client: httpx.AsyncClient) -> None:
    digest = sha256(DATA)
    for repo in ("lab/one", "lab/one", "lab/two"):
        r = await client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=DATA)
        assert r.status_code == 201
    await assert_blob(client, "lab/one", digest, DATA)
    await assert_blob(client, "lab/two", digest, DATA)


async def test_post_then_put(client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/lab/words/blobs/uploads/")
    assert r.status_code == 202
    location = r.headers["location"]
    upload_id = r.headers["docker-upload-uuid"]
    assert location == f"/v2/lab/words/blobs/uploads/{upload_id}"
    assert r.headers["range"] == "0-0"
    assert r.headers["content-length"] == "0"
    digest = sha256(DATA)
    r = await client.put(location, params={"digest": digest}, content=DATA)
    assert r.status_code == 201
    assert r.headers["location"] == f"/v2/lab/words/blobs/{digest}"
    assert r.headers["docker-content-digest"] == digest
    await assert_blob(client, "lab/words", digest, DATA)
    await assert_no_upload(client, location)


async def test_post_with_digest_algorithm_then_put_sha512(client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/lab/words/blobs/uploads/", params={"digest-algorithm": "sha512"})
    assert r.status_code == 202
    digest = sha512(DATA)
    r = await client.put(r.headers["location"], params={"digest": digest}, content=DATA)
    assert r.status_code == 201
    await assert_blob(client, "lab/words", digest, DATA)


# -- chunked -------------------------------------------------------------------------
async def test_chunked_upload(client: httpx.AsyncClient) -> None:
    location = await start(client)
    offset = 0
    for size in (100, 1, 500, 423):
        chunk = DATA[offset : offset + size]
        r = await patch(client, location, chunk, offset)
        assert r.status_code == 202, r.text
        offset += size
        assert r.headers["range"] == f"0-{offset - 1}"
        assert r.headers["location"] == location
        assert r.headers["docker-upload-uuid"] == location.rsplit("/", 1)[1]
    assert offset == len(DATA)
    digest = sha256(DATA)
    r = await client.put(location, params={"digest": digest})
    assert r.status_code == 201
    assert r.headers["docker-content-digest"] == digest
    await assert_blob(client, "lab/words", digest, DATA)


async def test_chunked_upload_sha512(client: httpx.AsyncClient) -> None:
    location = await start(client)
    assert (await patch(client, location, DATA[:300], 0)).status_code == 202
    assert (await patch(client, location, DATA[300:], 300)).status_code == 202
    r = await client.put(location, params={"digest": sha512(DATA)})
    assert r.status_code == 201
    await assert_blob(client, "lab/words", sha512(DATA), DATA)


async def test_streamed_patch_without_content_range(client: httpx.AsyncClient) -> None:
    location = await start(client)

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(DATA), 100):
            yield DATA[i : i + 100]

    r = await client.patch(location, content=body())
    assert r.status_code == 202
    assert r.headers["range"] == f"0-{len(DATA) - 1}"
    r = await client.put(location, params={"digest": sha256(DATA)})
    assert r.status_code == 201
    await assert_blob(client, "lab/words", sha256(DATA), DATA)


async def test_final_chunk_in_put(client: httpx.AsyncClient) -> None:
    location = await start(client)
    assert (await patch(client, location, DATA[:1000], 0)).status_code == 202
    r = await client.put(
        location, params={"digest": sha256(DATA)}, content=DATA[1000:], headers={"Content-Range": "1000-1023"}
    )
    assert r.status_code == 201, r.text
    await assert_blob(client, "lab/words", sha256(DATA), DATA)


async def test_upload_status(client: httpx.AsyncClient) -> None:
    location = await start(client)
    r = await client.get(location)
    assert r.status_code == 204
    assert r.headers["range"] == "0-0"
    assert r.headers["location"] == location
    await patch(client, location, DATA[:10], 0)
    r = await client.get(location)
    assert r.status_code == 204
    assert r.headers["range"] == "0-9"
    assert r.headers["docker-upload-uuid"] == location.rsplit("/", 1)[1]
    assert r.content == b""


async def test_out_of_order_chunk_is_416_and_changes_nothing(client: httpx.AsyncClient) -> None:
    location = await start(client)
    assert (await patch(client, location, DATA[:10], 0)).status_code == 202
    for bad_start in (0, 5, 9, 11, 100):  # repeated, overlapping, a gap, far ahead
        r = await patch(client, location, DATA[bad_start : bad_start + 10], bad_start)
        entry = error(r, 416, "BLOB_UPLOAD_INVALID")
        assert "starts at" in entry["message"]
        assert entry["detail"] == {"size": 10}
        r = await client.get(location)
        assert r.headers["range"] == "0-9"
    # The upload carries on from where it was.
    assert (await patch(client, location, DATA[10:], 10)).status_code == 202
    assert (await client.put(location, params={"digest": sha256(DATA)})).status_code == 201
    await assert_blob(client, "lab/words", sha256(DATA), DATA)


async def test_first_chunk_must_start_at_zero(client: httpx.AsyncClient) -> None:
    location = await start(client)
    error(await patch(client, location, DATA[1:11], 1), 416, "BLOB_UPLOAD_INVALID")
    assert (await client.get(location)).headers["range"] == "0-0"


async def test_out_of_order_final_chunk_is_416(client: httpx.AsyncClient) -> None:
    location = await start(client)
    await patch(client, location, DATA[:10], 0)
    r = await client.put(
        location,
        params={"digest": sha256(DATA)},
        content=DATA[20:],
        headers={"Content-Range": f"20-{len(DATA) - 1}"},
    )
    error(r, 416, "BLOB_UPLOAD_INVALID")
    assert (await client.get(location)).headers["range"] == "0-9"
    await assert_no_blob(client, "lab/words", sha256(DATA))


async def test_malformed_content_range(client: httpx.AsyncClient) -> None:
    location = await start(client)
    for header in ("abc", "5-1", "-5", "bytes 0-"):
        r = await client.patch(location, content=b"abcde", headers={"Content-Range": header})
        entry = error(r, 416, "BLOB_UPLOAD_INVALID")
        assert "Content-Range" in entry["message"]
        assert (await client.get(location)).headers["range"] == "0-0"


async def test_content_range_must_match_length(client: httpx.AsyncClient) -> None:
    location = await start(client)
    r = await client.patch(location, content=b"abcde", headers={"Content-Range": "0-9"})
    entry = error(r, 400, "BLOB_UPLOAD_INVALID")
    assert "does not match Content-Length" in entry["message"]
    assert (await client.get(location)).headers["range"] == "0-0"


async def test_put_without_digest(client: httpx.AsyncClient) -> None:
    location = await start(client)
    await patch(client, location, DATA, 0)
    entry = error(await client.put(location), 400, "BLOB_UPLOAD_INVALID")
    assert "digest" in entry["message"]
    assert (await client.get(location)).headers["range"] == f"0-{len(DATA) - 1}"


async def test_cancel_upload(client: httpx.AsyncClient) -> None:
    location = await start(client)
    await patch(client, location, DATA, 0)
    r = await client.delete(location)
    assert r.status_code == 204
    await assert_no_upload(client, location)
    error(await patch(client, location, b"x", len(DATA)), 404, "BLOB_UPLOAD_UNKNOWN")
    error(await client.put(location, params={"digest": sha256(DATA)}), 404, "BLOB_UPLOAD_UNKNOWN")
    error(await client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")
    await assert_no_blob(client, "lab/words", sha256(DATA))


async def test_completed_upload_is_gone(client: httpx.AsyncClient) -> None:
    location = await start(client)
    assert (await client.put(location, params={"digest": sha256(DATA)}, content=DATA)).status_code == 201
    error(
        await client.put(location, params={"digest": sha256(DATA)}, content=DATA), 404, "BLOB_UPLOAD_UNKNOWN"
    )
    error(await patch(client, location, b"x", None), 404, "BLOB_UPLOAD_UNKNOWN")


async def test_unknown_upload_ids(client: httpx.AsyncClient) -> None:
    await start(client)
    # (".." and friends are normalised away by clients: see test_errors for raw paths.)
    for upload_id in ("00000000-0000-0000-0000-000000000000", "nope", "a" * 64, "x.y", "%2e%2e"):
        location = f"/v2/lab/words/blobs/uploads/{upload_id}"
        error(await client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
        error(await patch(client, location, b"x", 0), 404, "BLOB_UPLOAD_UNKNOWN")


async def test_upload_of_another_repository_is_unknown(client: httpx.AsyncClient) -> None:
    location = await start(client, "lab/mine")
    await patch(client, location, DATA[:10], 0)
    upload_id = location.rsplit("/", 1)[1]
    other = f"/v2/lab/theirs/blobs/uploads/{upload_id}"
    await start(client, "lab/theirs")
    error(await client.get(other), 404, "BLOB_UPLOAD_UNKNOWN")
    error(await patch(client, other, DATA[10:], 10), 404, "BLOB_UPLOAD_UNKNOWN")
    error(await client.put(other, params={"digest": sha256(DATA[:10])}), 404, "BLOB_UPLOAD_UNKNOWN")
    error(await client.delete(other), 404, "BLOB_UPLOAD_UNKNOWN")
    await assert_no_blob(client, "lab/theirs", sha256(DATA[:10]))
    # The upload is untouched in its own repository.
    assert (await client.get(location)).headers["range"] == "0-9"
    assert (await client.put(location, params={"digest": sha256(DATA)}, content=DATA[10:])).status_code == 201
    await assert_blob(client, "lab/mine", sha256(DATA), DATA)
    await assert_no_blob(client, "lab/theirs", sha256(DATA))


# -- digest mismatch -----------------------------------------------------------------
async def test_put_with_wrong_digest_discards_the_upload(client: httpx.AsyncClient) -> None:
    location = await start(client)
    await patch(client, location, DATA, 0)
    claimed = sha256(b"something else")
    entry = error(await client.put(location, params={"digest": claimed}), 400, "DIGEST_INVALID")
    assert entry["detail"] == {"expected": claimed, "actual": sha256(DATA)}
    await assert_no_upload(client, location)
    await assert_no_blob(client, "lab/words", claimed)
    await assert_no_blob(client, "lab/words", sha256(DATA))


async def test_monolithic_with_wrong_digest_stores_nothing(client: httpx.AsyncClient) -> None:
    claimed = sha512(b"other")
    r = await client.post("/v2/lab/words/blobs/uploads/", params={"digest": claimed}, content=DATA)
    entry = error(r, 400, "DIGEST_INVALID")
    assert entry["detail"]["actual"] == sha512(DATA)
    await assert_no_blob(client, "lab/words", claimed)
    await assert_no_blob(client, "lab/words", sha512(DATA))


# -- mount ---------------------------------------------------------------------------
async def test_mount_from_another_repository(client: httpx.AsyncClient) -> None:
    digest = sha256(DATA)
    assert (
        await client.post("/v2/lab/src/blobs/uploads/", params={"digest": digest}, content=DATA)
    ).status_code == 201
    r = await client.post("/v2/lab/dst/blobs/uploads/", params={"mount": digest, "from": "lab/src"})
    assert r.status_code == 201
    assert r.headers["location"] == f"/v2/lab/dst/blobs/{digest}"
    assert r.headers["docker-content-digest"] == digest
    await assert_blob(client, "lab/dst", digest, DATA)
    await assert_blob(client, "lab/src", digest, DATA)


@pytest.mark.parametrize("source", ["lab/src", "lab/absent"])
async def test_mount_falls_back_to_an_upload(client: httpx.AsyncClient, source: str) -> None:
    await client.post("/v2/lab/src/blobs/uploads/", params={"digest": sha256(b"other")}, content=b"other")
    digest = sha256(DATA)
    r = await client.post("/v2/lab/dst/blobs/uploads/", params={"mount": digest, "from": source})
    assert r.status_code == 202
    location = r.headers["location"]
    assert location.startswith("/v2/lab/dst/blobs/uploads/")
    await assert_no_blob(client, "lab/dst", digest)
    assert (await client.put(location, params={"digest": digest}, content=DATA)).status_code == 201
    await assert_blob(client, "lab/dst", digest, DATA)


async def test_mount_with_invalid_source_name(client: httpx.AsyncClient) -> None:
    r = await client.post("/v2/lab/dst/blobs/uploads/", params={"mount": sha256(DATA), "from": "../lab"})
    error(r, 400, "NAME_INVALID")


# -- limits and restarts -------------------------------------------------------------
@pytest.fixture
async def limited(tmp_path: Path, backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path / "limited", backend, max_upload_size=1000))
    await app.services.prepare()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://moorage.test",
            auth=("admin", ADMIN_PASSWORD),
        ) as c:
            yield c
    finally:
        await app.services.db.close()


async def test_blob_at_the_limit_is_accepted(limited: httpx.AsyncClient) -> None:
    data = DATA[:1000]
    r = await limited.post("/v2/lab/words/blobs/uploads/", params={"digest": sha256(data)}, content=data)
    assert r.status_code == 201
    await assert_blob(limited, "lab/words", sha256(data), data)


async def test_monolithic_blob_over_the_limit(limited: httpx.AsyncClient) -> None:
    r = await limited.post("/v2/lab/words/blobs/uploads/", params={"digest": sha256(DATA)}, content=DATA)
    entry = error(r, 413, "SIZE_INVALID")
    assert entry["detail"] == {"limit": 1000}
    assert "1000" in entry["message"]
    await assert_no_blob(limited, "lab/words", sha256(DATA))


async def test_chunked_blob_over_the_limit(limited: httpx.AsyncClient) -> None:
    location = await start(limited)
    assert (await patch(limited, location, DATA[:600], 0)).status_code == 202
    error(await patch(limited, location, DATA[600:], 600), 413, "SIZE_INVALID")
    # The refused chunk left the upload as it was.
    assert (await limited.get(location)).headers["range"] == "0-599"
    error(
        await limited.put(location, params={"digest": sha256(DATA)}, content=DATA[600:]), 413, "SIZE_INVALID"
    )
    assert (await limited.get(location)).headers["range"] == "0-599"
    assert (await patch(limited, location, DATA[600:1000], 600)).status_code == 202
    assert (await limited.put(location, params={"digest": sha256(DATA[:1000])})).status_code == 201
    await assert_blob(limited, "lab/words", sha256(DATA[:1000]), DATA[:1000])


async def test_upload_survives_a_restart(tmp_path: Path, backend: Backend) -> None:
    settings = make_settings(tmp_path / "data", backend)

    async def run(app: MoorageApp, steps: Any) -> Any:
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://moorage.test",
                auth=("admin", ADMIN_PASSWORD),
            ) as c:
                return await steps(c)
        finally:
            await app.services.db.close()

    async def first(c: httpx.AsyncClient) -> str:
        location = await start(c)
        assert (await patch(c, location, DATA[:700], 0)).status_code == 202
        return location

    first_app = create_app(settings)
    await first_app.services.prepare()
    location = await run(first_app, first)

    async def second(c: httpx.AsyncClient) -> None:
        assert (await c.get(location)).headers["range"] == "0-699"
        assert (await patch(c, location, DATA[700:], 700)).status_code == 202
        assert (await c.put(location, params={"digest": sha256(DATA)})).status_code == 201
        await assert_blob(c, "lab/words", sha256(DATA), DATA)

    second_app = create_app(settings)
    await second_app.services.prepare()
    await run(second_app, second)
