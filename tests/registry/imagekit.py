"""A one-layer image pushed through /v2, for tests about who may do what rather than about content."""

from __future__ import annotations

import hashlib
import json

import httpx

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_manifest(config: bytes, layer: bytes) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()


async def push_image(
    client: httpx.AsyncClient, repo: str, tag: str = "v1", layer: bytes = b"a layer"
) -> bytes:
    """Push the layer, a linux/amd64 config and the manifest; returns the manifest."""
    config = b'{"architecture":"amd64","os":"linux"}'
    for blob in (layer, config):
        r = await client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob)
        assert r.status_code == 201, r.text
    manifest = image_manifest(config, layer)
    r = await client.put(
        f"/v2/{repo}/manifests/{tag}", content=manifest, headers={"Content-Type": MANIFEST_TYPE}
    )
    assert r.status_code == 201, r.text
    return manifest
