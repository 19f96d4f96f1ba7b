"""End-to-end helpers: every way a test reaches a running server goes through here.

``run_skopeo``, ``registry_client`` / ``async_registry_client`` and ``oras_registry`` are
the only places that talk to a server, and they sign in with the credentials the
``ServerProcess`` carries (``username``/``password``: the administrator), in one place:
``credentials``.

The HTTP push helpers below speak the distribution-spec's push protocol directly
(monolithic ``POST ?digest=``, ``POST`` + ``PATCH`` chunks + ``PUT``, manifests by tag or
digest) on a client that ``registry_client`` made.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (  # tests/conftest.py
    POSTGRES_URL,
    Backend,
    ServerProcess,
    _pg_schema,
    backend_env,
    start_server,
)

from .layouts import Image, sha256

__all__ = ["Backend", "ServerProcess", "backend_env", "start_server"]

SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
HTTP_TIMEOUT = 60.0

#: Per skopeo subcommand, the flags that let it talk plain HTTP to a loopback registry.
_SKOPEO_TLS = {
    "copy": ("--src-tls-verify=false", "--dest-tls-verify=false"),
    "sync": ("--src-tls-verify=false", "--dest-tls-verify=false"),
    "inspect": ("--tls-verify=false",),
    "list-tags": ("--tls-verify=false",),
    "delete": ("--tls-verify=false",),
}


# -- servers ---------------------------------------------------------------------------------
@contextmanager
def fresh_backend(name: str) -> Iterator[Backend]:
    """What the ``backend`` fixture gives, for any scope: SQLite, or a new PostgreSQL schema."""
    if name == "sqlite":
        yield Backend("sqlite", None, None)
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    asyncio.run(_pg_schema("create", schema))
    try:
        yield Backend("postgresql", POSTGRES_URL, schema)
    finally:
        asyncio.run(_pg_schema("drop", schema))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server per test module and backend, for tests that only add content under
    repository names of their own (starting a server costs about as much as such a test)."""
    with fresh_backend(request.param) as backend:
        proc = start_server(tmp_path_factory.mktemp("shared") / "data", backend_env(backend))
        try:
            yield proc
        finally:
            proc.stop()


# -- skopeo ---------------------------------------------------------------------------------
def docker_ref(server: ServerProcess, name: str) -> str:
    """``docker://HOST:PORT/name`` for skopeo (``name`` may end in ``:tag`` or ``@digest``)."""
    return f"docker://{server.host}/{name}"


def credentials(server: ServerProcess) -> tuple[str, str] | None:
    """``(username, password)`` to sign in to ``server`` with, or ``None`` (anonymous)."""
    username, password = getattr(server, "username", None), getattr(server, "password", None)
    return (username, password) if username and password else None


def _skopeo_auth_args(server: ServerProcess, command: str) -> list[str]:
    creds = credentials(server)
    if creds is None:
        return []
    value = f"{creds[0]}:{creds[1]}"
    if command in ("copy", "sync"):
        return [f"--src-creds={value}", f"--dest-creds={value}"]
    return [f"--creds={value}"]


def run_skopeo(
    server: ServerProcess, command: str, *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``skopeo COMMAND [TLS flags] [credentials] ARGS`` against ``server``.

    With ``check`` a failure raises with skopeo's stderr; otherwise the caller inspects
    ``returncode``. Policy checks are off: these are unsigned test images.
    """
    if not Path(SKOPEO).exists():
        pytest.fail("skopeo is not installed (Debian package 'skopeo'; `make test` installs it)")
    argv = [
        SKOPEO,
        "--insecure-policy",
        command,
        *_SKOPEO_TLS.get(command, ()),
        *_skopeo_auth_args(server, command),
        *args,
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


# -- HTTP -----------------------------------------------------------------------------------
def _http_options(server: ServerProcess) -> dict[str, Any]:
    """What every HTTP client of ``server`` needs: its address and (HTTP basic) credentials."""
    return {"base_url": server.url, "timeout": HTTP_TIMEOUT, "auth": credentials(server)}


def registry_client(server: ServerProcess, **kwargs: Any) -> httpx.Client:
    return httpx.Client(**{**_http_options(server), **kwargs})


def async_registry_client(server: ServerProcess, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(**{**_http_options(server), **kwargs})


def oras_registry(server: ServerProcess) -> Any:
    """An ``oras`` SDK client for ``server`` over plain HTTP.

    It signs in with HTTP basic on every challenged request: oras-py's token backend keeps
    the first token it gets (scoped ``pull`` by a HEAD) and retries a push with it after a
    401 instead of asking for a ``push`` scope, so its pushes fail on registries that
    answer an insufficient scope with 401, as the token spec says.
    """
    import oras.provider

    registry = oras.provider.Registry(hostname=server.host, insecure=True, auth_backend="basic")
    creds = credentials(server)
    if creds is not None:
        registry.auth.set_basic_auth(*creds)
    return registry


# -- pushing over HTTP ----------------------------------------------------------------------
def expect(response: httpx.Response, status: int) -> httpx.Response:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url} -> {response.status_code}, "
        f"expected {status}: {response.text[:500]}"
    )
    return response


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    """Monolithic upload (``POST ?digest=``); returns the digest."""
    digest = sha256(data)
    r = expect(client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data), 201)
    assert r.headers["docker-content-digest"] == digest
    return digest


def start_upload(client: httpx.Client, repo: str) -> str:
    """``POST`` an upload session; returns its location (a path)."""
    r = expect(client.post(f"/v2/{repo}/blobs/uploads/"), 202)
    return r.headers["location"]


def patch_chunk(client: httpx.Client, location: str, data: bytes, offset: int) -> int:
    """``PATCH`` one chunk at ``offset``; returns the size the upload now has."""
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{offset}-{offset + len(data) - 1}",
    }
    r = expect(client.patch(location, content=data, headers=headers), 202)
    end = int(r.headers["range"].split("-")[1])
    assert end == offset + len(data) - 1, r.headers["range"]
    return end + 1


def finish_upload(client: httpx.Client, location: str, digest: str, data: bytes = b"") -> None:
    r = expect(client.put(location, params={"digest": digest}, content=data), 201)
    assert r.headers["docker-content-digest"] == digest


def push_blob_chunked(client: httpx.Client, repo: str, data: bytes, chunk_size: int) -> str:
    """``POST``, one ``PATCH`` per chunk, then ``PUT ?digest=``; returns the digest."""
    digest = sha256(data)
    location, offset = start_upload(client, repo), 0
    while offset < len(data):
        offset = patch_chunk(client, location, data[offset : offset + chunk_size], offset)
    finish_upload(client, location, digest)
    return digest


def push_manifest(
    client: httpx.Client, repo: str, reference: str, manifest: bytes, media_type: str
) -> httpx.Response:
    r = expect(
        client.put(
            f"/v2/{repo}/manifests/{reference}", content=manifest, headers={"Content-Type": media_type}
        ),
        201,
    )
    assert r.headers["docker-content-digest"] == sha256(manifest)
    return r


def push_image(
    client: httpx.Client, repo: str, image: Image, tags: Sequence[str] = (), chunk_size: int | None = None
) -> str:
    """Push an image's blobs and manifest (by digest, then each tag); returns its digest."""
    for data in image.blobs.values():
        if chunk_size is None:
            push_blob(client, repo, data)
        else:
            push_blob_chunked(client, repo, data, chunk_size)
    media_type = "application/vnd.oci.image.manifest.v1+json"
    for reference in (image.digest, *tags):
        push_manifest(client, repo, reference, image.manifest, media_type)
    return image.digest


def pull_blob(client: httpx.Client, repo: str, digest: str) -> bytes:
    data = expect(client.get(f"/v2/{repo}/blobs/{digest}"), 200).content
    assert sha256(data) == digest, f"blob {digest} of {repo} came back as {sha256(data)}"
    return data


def pull_manifest(client: httpx.Client, repo: str, reference: str) -> httpx.Response:
    r = expect(client.get(f"/v2/{repo}/manifests/{reference}"), 200)
    assert r.headers["docker-content-digest"] == sha256(r.content)
    return r


def tags_of(client: httpx.Client, repo: str) -> list[str]:
    tags = expect(client.get(f"/v2/{repo}/tags/list"), 200).json()["tags"]
    assert isinstance(tags, list)
    return tags
