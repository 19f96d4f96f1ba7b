"""Manifests: push, pull, check and delete by tag and digest (end-3, end-7, end-9)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest

from moorage.oci import mediatypes as mt

REPO = "lab/words"


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


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=1).encode()  # not canonical: bytes must be kept as sent


async def push_blob(client: httpx.AsyncClient, data: bytes, repo: str = REPO) -> dict[str, Any]:
    r = await client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data)
    assert r.status_code == 201, r.text
    return {"digest": sha256(data), "size": len(data)}


async def image(
    client: httpx.AsyncClient,
    repo: str = REPO,
    seed: str = "a",
    media_type: str = mt.OCI_MANIFEST,
    **extra: Any,
) -> bytes:
    """An image manifest whose config and layer are pushed to ``repo``."""
    docker = media_type == mt.DOCKER_MANIFEST
    config = await push_blob(
        client, json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode(), repo
    )
    layer = await push_blob(client, f"layer {seed}".encode(), repo)
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG, **config},
        "layers": [{"mediaType": mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP, **layer}],
        **extra,
    }
    return encode(document)


async def put(
    client: httpx.AsyncClient,
    reference: str,
    content: bytes,
    media_type: str = mt.OCI_MANIFEST,
    repo: str = REPO,
) -> httpx.Response:
    return await client.put(
        f"/v2/{repo}/manifests/{reference}", content=content, headers={"Content-Type": media_type}
    )


async def pushed(
    client: httpx.AsyncClient, reference: str, content: bytes, media_type: str = mt.OCI_MANIFEST
) -> str:
    r = await put(client, reference, content, media_type)
    assert r.status_code == 201, r.text
    return r.headers["docker-content-digest"]  # type: ignore[no-any-return]


async def tags(client: httpx.AsyncClient, repo: str = REPO) -> list[str]:
    r = await client.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200, r.text
    return r.json()["tags"]  # type: ignore[no-any-return]


def child(digest: str, content: bytes, arch: str, media_type: str = mt.OCI_MANIFEST) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": digest,
        "size": len(content),
        "platform": {"os": "linux", "architecture": arch},
    }


# -- push and pull -------------------------------------------------------------------
async def test_push_by_tag_and_pull(client: httpx.AsyncClient) -> None:
    content = await image(client)
    digest = sha256(content)
    r = await put(client, "v1", content)
    assert r.status_code == 201
    assert r.headers["location"] == f"/v2/{REPO}/manifests/{digest}"
    assert r.headers["docker-content-digest"] == digest
    assert r.headers["content-length"] == "0"
    assert "oci-subject" not in r.headers
    for reference in ("v1", digest):
        r = await client.get(f"/v2/{REPO}/manifests/{reference}")
        assert r.status_code == 200
        assert r.content == content  # byte for byte
        assert r.headers["content-type"] == mt.OCI_MANIFEST
        assert r.headers["docker-content-digest"] == digest
        assert r.headers["etag"] == f'"{digest}"'
        assert r.headers["content-length"] == str(len(content))
    assert await tags(client) == ["v1"]


async def test_head_manifest(client: httpx.AsyncClient) -> None:
    content = await image(client)
    digest = await pushed(client, "v1", content)
    for reference in ("v1", digest):
        r = await client.head(f"/v2/{REPO}/manifests/{reference}")
        assert r.status_code == 200
        assert r.content == b""
        assert r.headers["content-length"] == str(len(content))
        assert r.headers["docker-content-digest"] == digest
        assert r.headers["content-type"] == mt.OCI_MANIFEST
    assert (await client.head(f"/v2/{REPO}/manifests/v2")).status_code == 404


async def test_push_by_digest(client: httpx.AsyncClient) -> None:
    content = await image(client)
    digest = sha256(content)
    r = await put(client, digest, content)
    assert r.status_code == 201
    assert r.headers["docker-content-digest"] == digest
    assert (await client.get(f"/v2/{REPO}/manifests/{digest}")).content == content
    assert await tags(client) == []


async def test_push_by_sha512_digest(client: httpx.AsyncClient) -> None:
    content = await image(client)
    digest = sha512(content)
    r = await put(client, digest, content)
    assert r.status_code == 201
    assert r.headers["docker-content-digest"] == digest
    assert r.headers["location"] == f"/v2/{REPO}/manifests/{digest}"
    r = await client.get(f"/v2/{REPO}/manifests/{digest}")
    assert r.content == content
    assert r.headers["docker-content-digest"] == digest


async def test_push_by_wrong_digest_is_refused(client: httpx.AsyncClient) -> None:
    content = await image(client)
    claimed = sha256(content + b" ")
    entry = error(await put(client, claimed, content), 400, "DIGEST_INVALID")
    assert entry["detail"] == {"expected": claimed, "actual": sha256(content)}
    error(await client.get(f"/v2/{REPO}/manifests/{sha256(content)}"), 404, "MANIFEST_UNKNOWN")
    error(await client.get(f"/v2/{REPO}/manifests/{claimed}"), 404, "MANIFEST_UNKNOWN")


async def test_docker_schema2_manifest(client: httpx.AsyncClient) -> None:
    content = await image(client, media_type=mt.DOCKER_MANIFEST)
    digest = await pushed(client, "docker", content, mt.DOCKER_MANIFEST)
    r = await client.get(f"/v2/{REPO}/manifests/docker")
    assert r.content == content
    assert r.headers["content-type"] == mt.DOCKER_MANIFEST
    assert r.headers["docker-content-digest"] == digest


async def test_zero_layer_artifact(client: httpx.AsyncClient) -> None:
    empty = await push_blob(client, b"{}")
    content = encode(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "artifactType": "application/vnd.example.thing.v1",
            "config": {"mediaType": mt.OCI_EMPTY, **empty},
            "layers": [],
        }
    )
    await pushed(client, "thing", content)
    assert (await client.get(f"/v2/{REPO}/manifests/thing")).content == content


async def test_same_manifest_twice_and_retag(client: httpx.AsyncClient) -> None:
    first = await image(client, seed="1")
    second = await image(client, seed="2")
    d1 = await pushed(client, "latest", first)
    assert await pushed(client, "latest", first) == d1
    await pushed(client, "v1", first)
    d2 = await pushed(client, "latest", second)
    assert (await client.get(f"/v2/{REPO}/manifests/latest")).headers["docker-content-digest"] == d2
    assert (await client.get(f"/v2/{REPO}/manifests/v1")).headers["docker-content-digest"] == d1
    assert (await client.get(f"/v2/{REPO}/manifests/{d1}")).content == first
    assert await tags(client) == ["latest", "v1"]


async def test_content_type_parameters_are_ignored(client: httpx.AsyncClient) -> None:
    content = await image(client)
    await pushed(client, "v1", content, f"{mt.OCI_MANIFEST}; charset=utf-8")
    assert (await client.get(f"/v2/{REPO}/manifests/v1")).headers["content-type"] == mt.OCI_MANIFEST


async def test_manifests_are_scoped_to_their_repository(client: httpx.AsyncClient) -> None:
    content = await image(client)
    digest = await pushed(client, "v1", content)
    await push_blob(client, b"x", "lab/other")
    error(await client.get("/v2/lab/other/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    error(await client.get(f"/v2/lab/other/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")


async def test_subject_is_acknowledged(client: httpx.AsyncClient) -> None:
    missing_subject = {"mediaType": mt.OCI_MANIFEST, "digest": sha256(b"not pushed yet"), "size": 10}
    content = await image(client, artifactType="application/vnd.example.sig", subject=missing_subject)
    r = await put(client, sha256(content), content)
    assert r.status_code == 201, r.text  # the subject need not exist
    assert r.headers["oci-subject"] == missing_subject["digest"]


# -- references must exist -----------------------------------------------------------
async def test_manifest_refusing_missing_blobs(client: httpx.AsyncClient) -> None:
    config = await push_blob(client, b'{"os":"linux","architecture":"amd64"}')
    missing = sha256(b"never pushed")
    content = encode(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, **config},
            "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": missing, "size": 12}],
        }
    )
    entry = error(await put(client, "v1", content), 400, "MANIFEST_BLOB_UNKNOWN")
    assert entry["detail"] == {"missing": [missing]}
    assert missing in entry["message"]
    assert await tags(client) == []
    error(await client.get(f"/v2/{REPO}/manifests/{sha256(content)}"), 404, "MANIFEST_UNKNOWN")


async def test_blob_of_another_repository_does_not_count(client: httpx.AsyncClient) -> None:
    content = await image(client, repo="lab/elsewhere")
    await push_blob(client, b"unrelated")
    entry = error(await put(client, "v1", content), 400, "MANIFEST_BLOB_UNKNOWN")
    assert len(entry["detail"]["missing"]) == 2


@pytest.mark.parametrize(
    ("index_type", "child_type"),
    [(mt.OCI_INDEX, mt.OCI_MANIFEST), (mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST)],
)
async def test_index_refusing_missing_children(
    client: httpx.AsyncClient, index_type: str, child_type: str
) -> None:
    amd = await image(client, seed="amd64", media_type=child_type)
    arm = await image(client, seed="arm64", media_type=child_type)
    amd_digest = await pushed(client, sha256(amd), amd, child_type)
    index = encode(
        {
            "schemaVersion": 2,
            "mediaType": index_type,
            "manifests": [
                child(amd_digest, amd, "amd64", child_type),
                child(sha256(arm), arm, "arm64", child_type),
            ],
        }
    )
    entry = error(await put(client, "multi", index, index_type), 400, "MANIFEST_BLOB_UNKNOWN")
    assert entry["detail"] == {"missing": [sha256(arm)]}
    assert await tags(client) == []
    # Once the child is there, the index is accepted and served as pushed.
    await pushed(client, sha256(arm), arm, child_type)
    digest = await pushed(client, "multi", index, index_type)
    r = await client.get(f"/v2/{REPO}/manifests/multi")
    assert r.content == index
    assert r.headers["content-type"] == index_type
    assert r.headers["docker-content-digest"] == digest == sha256(index)


async def test_index_child_must_be_a_manifest_not_a_blob(client: httpx.AsyncClient) -> None:
    blob = await push_blob(client, b"just a blob")
    index = encode(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [{"mediaType": mt.OCI_MANIFEST, **blob}]}
    )
    error(await put(client, "multi", index, mt.OCI_INDEX), 400, "MANIFEST_BLOB_UNKNOWN")


# -- refused documents ---------------------------------------------------------------
async def test_schema1_is_refused(client: httpx.AsyncClient) -> None:
    content = encode({"schemaVersion": 1, "name": REPO, "tag": "v1", "fsLayers": [], "history": []})
    entry = error(await put(client, "v1", content, mt.DOCKER_SCHEMA1_SIGNED), 400, "MANIFEST_INVALID")
    assert "schema 1" in entry["message"]
    assert "not supported" in entry["message"]
    error(await client.get(f"/v2/{REPO}/manifests/v1"), 404, "NAME_UNKNOWN")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}', "config"),
        (b'{"schemaVersion": "2", "config": {}}', "schemaVersion must be 2"),
        (b"", "body is empty"),
    ],
)
async def test_invalid_manifests(client: httpx.AsyncClient, body: bytes, reason: str) -> None:
    await push_blob(client, b"x")
    entry = error(await put(client, "v1", body), 400, "MANIFEST_INVALID")
    assert reason in entry["message"]
    assert await tags(client) == []


# -- pull errors ---------------------------------------------------------------------
async def test_unknown_manifests(client: httpx.AsyncClient) -> None:
    await pushed(client, "v1", await image(client))
    entry = error(await client.get(f"/v2/{REPO}/manifests/v2"), 404, "MANIFEST_UNKNOWN")
    assert entry["detail"] == {"reference": "v2"}
    error(await client.get(f"/v2/{REPO}/manifests/{sha256(b'x')}"), 404, "MANIFEST_UNKNOWN")
    error(await client.get(f"/v2/{REPO}/manifests/-not-a-tag"), 404, "MANIFEST_UNKNOWN")
    error(await client.get("/v2/lab/nothing/manifests/v1"), 404, "NAME_UNKNOWN")
    error(await client.get(f"/v2/{REPO}/manifests/sha256:abc"), 400, "DIGEST_INVALID")


# -- delete --------------------------------------------------------------------------
async def test_delete_manifest_by_digest_removes_its_tags(client: httpx.AsyncClient) -> None:
    gone = await image(client, seed="gone")
    kept = await image(client, seed="kept")
    gone_digest = await pushed(client, "v1", gone)
    await pushed(client, "latest", gone)
    kept_digest = await pushed(client, "stable", kept)
    r = await client.delete(f"/v2/{REPO}/manifests/{gone_digest}")
    assert r.status_code == 202
    assert r.content == b""
    error(await client.get(f"/v2/{REPO}/manifests/{gone_digest}"), 404, "MANIFEST_UNKNOWN")
    error(await client.get(f"/v2/{REPO}/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    error(await client.get(f"/v2/{REPO}/manifests/latest"), 404, "MANIFEST_UNKNOWN")
    assert await tags(client) == ["stable"]
    assert (await client.get(f"/v2/{REPO}/manifests/stable")).headers["docker-content-digest"] == kept_digest
    error(await client.delete(f"/v2/{REPO}/manifests/{gone_digest}"), 404, "MANIFEST_UNKNOWN")
    # The same content can be pushed again.
    assert await pushed(client, "v1", gone) == gone_digest


async def test_delete_tag_only(client: httpx.AsyncClient) -> None:
    content = await image(client)
    digest = await pushed(client, "v1", content)
    await pushed(client, "latest", content)
    r = await client.delete(f"/v2/{REPO}/manifests/latest")
    assert r.status_code == 202
    error(await client.get(f"/v2/{REPO}/manifests/latest"), 404, "MANIFEST_UNKNOWN")
    assert await tags(client) == ["v1"]
    r = await client.get(f"/v2/{REPO}/manifests/v1")
    assert r.content == content
    assert (await client.get(f"/v2/{REPO}/manifests/{digest}")).content == content
    error(await client.delete(f"/v2/{REPO}/manifests/latest"), 404, "MANIFEST_UNKNOWN")


async def test_delete_errors(client: httpx.AsyncClient) -> None:
    await pushed(client, "v1", await image(client))
    error(await client.delete(f"/v2/{REPO}/manifests/{sha256(b'x')}"), 404, "MANIFEST_UNKNOWN")
    error(await client.delete("/v2/lab/nothing/manifests/v1"), 404, "NAME_UNKNOWN")
    error(await client.delete(f"/v2/{REPO}/manifests/sha256:abc"), 400, "DIGEST_INVALID")
    error(await client.delete(f"/v2/{REPO}/manifests/.bad"), 400, "MANIFEST_INVALID")
    assert await tags(client) == ["v1"]
