"""Every kind of content pushed through /v2 is typed once and listed with its type."""

from __future__ import annotations

import json

import httpx
import pytest
from tests.conftest import ADMIN_PASSWORD
from tests.oci import fixtures_cnab as fx

from moorage.app import MoorageApp
from moorage.services.access import Principal


async def _blob(client: httpx.AsyncClient, repo: str, data: bytes) -> None:
    r = await client.post(f"/v2/{repo}/blobs/uploads/?digest={fx.digest_of(data)}", content=data)
    assert r.status_code == 201, r.text


async def push(client: httpx.AsyncClient, repo: str, built: fx.Built, tag: str | None = None) -> str:
    """Push a fixture manifest with its config and layer blobs (and an index's children first)."""
    for child in built.children:
        await push(client, repo, child)
    if built.config_blob is not None:
        await _blob(client, repo, built.config_blob)
    for layer in built.layers.values():
        await _blob(client, repo, layer)
    for desc in built.document.get("layers") or []:
        if built.config_blob is not None and desc["digest"] == fx.digest_of(built.config_blob):
            continue
        if desc["digest"] not in built.layers:
            pytest.fail(f"fixture lacks the bytes of layer {desc['digest']}")
    r = await client.put(
        f"/v2/{repo}/manifests/{tag or built.digest}",
        content=built.content,
        headers={"Content-Type": built.media_type},
    )
    assert r.status_code == 201, r.text
    return built.digest


async def push_bundle(client: httpx.AsyncClient, repo: str, bundle: fx.CnabFixture, tag: str) -> None:
    for component in bundle.components.values():
        await push(client, repo, component)
    await push(client, repo, bundle.invocation, f"{tag}-invoc")
    await _blob(client, repo, bundle.config_blob)
    await push(client, repo, bundle.config_manifest)
    await push(client, repo, bundle.index, tag)


async def admin(app: MoorageApp) -> Principal:
    return await app.services.authn.password("admin", ADMIN_PASSWORD, None)


@pytest.mark.parametrize("layout", ["bundle_json", "docker_app"])
@pytest.mark.parametrize("docker_list", [False, True])
async def test_application_and_invocation_tags_are_typed(
    app: MoorageApp, client: httpx.AsyncClient, layout: str, docker_list: bool
) -> None:
    bundle = (fx.bundle_json_bundle if layout == "bundle_json" else fx.docker_app_bundle)(
        docker_list=docker_list
    )
    await push_bundle(client, "lab/app", bundle, "1.0")
    tags = {t["name"]: t for t in await app.services.artifacts.list_tags(await admin(app), "lab/app")}
    assert tags["1.0"]["type"] == "application"
    assert tags["1.0"]["digest"] == bundle.index.digest
    assert tags["1.0-invoc"]["type"] == "invocation"
    assert tags["1.0-invoc"]["platforms"] == [{"os": "linux", "architecture": "amd64", "variant": None}]
    detail = await app.services.artifacts.manifest_detail(await admin(app), "lab/app", bundle.index.digest)
    b = detail["bundle"]
    assert b["invocationImages"][0]["digest"] == bundle.invocation.digest
    assert b["invocationImages"][0]["tags"] == ["1.0-invoc"]
    assert {c["digest"] for c in b["components"]} == {c.digest for c in bundle.components.values()}
    assert b["name"]


async def test_bundle_with_wrong_component_digest_is_refused_and_nothing_stored(
    app: MoorageApp, client: httpx.AsyncClient
) -> None:
    bundle = fx.bundle_json_bundle()
    config = json.loads(bundle.config_blob)
    # The bundle names a component digest that is not the one in the index.
    for image in config.get("images", {}).values():
        image["contentDigest"] = "sha256:" + "0" * 64
    blob = json.dumps(config).encode()
    bad = fx.CnabFixture(
        bundle.layout, bundle.index, bundle.config_manifest, blob, bundle.invocation, bundle.components
    )
    # Rebuild the config manifest around the altered blob, and the index around that.
    cfg_doc = json.loads(bundle.config_manifest.content)
    cfg_doc["config"] = fx.descriptor(cfg_doc["config"]["mediaType"], blob)
    cfg_manifest = fx.Built(cfg_doc, bundle.config_manifest.media_type, config, blob)
    index_doc = bundle.index_document()
    for desc in index_doc["manifests"]:
        if desc.get("annotations", {}).get("io.cnab.manifest.type") == "config":
            desc.update(cfg_manifest.ref())
    bad = fx.CnabFixture(
        bundle.layout,
        fx.Built(index_doc, bundle.index.media_type),
        cfg_manifest,
        blob,
        bundle.invocation,
        bundle.components,
    )
    for component in bad.components.values():
        await push(client, "lab/badapp", component)
    await push(client, "lab/badapp", bad.invocation, "1.0-invoc")
    await _blob(client, "lab/badapp", bad.config_blob)
    await push(client, "lab/badapp", bad.config_manifest)
    r = await client.put(
        "/v2/lab/badapp/manifests/1.0",
        content=bad.index.content,
        headers={"Content-Type": bad.index.media_type},
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "MANIFEST_INVALID"
    tags = {t["name"]: t for t in await app.services.artifacts.list_tags(await admin(app), "lab/badapp")}
    assert "1.0" not in tags
    assert tags["1.0-invoc"]["type"] == "image"  # not reclassified by the refused bundle


async def test_plugin_multi_arch_helm_and_signature_are_typed(
    app: MoorageApp, client: httpx.AsyncClient
) -> None:
    plugin = fx.docker_plugin()
    await push(client, "lab/kinds", plugin, "plugin")
    children = [fx.image(seed="multi"), fx.image(arch="arm64", variant="v8", seed="multi")]
    multi = fx.multi_arch(children)
    await push(client, "lab/kinds", multi, "multi")
    chart = fx.helm_chart()
    await push(client, "lab/kinds", chart, "chart")
    image = fx.image(seed="signed")
    await push(client, "lab/kinds", image, "signed")
    signature = fx.cosign_signature_referrer(image)
    await push(client, "lab/kinds", signature, "sig")
    tags = {t["name"]: t for t in await app.services.artifacts.list_tags(await admin(app), "lab/kinds")}
    assert tags["plugin"]["type"] == "plugin"
    assert tags["multi"]["type"] == "multi-arch"
    assert len(tags["multi"]["platforms"]) == len(multi.document["manifests"])
    assert tags["chart"]["type"] == "artifact"
    assert tags["chart"]["artifactType"] == fx.HELM_CONFIG
    assert tags["signed"]["type"] == "image"
    assert tags["sig"]["type"] == "artifact"
    r = await client.get(f"/v2/lab/kinds/referrers/{image.digest}")
    assert [m["digest"] for m in r.json()["manifests"]] == [signature.digest]
