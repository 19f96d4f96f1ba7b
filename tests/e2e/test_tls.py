"""HTTPS end to end: a registry serving the certificate ``moorage certs generate`` made for
``localhost`` and 127.0.0.1, skopeo trusting its CA (fetched from ``/ca``) through
``--cert-dir``, and who may push and pull what over it."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import ADMIN_PASSWORD, make_settings
from moorage.services.access import Principal
from moorage.services.container import Services, build_services

from .conftest import SKOPEO, Backend, ServerProcess, backend_env, start_server
from .layouts import Layout, single_platform_layout

pytestmark = pytest.mark.e2e

PASSWORDS = {"admin": ADMIN_PASSWORD, "alice": "alice-password-1", "bob": "bob-password-1"}


@dataclass
class TlsRegistry:
    server: ServerProcess
    backend: Backend
    port: int
    cert_dir: Path  # holds only ca.crt, as skopeo's --cert-dir wants
    layout: Layout
    digest: str

    def ref(self, name: str, host: str = "localhost") -> str:
        return f"docker://{host}:{self.port}/{name}"


def moorage(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "moorage", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    assert result.returncode == 0, f"moorage {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SKOPEO, "--insecure-policy", *args], capture_output=True, text=True, check=False, timeout=120
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{' '.join(result.args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, f"{' '.join(result.args)} succeeded:\n{result.stdout}"
    return result.stderr


def start(tmp_path: Path, backend: Backend, server: str = "uvicorn") -> tuple[ServerProcess, Path, int]:
    tls = tmp_path / "tls"
    moorage("certs", "generate", "--fqdn", "localhost", "--ip", "127.0.0.1", "--out", str(tls))
    env = {
        **backend_env(backend),
        "MOORAGE_SERVER": server,
        "MOORAGE_FQDN": "localhost",
        "MOORAGE_TLS_CERT": str(tls / "server.crt"),
        "MOORAGE_TLS_KEY": str(tls / "server.key"),
        "MOORAGE_TLS_CA": str(tls / "ca.crt"),
    }
    process = start_server(tmp_path / "data", env, ca_cert=tls / "ca.crt")
    return process, tls, int(process.host.rsplit(":", 1)[1])


def fetch_ca(url: str, into: Path) -> bytes:
    """What an operator does once: fetch ``/ca`` without verifying, then trust it."""
    response = httpx.get(f"{url}/ca", verify=False)  # noqa: S501 - trust on first use, as the docs describe
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-pem-file"
    into.mkdir()
    (into / "ca.crt").write_bytes(response.content)
    return response.content


@pytest.fixture
def registry(tmp_path: Path, backend: Backend) -> Iterator[TlsRegistry]:
    process, tls, port = start(tmp_path, backend)
    try:
        assert fetch_ca(process.url, tmp_path / "certs") == (tls / "ca.crt").read_bytes()
        layout, image = single_platform_layout(tmp_path / "layout", tag="v1")
        yield TlsRegistry(process, backend, port, tmp_path / "certs", layout, image.digest)
    finally:
        process.stop()


def push(reg: TlsRegistry, name: str, user: str | None) -> subprocess.CompletedProcess[str]:
    creds = [f"--dest-creds={user}:{PASSWORDS[user]}"] if user else ["--dest-no-creds"]
    return skopeo(
        "copy", "--dest-cert-dir", str(reg.cert_dir), *creds, f"oci:{reg.layout.root}:v1", reg.ref(name)
    )


def inspect(
    reg: TlsRegistry, name: str, user: str | None, host: str = "localhost"
) -> subprocess.CompletedProcess[str]:
    creds = [f"--creds={user}:{PASSWORDS[user]}"] if user else ["--no-creds"]
    return skopeo("inspect", "--cert-dir", str(reg.cert_dir), *creds, reg.ref(name, host))


def test_push_and_pull_over_https_trusting_the_generated_ca(registry: TlsRegistry) -> None:
    ok(push(registry, "admin/tls-words:v1", "admin"))
    info = json.loads(ok(inspect(registry, "admin/tls-words:v1", "admin")))
    assert info["Digest"] == registry.digest
    # The address is in the certificate too.
    assert (
        json.loads(ok(inspect(registry, "admin/tls-words:v1", "admin", "127.0.0.1")))["Digest"]
        == registry.digest
    )


def test_without_the_ca_skopeo_fails_with_an_x509_error(registry: TlsRegistry, tmp_path: Path) -> None:
    ok(push(registry, "admin/tls-words:v1", "admin"))
    empty = tmp_path / "no-ca"
    empty.mkdir()
    creds = f"--creds=admin:{ADMIN_PASSWORD}"
    for args in ([], ["--cert-dir", str(empty)]):
        stderr = refused(skopeo("inspect", *args, creds, registry.ref("admin/tls-words:v1")))
        assert "x509: certificate signed by unknown authority" in stderr, stderr
    # For testing only: not verifying works (and is what the docs call insecure).
    ok(skopeo("inspect", "--tls-verify=false", creds, registry.ref("admin/tls-words:v1")))


def as_admin(reg: TlsRegistry, action: Callable[[Services, Principal], Awaitable[None]]) -> None:
    """Run ``action`` through the services, on the registry's own database, as ``admin``."""

    async def run() -> None:
        components = build_services(make_settings(reg.server.data_dir, reg.backend))
        try:
            admin = await components.authn.principal("admin")
            assert admin is not None
            await action(components, admin)
        finally:
            await components.db.close()

    asyncio.run(run())


def test_who_may_push_and_pull_over_https(registry: TlsRegistry) -> None:
    for user in ("alice", "bob"):
        out = moorage(
            "admin", "create-user", user, "--password-stdin", "--data-dir", str(registry.server.data_dir),
            env=backend_env(registry.backend), stdin=PASSWORDS[user] + "\n",
        )  # fmt: skip
        assert f"Created user {user!r}" in out

    async def organization(c: Services, admin: Principal) -> None:
        await c.accounts.create_organization(admin, "lab")
        await c.accounts.create_team(admin, "lab", "readers", "pull only")
        await c.accounts.add_team_member(admin, "lab", "readers", "alice")

    async def grant(c: Services, admin: Principal) -> None:
        await c.accounts.grant_repository(admin, "lab", "readers", "lab/words", "read-only")

    as_admin(registry, organization)
    ok(push(registry, "lab/words:v1", "admin"))  # created by its first push; private
    as_admin(registry, grant)
    ok(push(registry, "bob/private:v1", "bob"))  # bob's own namespace

    # alice reads lab/words through her team, but may not push to it.
    assert json.loads(ok(inspect(registry, "lab/words:v1", "alice")))["Digest"] == registry.digest
    stderr = refused(push(registry, "lab/words:v2", "alice"))
    assert "denied: 'alice' may not" in stderr, stderr
    # alice cannot pull bob's private repository, nor can anonymous callers.
    stderr = refused(inspect(registry, "bob/private:v1", "alice"))
    assert "denied: 'alice' may not pull repository 'bob/private'" in stderr, stderr
    assert "unauthorized" in refused(inspect(registry, "bob/private:v1", None))
    # Anonymous pushes are refused.
    assert "unauthorized: authentication required" in refused(push(registry, "lab/words:v3", None))

    # The statuses behind those refusals are the spec's, and the refused pushes left nothing.
    context = ssl.create_default_context(cafile=str(registry.cert_dir / "ca.crt"))
    url = registry.server.url
    with httpx.Client(base_url=url, verify=context, auth=("admin", ADMIN_PASSWORD)) as admin_client:
        assert admin_client.get("/v2/lab/words/tags/list").json()["tags"] == ["v1"]
    with httpx.Client(base_url=url, verify=context) as anonymous:
        assert anonymous.post("/v2/lab/words/blobs/uploads/").status_code == 401
        assert anonymous.get("/v2/bob/private/manifests/v1").status_code == 401
    with httpx.Client(base_url=url, verify=context, auth=("alice", PASSWORDS["alice"])) as alice:
        assert alice.get("/v2/lab/words/manifests/v1").status_code == 200
        for response in (
            alice.post("/v2/lab/words/blobs/uploads/"),
            alice.get("/v2/bob/private/manifests/v1"),
        ):
            assert response.status_code == 403
            assert response.json()["errors"][0]["code"] == "DENIED"


@pytest.mark.parametrize("server", ["granian"])
def test_granian_serves_https_too(tmp_path: Path, backend: Backend, server: str) -> None:
    if backend.name != "sqlite":
        pytest.skip("the server choice does not depend on the database")
    process, _tls, port = start(tmp_path, backend, server)
    try:
        fetch_ca(process.url, tmp_path / "certs")
        layout, image = single_platform_layout(tmp_path / "layout", tag="v1")
        ok(
            skopeo(
                "copy",
                "--dest-cert-dir",
                str(tmp_path / "certs"),
                f"--dest-creds=admin:{ADMIN_PASSWORD}",
                f"oci:{layout.root}:v1",
                f"docker://localhost:{port}/admin/g:v1",
            )
        )
        info = json.loads(
            ok(
                skopeo(
                    "inspect",
                    "--cert-dir",
                    str(tmp_path / "certs"),
                    f"--creds=admin:{ADMIN_PASSWORD}",
                    f"docker://localhost:{port}/admin/g:v1",
                )
            )
        )
        assert info["Digest"] == image.digest
    finally:
        process.stop()


def test_serve_refuses_a_certificate_for_another_name(tmp_path: Path, backend: Backend) -> None:
    if backend.name != "sqlite":
        pytest.skip("the check runs before the database is opened")
    tls = tmp_path / "tls"
    moorage("certs", "generate", "--fqdn", "localhost", "--ip", "127.0.0.1", "--out", str(tls))
    result = subprocess.run(
        [sys.executable, "-m", "moorage", "serve", "--data-dir", str(tmp_path / "data"), "--port", "0",
         "--fqdn", "registry.example.com", "--tls-cert", str(tls / "server.crt"),
         "--tls-key", str(tls / "server.key"), "--tls-ca", str(tls / "ca.crt")],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "x509: certificate is valid for localhost, not registry.example.com" in result.stderr
    assert "moorage certs generate --fqdn registry.example.com" in result.stderr
    assert not (tmp_path / "data").exists()
