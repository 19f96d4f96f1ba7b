"""The tag listing contract of issue 4 and the per-manifest detail endpoint."""

from __future__ import annotations

import httpx
from tests.api.helpers import API, UserFactory
from tests.oci import fixtures_cnab as fx
from tests.services.test_artifacts import push, push_bundle

TAG_FIELDS = {
    "name",
    "type",
    "digest",
    "mediaType",
    "artifactType",
    "platforms",
    "size",
    "pushedAt",
    "pushedBy",
    "scan",
}


async def test_tags_list_types_every_tag(client: httpx.AsyncClient) -> None:
    bundle = fx.bundle_json_bundle()
    await push_bundle(client, "admin/shop", bundle, "1.0")
    image = fx.image(arch="arm64", variant="v8", seed="api")
    await push(client, "admin/shop", image, "arm")
    multi = fx.multi_arch([fx.image(seed="api-m"), fx.image(arch="arm", variant="v7", seed="api-m")])
    await push(client, "admin/shop", multi, "multi")

    r = await client.get(f"{API}/repositories/admin/shop/tags")
    assert r.status_code == 200, r.text
    tags = {t["name"]: t for t in r.json()}
    assert set(tags) == {"1.0", "1.0-invoc", "arm", "multi"}
    for tag in tags.values():
        assert set(tag) >= TAG_FIELDS
        assert tag["pushedBy"] == "admin"
        # scan on push queued every image: each tag is pending until its scans are done
        assert tag["scan"] == {
            "status": "pending", "critical": 0, "high": 0, "medium": 0, "low": 0, "unknown": 0,
        }  # fmt: skip
    assert tags["1.0"]["type"] == "application"
    assert tags["1.0"]["digest"] == bundle.index.digest
    assert tags["1.0-invoc"]["type"] == "invocation"
    assert tags["1.0-invoc"]["platforms"] == [{"os": "linux", "architecture": "amd64", "variant": None}]
    assert tags["arm"] == tags["arm"] | {
        "type": "image",
        "digest": image.digest,
        "mediaType": image.media_type,
        "artifactType": None,
        "platforms": [{"os": "linux", "architecture": "arm64", "variant": "v8"}],
    }
    assert tags["arm"]["size"] == len(image.content) + len(image.config_blob or b"") + sum(
        len(b) for b in image.layers.values()
    )
    assert tags["multi"]["type"] == "multi-arch"
    assert tags["multi"]["platforms"] == [
        {"os": "linux", "architecture": "amd64", "variant": None},
        {"os": "linux", "architecture": "arm", "variant": "v7"},
    ]

    detail = (await client.get(f"{API}/repositories/admin/shop/manifests/{bundle.index.digest}")).json()
    assert detail["type"] == "application"
    assert detail["tags"] == ["1.0"]
    assert detail["bundle"]["name"] == "my-app"
    assert detail["bundle"]["version"] == "0.1.0"
    assert detail["bundle"]["invocationImages"][0]["tags"] == ["1.0-invoc"]
    assert {c["name"] for c in detail["bundle"]["components"]} == {"another-image", "image-1"}
    assert {p["name"] for p in detail["bundle"]["parameters"]} == {"param1", "param2"}
    assert [c["name"] for c in detail["bundle"]["credentials"]] == ["cred-1"]

    multi_detail = (await client.get(f"{API}/repositories/admin/shop/manifests/{multi.digest}")).json()
    assert [m["platform"]["architecture"] for m in multi_detail["manifests"]] == ["amd64", "arm"]
    image_detail = (await client.get(f"{API}/repositories/admin/shop/manifests/{image.digest}")).json()
    assert image_detail["config"]["architecture"] == "arm64"
    assert [layer["digest"] for layer in image_detail["layers"]] == list(image.layers)


async def test_tags_of_private_repository_are_hidden_from_others(
    client: httpx.AsyncClient, new_user: UserFactory
) -> None:
    await push(client, "admin/secret", fx.image(seed="secret"), "v1")
    bob = await new_user("bob")
    r = await bob.get(f"{API}/repositories/admin/secret/tags")
    assert r.status_code == 404
    r = await client.get(f"{API}/repositories/admin/secret/manifests/sha256:{'0' * 64}")
    assert r.status_code == 404
    r = await client.get(f"{API}/repositories/admin/secret/manifests/md5:abc")
    assert r.status_code == 422
    assert r.json()["field"] == "digest"
