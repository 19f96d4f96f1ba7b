"""Bad input: each is refused with the spec's error code in its JSON envelope, stores nothing,
and leaves the registry working."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import ADMIN_PASSWORD, Backend, make_settings

from moorage.app import MoorageApp, create_app
from moorage.config import MiB, Settings
from moorage.oci import mediatypes as mt

BASE = "lab/base"
SPEC_CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.text}"
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"errors"}
    (entry,) = body["errors"]
    assert entry["code"] == code, entry
    assert entry["code"] in SPEC_CODES
    assert isinstance(entry["message"], str)
    assert entry["message"]
    return entry  # type: ignore[no-any-return]


async def push_blob(client: httpx.AsyncClient, data: bytes, repo: str = BASE) -> dict[str, Any]:
    r = await client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data)
    assert r.status_code == 201, r.text
    return {"digest": sha256(data), "size": len(data)}


async def image_manifest(client: httpx.AsyncClient, repo: str = BASE, pad_to: int | None = None) -> bytes:
    config = await push_blob(client, b'{"os":"linux","architecture":"amd64"}', repo)
    layer = await push_blob(client, b"layer", repo)
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, **config},
        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, **layer}],
        "annotations": {"pad": ""},
    }
    content = json.dumps(document).encode()
    if pad_to is not None:
        document["annotations"]["pad"] = "x" * (pad_to - len(content))
        content = json.dumps(document).encode()
        assert len(content) == pad_to
    return content


async def put_manifest(
    client: httpx.AsyncClient, repo: str, reference: str, content: bytes, media_type: str = mt.OCI_MANIFEST
) -> httpx.Response:
    return await client.put(
        f"/v2/{repo}/manifests/{reference}", content=content, headers={"Content-Type": media_type}
    )


# -- the state that must not change -----------------------------------------------------
class Registry:
    """A client plus what to compare before and after a bad request."""

    def __init__(self, client: httpx.AsyncClient, app: MoorageApp) -> None:
        self.client = client
        self.app = app
        self.storage = app.services.settings.resolved_storage_dir
        self.data_dir = app.services.settings.data_dir
        self.base_manifest = b""
        self.base_digest = ""

    async def setup(self) -> Registry:
        self.base_manifest = await image_manifest(self.client)
        r = await put_manifest(self.client, BASE, "v1", self.base_manifest)
        assert r.status_code == 201
        self.base_digest = r.headers["docker-content-digest"]
        return self

    async def state(self) -> dict[str, Any]:
        catalog = (await self.client.get("/v2/_catalog")).json()
        tags = {}
        for repo in catalog["repositories"]:
            tags[repo] = (await self.client.get(f"/v2/{repo}/tags/list")).json()
        # The store's spare files (empty, made ahead for new uploads) are no content.
        files = sorted(
            str(p.relative_to(self.storage))
            for p in self.storage.rglob("*")
            if p.is_file() and p.relative_to(self.storage).parts[0] != "spare"
        )
        outside = sorted(
            str(p.relative_to(self.data_dir.parent))
            for p in self.data_dir.parent.rglob("*")
            if p.is_file() and self.data_dir not in p.parents
        )
        return {"catalog": catalog, "tags": tags, "files": files, "outside": outside}

    async def assert_healthy(self) -> None:
        """The registry still serves what it held and takes new pushes."""
        assert (await self.client.get("/v2/")).status_code == 200
        r = await self.client.get(f"/v2/{BASE}/manifests/v1")
        assert r.status_code == 200
        assert r.content == self.base_manifest
        data = b"after the bad request"
        await push_blob(self.client, data)
        assert (await self.client.get(f"/v2/{BASE}/blobs/{sha256(data)}")).content == data


@pytest.fixture
async def registry(client: httpx.AsyncClient, app: MoorageApp) -> Registry:
    return await Registry(client, app).setup()


async def refused(registry: Registry, request: Any, status: int, code: str) -> dict[str, Any]:
    """Send a bad request; check the error, that nothing changed, and that the registry still works."""
    before = await registry.state()
    entry = error(await request(), status, code)
    assert await registry.state() == before
    await registry.assert_healthy()
    return entry


# -- digests -------------------------------------------------------------------------
async def test_monolithic_digest_mismatch(registry: Registry) -> None:
    c = registry.client
    claimed = sha256(b"claimed")
    entry = await refused(
        registry,
        lambda: c.post(f"/v2/{BASE}/blobs/uploads/", params={"digest": claimed}, content=b"actual"),
        400,
        "DIGEST_INVALID",
    )
    assert entry["detail"] == {"expected": claimed, "actual": sha256(b"actual")}
    assert (await c.head(f"/v2/{BASE}/blobs/{sha256(b'actual')}")).status_code == 404


async def test_chunked_digest_mismatch_discards_the_upload(registry: Registry) -> None:
    c = registry.client
    before = await registry.state()
    r = await c.post(f"/v2/{BASE}/blobs/uploads/")
    location = r.headers["location"]
    assert (await c.patch(location, content=b"chunk", headers={"Content-Range": "0-4"})).status_code == 202
    error(await c.put(location, params={"digest": sha256(b"other")}), 400, "DIGEST_INVALID")
    error(await c.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert await registry.state() == before  # the upload's file is gone too
    await registry.assert_healthy()


async def test_unknown_digest_algorithm(registry: Registry) -> None:
    c = registry.client
    for digest in ("md5:" + "a" * 32, "sha384:" + "a" * 96, "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g"):
        entry = await refused(
            registry,
            lambda d=digest: c.post(f"/v2/{BASE}/blobs/uploads/", params={"digest": d}, content=b"x"),
            400,
            "UNSUPPORTED",
        )
        assert "not supported" in entry["message"]
        location = (await c.post(f"/v2/{BASE}/blobs/uploads/")).headers["location"]
        await refused(
            registry,
            lambda d=digest, u=location: c.put(u, params={"digest": d}, content=b"x"),
            400,
            "UNSUPPORTED",
        )
        await c.delete(location)
        await refused(registry, lambda d=digest: c.get(f"/v2/{BASE}/blobs/{d}"), 400, "UNSUPPORTED")
        await refused(
            registry, lambda d=digest: put_manifest(c, BASE, d, registry.base_manifest), 400, "UNSUPPORTED"
        )
        await refused(registry, lambda d=digest: c.get(f"/v2/{BASE}/manifests/{d}"), 400, "UNSUPPORTED")
        await refused(registry, lambda d=digest: c.delete(f"/v2/{BASE}/manifests/{d}"), 400, "UNSUPPORTED")
        await refused(registry, lambda d=digest: c.get(f"/v2/{BASE}/referrers/{d}"), 400, "UNSUPPORTED")


async def test_malformed_digests(registry: Registry) -> None:
    c = registry.client
    for digest in ("sha256:" + "A" * 64, "sha256:123", "sha256:" + "a" * 64 + "%0A", "sha256:%2e%2e%2f"):
        await refused(
            registry,
            lambda d=digest: c.post(f"/v2/{BASE}/blobs/uploads/?digest={d}", content=b"x"),
            400,
            "DIGEST_INVALID",
        )
        if "%0A" not in digest and "%2f" not in digest:  # (URL parsing drops newlines; "/" changes the route)
            await refused(registry, lambda d=digest: c.get(f"/v2/{BASE}/blobs/{d}"), 400, "DIGEST_INVALID")


# -- manifests -----------------------------------------------------------------------
INVALID_MANIFESTS = (
    (b'{"schemaVersion": 2,', mt.OCI_MANIFEST, "not valid JSON"),
    (b"\xff\xfe", mt.OCI_MANIFEST, "not valid JSON"),
    (b'"a string"', mt.OCI_MANIFEST, "JSON object"),
    (
        b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:1", "size": 1}}',
        mt.OCI_MANIFEST,
        "config.digest",
    ),
    (
        b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "'
        + sha256(b"").encode()
        + b'", "size": "1"}}',
        mt.OCI_MANIFEST,
        "size",
    ),
    (b'{"schemaVersion": 2, "manifests": {}}', mt.OCI_INDEX, "manifests must be an array"),
    (b'{"schemaVersion": 2, "config": {}}', "text/plain", "unsupported manifest media type"),
    (b'{"schemaVersion": 1, "fsLayers": []}', mt.DOCKER_SCHEMA1, "schema 1"),
)


async def test_invalid_manifests(registry: Registry) -> None:
    c = registry.client
    for body, content_type, reason in INVALID_MANIFESTS:
        for reference in ("v2", "v1", sha256(body)):  # a new tag, an existing tag, by digest
            entry = await refused(
                registry,
                lambda r=reference, b=body, t=content_type: put_manifest(c, BASE, r, b, t),
                400,
                "MANIFEST_INVALID",
            )
            assert reason in entry["message"]


async def test_manifest_with_missing_blob(registry: Registry) -> None:
    document = json.loads(registry.base_manifest)
    document["layers"].append({"mediaType": mt.OCI_LAYER_GZIP, "digest": sha256(b"absent"), "size": 6})
    content = json.dumps(document).encode()
    entry = await refused(
        registry, lambda: put_manifest(registry.client, BASE, "v1", content), 400, "MANIFEST_BLOB_UNKNOWN"
    )
    assert entry["detail"] == {"missing": [sha256(b"absent")]}


async def test_manifest_into_new_repository_with_missing_blobs_creates_nothing(registry: Registry) -> None:
    # The referenced blobs live in lab/base only; lab/fresh must not appear in the catalog.
    entry = await refused(
        registry,
        lambda: put_manifest(registry.client, "lab/fresh", "v1", registry.base_manifest),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )
    assert len(entry["detail"]["missing"]) == 2


@pytest.fixture
async def small(tmp_path: Path, backend: Backend) -> AsyncIterator[Registry]:
    app = create_app(make_settings(tmp_path / "small", backend, max_manifest_size=1024, max_upload_size=2000))
    await app.services.prepare()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://moorage.test",
            auth=("admin", ADMIN_PASSWORD),
        ) as c:
            yield await Registry(c, app).setup()
    finally:
        await app.services.db.close()


async def test_manifest_over_the_configured_limit(small: Registry) -> None:
    c = small.client
    too_big = await image_manifest(c, pad_to=1025)
    entry = await refused(small, lambda: put_manifest(c, BASE, "big", too_big), 413, "SIZE_INVALID")
    assert entry["detail"] == {"limit": 1024}
    error(await c.get(f"/v2/{BASE}/manifests/{sha256(too_big)}"), 404, "MANIFEST_UNKNOWN")

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        for i in range(0, len(too_big), 100):
            yield too_big[i : i + 100]

    await refused(
        small,
        lambda: c.put(
            f"/v2/{BASE}/manifests/big", content=streamed(), headers={"Content-Type": mt.OCI_MANIFEST}
        ),
        413,
        "SIZE_INVALID",
    )
    # At the limit exactly is fine.
    fits = await image_manifest(c, pad_to=1024)
    assert (await put_manifest(c, BASE, "fits", fits)).status_code == 201
    assert (await c.get(f"/v2/{BASE}/manifests/fits")).content == fits


async def test_default_manifest_limit_is_4_mib(registry: Registry, settings: Settings) -> None:
    assert settings.max_manifest_size == 4 * MiB
    c = registry.client
    too_big = await image_manifest(c, pad_to=4 * MiB + 1)
    entry = await refused(registry, lambda: put_manifest(c, BASE, "big", too_big), 413, "SIZE_INVALID")
    assert entry["detail"] == {"limit": 4 * MiB}
    fits = await image_manifest(c, pad_to=4 * MiB)
    assert (await put_manifest(c, BASE, "fits", fits)).status_code == 201


async def test_blob_over_the_configured_limit(small: Registry) -> None:
    c = small.client
    data = b"z" * 2001
    entry = await refused(
        small,
        lambda: c.post(f"/v2/{BASE}/blobs/uploads/", params={"digest": sha256(data)}, content=data),
        413,
        "SIZE_INVALID",
    )
    assert entry["detail"] == {"limit": 2000}
    r = await c.post(f"/v2/{BASE}/blobs/uploads/")
    location = r.headers["location"]
    error(await c.put(location, params={"digest": sha256(data)}, content=data), 413, "SIZE_INVALID")
    assert (await c.get(location)).headers["range"] == "0-0"
    assert (
        await c.put(location, params={"digest": sha256(data[:2000])}, content=data[:2000])
    ).status_code == 201


# -- names and tags ------------------------------------------------------------------
async def test_invalid_repository_names(registry: Registry) -> None:
    c = registry.client
    data = b"blob"
    for name in ("Lab/base", "lab//base", "lab/base_", "-lab", "lab/ba se", "x" * 256, "lab/%2e%2e"):
        requests = [
            lambda n=name: c.post(f"/v2/{n}/blobs/uploads/"),
            lambda n=name: c.post(f"/v2/{n}/blobs/uploads/", params={"digest": sha256(data)}, content=data),
            lambda n=name: put_manifest(c, n, "v1", registry.base_manifest),
            lambda n=name: c.get(f"/v2/{n}/manifests/v1"),
            lambda n=name: c.get(f"/v2/{n}/tags/list"),
            lambda n=name: c.get(f"/v2/{n}/referrers/{sha256(data)}"),
            lambda n=name: c.get(f"/v2/{n}/blobs/{sha256(data)}"),
            lambda n=name: c.post("/v2/lab/ok/blobs/uploads/", params={"mount": sha256(b"layer"), "from": n}),
        ]
        for request in requests:
            await refused(registry, request, 400, "NAME_INVALID")


async def test_invalid_tags(registry: Registry) -> None:
    c = registry.client
    for tag in ("-bad", ".bad", "a" * 129, "bad%20tag", "bad+tag"):
        entry = await refused(
            registry, lambda t=tag: put_manifest(c, BASE, t, registry.base_manifest), 400, "MANIFEST_INVALID"
        )
        assert "invalid tag" in entry["message"]
        await refused(registry, lambda t=tag: c.delete(f"/v2/{BASE}/manifests/{t}"), 400, "MANIFEST_INVALID")


# -- uploads -------------------------------------------------------------------------
async def test_content_range_gap(registry: Registry) -> None:
    c = registry.client
    location = (await c.post(f"/v2/{BASE}/blobs/uploads/")).headers["location"]
    assert (await c.patch(location, content=b"01234", headers={"Content-Range": "0-4"})).status_code == 202
    for header in ("6-10", "4-8", "0-4", "100-104"):
        await refused(
            registry,
            lambda h=header: c.patch(location, content=b"56789", headers={"Content-Range": h}),
            416,
            "BLOB_UPLOAD_INVALID",
        )
        assert (await c.get(location)).headers["range"] == "0-4"
    assert (await c.patch(location, content=b"56789", headers={"Content-Range": "5-9"})).status_code == 202
    assert (await c.put(location, params={"digest": sha256(b"0123456789")})).status_code == 201


async def test_upload_id_of_another_repository(registry: Registry) -> None:
    c = registry.client
    location = (await c.post(f"/v2/{BASE}/blobs/uploads/")).headers["location"]
    await c.patch(location, content=b"mine", headers={"Content-Range": "0-3"})
    upload_id = location.rsplit("/", 1)[1]
    await push_blob(c, b"x", "lab/other")
    stolen = f"/v2/lab/other/blobs/uploads/{upload_id}"
    await refused(registry, lambda: c.get(stolen), 404, "BLOB_UPLOAD_UNKNOWN")
    await refused(
        registry,
        lambda: c.patch(stolen, content=b"!", headers={"Content-Range": "4-4"}),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    await refused(
        registry, lambda: c.put(stolen, params={"digest": sha256(b"mine")}), 404, "BLOB_UPLOAD_UNKNOWN"
    )
    await refused(registry, lambda: c.delete(stolen), 404, "BLOB_UPLOAD_UNKNOWN")
    assert (await c.get(location)).headers["range"] == "0-3"


# -- path traversal ------------------------------------------------------------------
async def raw_request(
    app: MoorageApp, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> httpx.Response:
    """Send ``path`` exactly as a server would hand it over (clients normalise ``..`` away)."""
    path_only, _, query = path.partition("?")
    credentials = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    all_headers = {
        "host": "moorage.test",
        "authorization": f"Basic {credentials}",
        "content-length": str(len(body)),
    }
    all_headers.update(headers or {})
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path_only,
        "raw_path": path_only.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in all_headers.items()],
        "server": ("moorage.test", 80),
        "client": ("127.0.0.1", 40000),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 0
    response_headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, response_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers = message.get("headers", [])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)  # type: ignore[arg-type]
    return httpx.Response(status, headers=response_headers, content=b"".join(chunks))


DIGEST = sha256(b"evil")


TRAVERSALS = (
    ("GET", f"/v2/../../etc/blobs/{DIGEST}"),
    ("GET", "/v2/../../etc/passwd"),
    ("GET", "/v2/lab/../../etc/tags/list"),
    ("GET", "/v2/lab/../../../etc/manifests/latest"),
    ("PUT", "/v2/../lab/base/manifests/v9"),
    ("POST", f"/v2/../../tmp/blobs/uploads/?digest={DIGEST}"),
    ("POST", "/v2/./lab/blobs/uploads/"),
    ("GET", "/v2/lab/base/blobs/sha256:../../../../etc/passwd"),
    ("PATCH", "/v2/lab/base/blobs/uploads/../../../../etc/passwd"),
    ("GET", "/v2/lab/base/manifests/../../../etc/passwd"),
    ("GET", "/v2/lab\\..\\..\\etc/tags/list"),
)


async def test_path_traversal_in_raw_paths(registry: Registry) -> None:
    for method, path in TRAVERSALS:
        body = b"evil" if method in ("POST", "PUT", "PATCH") else b""
        entry = await refused(
            registry, lambda m=method, p=path, b=body: raw_request(registry.app, m, p, b), 400, "NAME_INVALID"
        )
        assert "name" in entry["message"] or "route" in entry["message"], (path, entry)
    assert not list(registry.data_dir.parent.rglob("passwd"))
    assert not list(registry.data_dir.parent.rglob("etc"))


async def test_encoded_path_traversal(registry: Registry) -> None:
    for path in (
        f"/v2/%2e%2e/%2e%2e/etc/blobs/{DIGEST}",
        "/v2/lab/%2e%2e/%2e%2e/etc/tags/list",
        "/v2/lab%2f..%2f..%2fetc/tags/list",
        "/v2/lab/base/blobs/sha256:%2e%2e%2f%2e%2e%2fetc",
        "/v2/%2e%2e%2f%2e%2e%2fetc/blobs/uploads/",
    ):
        method = "POST" if path.endswith("uploads/") else "GET"
        await refused(registry, lambda p=path, m=method: registry.client.request(m, p), 400, "NAME_INVALID")


async def test_dot_dot_upload_id_is_unknown(registry: Registry) -> None:
    for upload_id in ("..", "."):
        await refused(
            registry,
            lambda u=upload_id: raw_request(registry.app, "GET", f"/v2/{BASE}/blobs/uploads/{u}"),
            404,
            "BLOB_UPLOAD_UNKNOWN",
        )


# -- malformed requests --------------------------------------------------------------
async def test_body_shorter_than_content_length(registry: Registry) -> None:
    location = (await registry.client.post(f"/v2/{BASE}/blobs/uploads/")).headers["location"]
    entry = await refused(
        registry,
        lambda: raw_request(registry.app, "PATCH", location, b"abc", {"content-length": "10"}),
        400,
        "SIZE_INVALID",
    )
    assert "Content-Length" in entry["message"]
    assert (await registry.client.get(location)).headers["range"] == "0-0"


async def test_invalid_content_length(registry: Registry) -> None:
    location = (await registry.client.post(f"/v2/{BASE}/blobs/uploads/")).headers["location"]
    await refused(
        registry,
        lambda: raw_request(registry.app, "PATCH", location, b"abc", {"content-length": "3x"}),
        400,
        "SIZE_INVALID",
    )


async def test_unsupported_methods(registry: Registry) -> None:
    for method, path, allow in (
        ("POST", f"/v2/{BASE}/manifests/v1", "DELETE, GET, HEAD, PUT"),
        ("DELETE", f"/v2/{BASE}/tags/list", "GET"),
        ("PUT", "/v2/_catalog", "GET"),
        ("GET", f"/v2/{BASE}/blobs/uploads/", "POST"),
        ("POST", f"/v2/{BASE}/referrers/{DIGEST}", "GET"),
    ):
        r = await registry.client.request(method, path)
        error(r, 405, "UNSUPPORTED")
        assert r.headers["allow"] == allow
    await registry.assert_healthy()


async def test_unknown_route(registry: Registry) -> None:
    await refused(registry, lambda: registry.client.get(f"/v2/{BASE}/nothing-here"), 400, "NAME_INVALID")


# -- a refused first push -----------------------------------------------------------
async def test_refused_first_push_leaves_no_repository(registry: Registry) -> None:
    c = registry.client
    await refused(
        registry,
        lambda: c.post(
            "/v2/lab/brand-new/blobs/uploads/", params={"digest": sha256(b"claimed")}, content=b"x"
        ),
        400,
        "DIGEST_INVALID",
    )
