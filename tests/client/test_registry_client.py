"""The OCI client (``moorage.client.registry``): against a real Moorage app in process (token
auth, uploads, mounts, manifests), and against scripted transports for what a real server
rarely does (TLS failures, plain HTTP, timeouts, registries without monolithic uploads)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from conftest import ADMIN_PASSWORD
from moorage.app import MoorageApp
from moorage.client import registry as registry_module
from moorage.client.auth import Credentials
from moorage.client.registry import CertificateProblem, ClientError, RegistryClient, explain_tls_failure
from moorage.oci import mediatypes as mt

HOST = "registry.test"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
async def registry(app: MoorageApp) -> AsyncIterator[RegistryClient]:
    client = RegistryClient(
        HOST, credentials=Credentials("admin", ADMIN_PASSWORD), transport=httpx.ASGITransport(app=app)
    )
    try:
        yield client
    finally:
        await client.close()


def image(payload: bytes) -> tuple[bytes, bytes, bytes]:
    """(config, layer, manifest) of a tiny OCI image."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": sha256(payload), "size": len(payload)}],
        }
    ).encode()
    return config, payload, manifest


async def test_push_and_pull_with_token_auth(registry: RegistryClient) -> None:
    config, layer, manifest = image(b"layer-bytes" * 100)
    seen: list[int] = []
    for blob in (config, layer):
        await registry.push_blob("lab/web", sha256(blob), blob, progress=seen.append)
    assert sum(seen) == len(config) + len(layer)
    assert any(scope.startswith("repository:lab/web:") for scope in registry._tokens), (
        "a bearer token was used"
    )
    assert await registry.blob_exists("lab/web", sha256(layer))
    assert await registry.read_blob("lab/web", sha256(layer)) == layer
    digest = await registry.put_manifest("lab/web", "1", manifest, mt.OCI_MANIFEST)
    assert digest == sha256(manifest)
    assert await registry.get_manifest("lab/web", "1") == (manifest, mt.OCI_MANIFEST, digest)
    assert await registry.get_manifest("lab/web", digest) == (manifest, mt.OCI_MANIFEST, digest)
    assert await registry.manifest_digest("lab/web", "1") == digest
    assert await registry.manifest_digest("lab/web", "nope") is None
    assert await registry.tags("lab/web") == ["1"]
    # Pushing a blob that is there already uploads nothing but still reports progress.
    again: list[int] = []
    await registry.push_blob("lab/web", sha256(layer), layer, progress=again.append)
    assert again == [len(layer)]


async def test_chunked_upload_from_memory_and_from_a_file(
    registry: RegistryClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(registry_module, "CHUNK", 1000)
    data = bytes(range(256)) * 13  # 3328 bytes: four chunks
    seen: list[int] = []
    await registry.push_blob("lab/chunked", sha256(data), data, progress=seen.append)
    assert seen == [1000, 1000, 1000, 328]
    path = tmp_path / "blob"
    path.write_bytes(data[::-1])
    await registry.push_blob("lab/chunked", sha256(data[::-1]), path)
    assert await registry.read_blob("lab/chunked", sha256(data[::-1])) == data[::-1]


async def test_cross_repository_mount(registry: RegistryClient) -> None:
    blob = b"shared layer"
    await registry.push_blob("lab/source", sha256(blob), blob)
    assert await registry.mount_blob("lab/target", sha256(blob), "lab/source")
    assert await registry.blob_exists("lab/target", sha256(blob))
    # A blob the source does not have: the registry opens an upload instead, which is cancelled.
    assert not await registry.mount_blob("lab/target", sha256(b"absent"), "lab/source")


async def test_wrong_password_and_anonymous(app: MoorageApp) -> None:
    transport = httpx.ASGITransport(app=app)
    async with RegistryClient(HOST, credentials=Credentials("admin", "wrong"), transport=transport) as client:
        with pytest.raises(ClientError, match="refused the credentials") as info:
            await client.ping()
        assert info.value.status == 401
    async with RegistryClient(
        HOST, credentials=Credentials("admin", ADMIN_PASSWORD), transport=transport
    ) as client:
        await client.ping()
    async with RegistryClient(HOST, transport=transport) as client:
        with pytest.raises(ClientError, match=f"moorage login {HOST}"):
            await client.push_blob("lab/web", sha256(b"x"), b"x")


# -- scripted transports ------------------------------------------------------------------------
def scripted(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def raising(message: str, kind: type[httpx.TransportError] = httpx.ConnectError) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise kind(message, request=request)

    return scripted(handler)


async def test_unknown_authority_names_both_fixes() -> None:
    transport = raising(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1000)"
    )
    async with RegistryClient("r.example:5443", transport=transport) as client:
        with pytest.raises(CertificateProblem) as info:
            await client.ping()
    message = str(info.value)
    assert message.startswith("x509: certificate of r.example:5443 signed by unknown authority.\n")
    assert "moorage certs generate --fqdn r.example" in message
    assert "https://r.example:5443/ca" in message
    assert message.endswith("For testing only: pass --insecure-registries r.example:5443.")


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (
            "certificate verify failed: Hostname mismatch, certificate is not valid for 'r.example'.",
            "x509: the certificate of r.example:5443 is not valid for the name 'r.example'",
        ),
        (
            "certificate verify failed: IP address mismatch, certificate is not valid for '10.0.0.1'.",
            "x509: the certificate of r.example:5443 is not valid for the name 'r.example'",
        ),
        (
            "certificate verify failed: self signed certificate in certificate chain",
            "x509: certificate of r.example:5443 signed by unknown authority",
        ),
        (
            "certificate verify failed: unable to get local issuer certificate",
            "x509: certificate of r.example:5443 signed by unknown authority",
        ),
        (
            "certificate verify failed: certificate has expired",
            "x509: the certificate of r.example:5443 has expired",
        ),
    ],
)
def test_explain_tls_failure(error: str, cause: str) -> None:
    problem = explain_tls_failure("r.example:5443", Exception(f"[SSL: CERTIFICATE_VERIFY_FAILED] {error}"))
    assert str(problem).startswith(cause + ".\n")
    assert "--insecure-registries r.example:5443" in str(problem)


def test_explain_tls_failure_with_ipv6() -> None:
    problem = explain_tls_failure("[::1]:5443", Exception("Hostname mismatch"))
    assert "not valid for the name '::1'" in str(problem)


async def test_plain_http_registry() -> None:
    async with RegistryClient(
        "r.example:5000", transport=raising("[SSL: WRONG_VERSION_NUMBER] wrong version number")
    ) as client:
        with pytest.raises(
            ClientError,
            match=re.escape(
                "speaks plain HTTP, not HTTPS; for testing pass --insecure-registries r.example:5000"
            ),
        ):
            await client.ping()

    schemes: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        schemes.append(request.url.scheme)
        if request.url.scheme == "https":
            raise httpx.ConnectError("[SSL] record layer failure", request=request)
        return httpx.Response(200, json={})

    async with RegistryClient("r.example:5000", insecure=True, transport=scripted(handler)) as client:
        await client.ping()
    assert schemes == ["https", "http"]  # the probe over HTTPS, then plain HTTP for good


async def test_transport_failures_become_client_errors() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(200, json={})  # the /v2/ probe
        raise httpx.ReadTimeout("timed out", request=request)

    async with RegistryClient("r.example", transport=scripted(handler)) as client:
        with pytest.raises(ClientError, match=re.escape("cannot reach r.example: timed out")):
            await client.manifest_digest("lab/web", "1")


async def test_blob_that_does_not_match_its_digest() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"tampered")

    async with RegistryClient("r.example", transport=scripted(handler)) as client:
        with pytest.raises(ClientError, match="does not match its digest"):
            await client.read_blob("lab/web", sha256(b"original"))


async def test_registry_without_monolithic_upload() -> None:
    requests: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append((request.method, str(request.url.copy_with(query=None))))
        if request.method == "HEAD":
            return httpx.Response(404)
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/lab/web/blobs/uploads/abc?state=1"})
        if request.method == "PUT":
            assert request.url.params["digest"] == sha256(b"data")
            assert request.content == b"data"
            return httpx.Response(201)
        return httpx.Response(200)

    async with RegistryClient("r.example", transport=scripted(handler)) as client:
        await client.push_blob("lab/web", sha256(b"data"), b"data")
    assert requests[-1] == ("PUT", "https://r.example/v2/lab/web/blobs/uploads/abc")


async def test_missing_ca_file(tmp_path: Path) -> None:
    async with RegistryClient("r.example", ca_file=tmp_path / "nope.crt") as client:
        with pytest.raises(ClientError, match="cannot use the CA certificate"):
            await client.ping()
