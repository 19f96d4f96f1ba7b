from __future__ import annotations

import hashlib
import json

import httpx
from tests.conftest import ADMIN_PASSWORD

from moorage.app import MoorageApp

MT = "application/vnd.oci.image.manifest.v1+json"


async def _push_image(client: httpx.AsyncClient, repo: str, tag: str, payload: bytes) -> httpx.Response:
    config = json.dumps({"architecture": "amd64", "os": "linux", "note": payload.decode()}).encode()
    for blob in (config, payload):
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        r = await client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=blob)
        assert r.status_code == 201, r.text
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MT,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": "sha256:" + hashlib.sha256(payload).hexdigest(),
                    "size": len(payload),
                }
            ],
        }
    ).encode()
    r = await client.put(f"/v2/{repo}/manifests/{tag}", content=manifest, headers={"Content-Type": MT})
    return r


async def test_immutable_tags_refuse_overwrite_with_a_clear_message(
    app: MoorageApp, client: httpx.AsyncClient
) -> None:
    assert (await _push_image(client, "lab/frozen", "v1", b"first")).status_code == 201
    admin = await app.services.authn.password("admin", ADMIN_PASSWORD, None)
    await app.services.repositories.update(admin, "lab/frozen", immutable_tags=True)

    # The same manifest again is fine (idempotent push); another one under the tag is refused.
    assert (await _push_image(client, "lab/frozen", "v1", b"first")).status_code == 201
    r = await _push_image(client, "lab/frozen", "v1", b"second")
    assert r.status_code == 403
    error = r.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert "immutable" in error["message"]
    assert "lab/frozen" in error["message"]
    # Nothing changed: v1 still resolves to the first image, and a new tag is accepted.
    first = await client.get("/v2/lab/frozen/manifests/v1")
    assert hashlib.sha256(b"first").hexdigest() in first.text  # the manifest names its layer by digest
    assert (await _push_image(client, "lab/frozen", "v2", b"second")).status_code == 201
