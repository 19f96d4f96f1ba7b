from __future__ import annotations

import hashlib

import httpx


async def test_push_and_pull_blob_and_manifest(client: httpx.AsyncClient) -> None:
    data = b"hello moorage"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = await client.post(f"/v2/lab/words/blobs/uploads/?digest={digest}", content=data)
    assert r.status_code == 201, r.text
    config = b"{}"
    cdigest = "sha256:" + hashlib.sha256(config).hexdigest()
    r = await client.post(f"/v2/lab/words/blobs/uploads/?digest={cdigest}", content=config)
    assert r.status_code == 201
    manifest = (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        f'"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cdigest}","size":2}},'
        f'"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{digest}","size":{len(data)}}}]}}'
    ).encode()
    r = await client.put(
        "/v2/lab/words/manifests/v1",
        content=manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert r.status_code == 201, r.text
    r = await client.get("/v2/lab/words/manifests/v1")
    assert r.content == manifest
    assert r.headers["docker-content-digest"] == "sha256:" + hashlib.sha256(manifest).hexdigest()
    r = await client.get(f"/v2/lab/words/blobs/{digest}")
    assert r.content == data
