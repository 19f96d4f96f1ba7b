"""``push_app``, ``inspect_app`` and ``pull_app`` against a real Moorage app in process (fast;
tests/e2e/test_app_client.py does the same through the CLI against a server process): the order
that leaves no tag on failure, cnab-to-oci's fallbacks, --base, bundle.json sources."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from conftest import ADMIN_PASSWORD
from e2e.layouts import AMD64, ARM64, build_image, canonical_json, layer_files, sha256
from moorage.app import MoorageApp
from moorage.client.apppull import AppPullError, inspect_app, pull_app
from moorage.client.apppush import AppPushError, load_app_source, push_app
from moorage.client.auth import Credentials
from moorage.client.progress import SilentReporter
from moorage.client.references import parse_image_ref
from moorage.client.registries import Registries
from moorage.client.registry import RegistryClient
from moorage.oci import mediatypes as mt
from moorage.oci.manifest import Platform

from .test_dockerapp import write_app

HOST = "registry.test"
COMPOSE = f"services:\n  web:\n    image: {HOST}/lab/web:1\n  worker:\n    image: lab/worker:${{tag}}\n"


class Refusing(httpx.AsyncBaseTransport):
    """A registry that refuses bundle indexes as OCI indexes, or some config media types, with
    400 MANIFEST_INVALID (as registries without CNAB support did)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, refused: set[str]) -> None:
        self.inner, self.refused = inner, refused

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and "/manifests/" in request.url.path:
            body = await request.aread()
            declared = request.headers.get("content-type", "")
            config_type = (json.loads(body).get("config") or {}).get("mediaType")
            bundle_index = declared == mt.OCI_INDEX and b"io.cnab.manifest.type" in body
            if (bundle_index and mt.OCI_INDEX in self.refused) or config_type in self.refused:
                return httpx.Response(
                    400, json={"errors": [{"code": "MANIFEST_INVALID", "message": "refused"}]}
                )
        return await self.inner.handle_async_request(request)


@pytest.fixture
def transport(app: MoorageApp) -> httpx.AsyncBaseTransport:
    return httpx.ASGITransport(app=app)


@pytest.fixture
async def registries(transport: httpx.AsyncBaseTransport) -> AsyncIterator[Registries]:
    async with Registries(
        credentials=lambda host: Credentials("admin", ADMIN_PASSWORD), transport=transport
    ) as r:
        yield r


async def push_image(
    client: RegistryClient, repo: str, tag: str, platform: object = AMD64, salt: str = ""
) -> str:
    img = build_image(platform, layer_files(platform, 1, salt))  # type: ignore[arg-type]
    for data in img.blobs.values():
        await client.push_blob(repo, sha256(data), data)
    return await client.put_manifest(repo, tag, img.manifest, mt.OCI_MANIFEST)


async def push_multi(client: RegistryClient, repo: str, tag: str) -> str:
    children = []
    for platform in (AMD64, ARM64):
        digest = await push_image(client, repo, digest_tag := f"tmp-{platform.architecture}", platform)
        del digest_tag
        img = build_image(platform, layer_files(platform, 1, ""))
        children.append(img.descriptor.as_json())
        assert digest == img.digest
    index = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": children})
    return await client.put_manifest(repo, tag, index, mt.OCI_INDEX)


async def services(registries: Registries) -> tuple[str, str]:
    client = registries.client(HOST)
    return await push_image(client, "lab/web", "1"), await push_multi(client, "lab/worker", "2")


async def test_push_inspect_pull(registries: Registries, tmp_path: Path) -> None:
    web, worker = await services(registries)
    source = load_app_source(write_app(tmp_path, docker_compose_yml=COMPOSE, parameters_yml="tag: '2'\n"))
    reporter = SilentReporter()
    target = parse_image_ref(f"{HOST}/lab/hello:0.1.0")
    result = await push_app(source, target, registries, reporter)
    assert reporter.lines == [
        f"{HOST}/lab/hello:0.1.0-invoc",
        f"Successfully pushed bundle to {HOST}/lab/hello:0.1.0. Digest is {result.digest}.",
    ]
    assert {n: d.digest for n, d in result.components.items()} == {"web": web, "worker": worker}
    assert (result.config_media_type, result.index_media_type) == (mt.CNAB_CONFIG, mt.OCI_INDEX)
    client = registries.client(HOST)
    assert sorted(await client.tags("lab/hello")) == ["0.1.0", "0.1.0-invoc"]

    info = await inspect_app(registries, target)
    assert info.digest == result.digest
    assert (info.bundle.name, info.bundle.version) == ("hello", "0.1.0")
    assert info.invocation.digest == result.invocation_digest
    assert info.invocation.tag == "0.1.0-invoc"
    assert info.invocation.platforms == (Platform("linux", "amd64"),)
    assert [(c.name, c.digest, c.original) for c in info.components] == [
        ("web", web, f"{HOST}/lab/web:1"),
        ("worker", worker, "lab/worker:2"),
    ]
    assert info.components[1].platforms == (Platform("linux", "amd64"), Platform("linux", "arm64", "v8"))

    out = tmp_path / "out"
    pulled = await pull_app(registries, target, out, SilentReporter())
    assert pulled.files[0] == "bundle.json"
    assert json.loads((out / "bundle.json").read_bytes()) == result.bundle
    assert (out / "hello.dockerapp" / "docker-compose.yml").read_text() == COMPOSE
    layout_index = json.loads((out / "invocation-image" / "index.json").read_text())
    assert layout_index["manifests"][0]["digest"] == result.invocation_digest
    assert layout_index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "0.1.0-invoc"}


async def test_unresolvable_component_leaves_no_tag(registries: Registries, tmp_path: Path) -> None:
    await push_image(registries.client(HOST), "lab/web", "1")
    compose = f"services:\n  web:\n    image: {HOST}/lab/web:1\n  db:\n    image: lab/db:9\n"
    source = load_app_source(write_app(tmp_path, docker_compose_yml=compose))
    with pytest.raises(AppPushError) as info:
        await push_app(source, parse_image_ref(f"{HOST}/lab/hello:1"), registries, SilentReporter())
    assert info.value.message.startswith(
        f'fixing up "{HOST}/lab/hello:1" for push: failed to resolve "{HOST}/lab/db:9", '
        "push the image to the registry before pushing the bundle: "
    )
    assert (
        await registries.client(HOST).request(
            "GET", "/v2/lab/hello/tags/list", "repository:lab/hello:pull", ok=(200, 404)
        )
    ).status_code == 404


async def test_fallbacks_for_registries_that_refuse_cnab_types(
    transport: httpx.AsyncBaseTransport, tmp_path: Path
) -> None:
    refusing = Refusing(transport, {mt.OCI_INDEX, mt.CNAB_CONFIG})
    async with Registries(
        credentials=lambda h: Credentials("admin", ADMIN_PASSWORD), transport=refusing
    ) as regs:
        await services(regs)
        source = load_app_source(write_app(tmp_path, docker_compose_yml=COMPOSE, parameters_yml="tag: '2'\n"))
        result = await push_app(source, parse_image_ref(f"{HOST}/lab/hello:1"), regs, SilentReporter())
        assert (result.config_media_type, result.index_media_type) == (mt.OCI_CONFIG, mt.DOCKER_MANIFEST_LIST)
        info = await inspect_app(regs, parse_image_ref(f"{HOST}/lab/hello:1"))
        assert info.media_type == mt.DOCKER_MANIFEST_LIST
        assert [c.name for c in info.components] == ["web", "worker"]


async def test_base_image_and_platform(registries: Registries, tmp_path: Path) -> None:
    await services(registries)
    base = await push_multi(registries.client(HOST), "lab/base", "1")
    source = load_app_source(write_app(tmp_path, docker_compose_yml=COMPOSE, parameters_yml="tag: '2'\n"))
    result = await push_app(
        source,
        parse_image_ref(f"{HOST}/lab/hello:2"),
        registries,
        SilentReporter(),
        platform=Platform("linux", "arm64"),
        base="lab/base:1",
    )
    client = registries.client(HOST)
    manifest = json.loads((await client.get_manifest("lab/hello", result.invocation_digest))[0])
    base_index = json.loads((await client.get_manifest("lab/base", base))[0])
    arm = json.loads((await client.get_manifest("lab/base", base_index["manifests"][1]["digest"]))[0])
    assert manifest["layers"][:-1] == arm["layers"]  # the arm64 base's layers, then the app layer
    config = json.loads(await client.read_blob("lab/hello", manifest["config"]["digest"]))
    assert (config["os"], config["architecture"]) == ("linux", "arm64")
    with pytest.raises(AppPushError, match="has no image for linux/s390x"):
        await push_app(
            source,
            parse_image_ref(f"{HOST}/lab/hello:3"),
            registries,
            SilentReporter(),
            platform=Platform("linux", "s390x"),
            base="lab/base:1",
        )
    with pytest.raises(AppPushError, match=f'failed to resolve base image "{HOST}/lab/nobase:1"'):
        await push_app(
            source, parse_image_ref(f"{HOST}/lab/hello:3"), registries, SilentReporter(), base="lab/nobase:1"
        )
    assert "3" not in await client.tags("lab/hello")


async def test_bundle_json_source_with_pinned_digest(registries: Registries, tmp_path: Path) -> None:
    web, _ = await services(registries)
    await push_image(registries.client(HOST), "lab/web", "1", salt="moved")  # the tag moves on
    (tmp_path / "cnab" / "app").mkdir(parents=True)
    (tmp_path / "cnab" / "app" / "run").write_text("#!/bin/sh\necho hi\n")
    bundle = {
        "schemaVersion": "v1.0.0",
        "name": "plain",
        "version": "1.0.0",
        "keywords": ["k"],
        "invocationImages": [{"imageType": "docker", "image": "ignored:1"}],
        "images": {"web": {"image": "lab/web:1", "imageType": "oci", "contentDigest": web}},
    }
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    source = load_app_source(tmp_path / "bundle.json")
    assert source.files == {"run": b"#!/bin/sh\necho hi\n"}
    result = await push_app(source, parse_image_ref(f"{HOST}/lab/plain:1"), registries, SilentReporter())
    assert result.components["web"].digest == web  # resolved by the pinned digest, not the moved tag
    out = tmp_path / "out"
    await pull_app(registries, parse_image_ref(f"{HOST}/lab/plain:1"), out, SilentReporter())
    assert (out / "run").read_text() == "#!/bin/sh\necho hi\n"


async def test_inspect_refuses_what_is_not_an_application(registries: Registries) -> None:
    await services(registries)
    with pytest.raises(AppPullError, match="is an image, not an application"):
        await inspect_app(registries, parse_image_ref(f"{HOST}/lab/web:1"))
    with pytest.raises(AppPullError, match="is a multi-arch image, not an application"):
        await inspect_app(registries, parse_image_ref(f"{HOST}/lab/worker:2"))
