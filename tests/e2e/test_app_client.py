"""``moorage login`` and ``moorage app push|inspect|pull`` against a real ``moorage serve``:
service images pushed first with skopeo, a docker-app pushed on top, the bundle read back with
Moorage's CLI, skopeo and plain HTTP; the failures (an image that is not there, x509) leave no tag."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from moorage.cli.main import app as cli

from .conftest import ServerProcess, docker_ref, registry_client, run_skopeo, start_server
from .layouts import OCI_INDEX, OCI_MANIFEST, multi_platform_layout, sha256, single_platform_layout

pytestmark = pytest.mark.e2e

CNAB_CONFIG = "application/vnd.cnab.config.v1+json"
runner = CliRunner()


def moorage(*args: str, stdin: str | None = None) -> Result:
    return runner.invoke(cli, list(args), input=stdin)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def failed(result: Result) -> str:
    assert result.exit_code == 1, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    return result.stderr


def write_app(root: Path, host: str, web: str, worker: str) -> Path:
    app = root / "hello.dockerapp"
    app.mkdir(parents=True)
    (app / "metadata.yml").write_text(
        "name: hello\nversion: 0.1.0\ndescription: Hello from Moorage\n"
        "maintainers:\n  - name: Dev\n    email: dev@example.com\n"
    )
    (app / "docker-compose.yml").write_text(
        f'version: "3.6"\nservices:\n  web:\n    image: {host}/{web}\n    ports:\n      - ${{port}}:80\n'
        f"  worker:\n    image: {worker}\n"  # relative: resolved in the target registry
    )
    (app / "parameters.yml").write_text("port: 8080\n")
    (app / "static").mkdir()
    (app / "static" / "index.html").write_text("<h1>hello</h1>\n")
    return app


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


def test_push_inspect_pull_a_docker_app(server: ServerProcess, tmp_path: Path, docker_config: Path) -> None:
    host = server.host
    insecure = ["--insecure-registries", host]
    # Two service images, pushed with skopeo: one single-platform, one multi-arch.
    web_layout, web_image = single_platform_layout(tmp_path / "web", tag="1")
    worker_layout, worker_index = multi_platform_layout(tmp_path / "worker", tag="2")
    run_skopeo(server, "copy", f"oci:{web_layout.root}:1", docker_ref(server, "lab/web:1"))
    run_skopeo(server, "copy", "--all", f"oci:{worker_layout.root}:2", docker_ref(server, "lab/worker:2"))

    assert "Login Succeeded" in ok(
        moorage("login", host, "-u", "admin", "--password-stdin", *insecure, stdin=server.password + "\n")
    )
    assert host in json.loads((docker_config / "config.json").read_text())["auths"]

    app_dir = write_app(tmp_path, host, "lab/web:1", "lab/worker:2")
    target = f"{host}/lab/hello:0.1.0"
    out = ok(moorage("app", "push", str(app_dir), "--tag", target, "--platform", "linux/arm64", *insecure))
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert lines[0] == f"{target}-invoc"
    assert lines[1].startswith(f"Successfully pushed bundle to {target}. Digest is sha256:")
    digest = lines[1].removeprefix(f"Successfully pushed bundle to {target}. Digest is ").removesuffix(".")

    with registry_client(server) as http:
        assert sorted(http.get("/v2/lab/hello/tags/list").json()["tags"]) == ["0.1.0", "0.1.0-invoc"]
        r = http.get("/v2/lab/hello/manifests/0.1.0", headers={"Accept": OCI_INDEX})
        assert r.headers["content-type"] == OCI_INDEX
        assert r.headers["docker-content-digest"] == digest == sha256(r.content)
        index = r.json()
        invoc = http.head("/v2/lab/hello/manifests/0.1.0-invoc", headers={"Accept": OCI_MANIFEST})
        invocation_digest = invoc.headers["docker-content-digest"]

        assert index["annotations"]["org.opencontainers.artifactType"] == "application/vnd.cnab.manifest.v1"
        assert index["annotations"]["io.cnab.runtime_version"] == "v1.0.0"
        assert index["annotations"]["org.opencontainers.image.title"] == "hello"
        assert index["annotations"]["org.opencontainers.image.version"] == "0.1.0"
        assert index["annotations"]["org.opencontainers.image.description"] == "Hello from Moorage"
        assert json.loads(index["annotations"]["org.opencontainers.image.authors"]) == [
            {"name": "Dev", "email": "dev@example.com"}
        ]
        config_desc, invocation_desc, *components = index["manifests"]
        assert config_desc["annotations"] == {"io.cnab.manifest.type": "config"}
        assert config_desc["mediaType"] == OCI_MANIFEST
        assert invocation_desc == {
            "mediaType": OCI_MANIFEST,
            "digest": invocation_digest,
            "size": invocation_desc["size"],
            "annotations": {"io.cnab.manifest.type": "invocation"},
        }
        assert [(c["annotations"], c["digest"], c["mediaType"]) for c in components] == [
            (
                {"io.cnab.component.name": "web", "io.cnab.manifest.type": "component"},
                web_image.digest,
                OCI_MANIFEST,
            ),
            (
                {"io.cnab.component.name": "worker", "io.cnab.manifest.type": "component"},
                worker_index.digest,
                OCI_INDEX,
            ),
        ]
        # The components were mounted into lab/hello by digest, children of the multi-arch one too.
        for kind, child in worker_layout.walk(worker_index.digest):
            path = "manifests" if kind in ("index", "manifest") else "blobs"
            assert http.head(f"/v2/lab/hello/{path}/{child}").status_code == 200, (kind, child)

        # The config: the whole bundle.json, naming every digest the index holds.
        config_manifest = http.get(f"/v2/lab/hello/manifests/{config_desc['digest']}").json()
        assert config_manifest["config"]["mediaType"] == CNAB_CONFIG
        bundle = http.get(f"/v2/lab/hello/blobs/{config_manifest['config']['digest']}").json()
        assert bundle["invocationImages"][0]["image"] == f"{target}-invoc"
        assert bundle["invocationImages"][0]["contentDigest"] == invocation_digest
        assert {n: i["contentDigest"] for n, i in bundle["images"].items()} == {
            "web": web_image.digest,
            "worker": worker_index.digest,
        }
        assert bundle["images"]["worker"]["image"] == "lab/worker:2"

        # The repository lists TAG as an application and TAG-invoc as an invocation image.
        tags = http.get("/api/v1/repositories/lab/hello/tags")
        assert tags.status_code == 200, tags.text
        by_name = {t["name"]: t for t in tags.json()}
        assert by_name["0.1.0"]["type"] == "application"
        assert by_name["0.1.0-invoc"]["type"] == "invocation"
        assert by_name["0.1.0-invoc"]["platforms"][0]["architecture"] == "arm64"
        detail = http.get(f"/api/v1/repositories/lab/hello/manifests/{digest}").json()
        assert detail["bundle"]["invocationImages"][0]["tags"] == ["0.1.0-invoc"]
        assert {c["name"] for c in detail["bundle"]["components"]} == {"web", "worker"}

    # skopeo sees a real image for the platform asked for.
    info = json.loads(run_skopeo(server, "inspect", docker_ref(server, "lab/hello:0.1.0-invoc")).stdout)
    assert (info["Os"], info["Architecture"], info["Digest"]) == ("linux", "arm64", invocation_digest)

    # inspect
    inspected = json.loads(ok(moorage("app", "inspect", target, "--json", *insecure)))
    assert (inspected["name"], inspected["version"], inspected["digest"]) == ("hello", "0.1.0", digest)
    assert inspected["invocationImage"]["digest"] == invocation_digest
    assert inspected["invocationImage"]["tag"] == "0.1.0-invoc"
    assert [(c["name"], c["digest"], len(c["platforms"])) for c in inspected["components"]] == [
        ("web", web_image.digest, 1),
        ("worker", worker_index.digest, 3),
    ]
    text = ok(moorage("app", "inspect", target, *insecure))
    assert "Maintainers: Dev <dev@example.com>" in text
    assert f"{invocation_digest}  linux/arm64" in text

    # pull: the same digests come back; the app's files and the invocation image too.
    pulled_dir = tmp_path / "pulled"
    pulled = ok(moorage("app", "pull", target, "--out", str(pulled_dir), *insecure)).splitlines()
    assert pulled[0] == f"Pulled {target}. Digest is {digest}."
    assert json.loads((pulled_dir / "bundle.json").read_text()) == bundle
    for name in ("metadata.yml", "docker-compose.yml", "parameters.yml", "static/index.html"):
        assert (pulled_dir / "hello.dockerapp" / name).read_bytes() == (app_dir / name).read_bytes()
    layout = pulled_dir / "invocation-image"
    inspected_layout = subprocess.run(
        ["skopeo", "inspect", f"oci:{layout}:0.1.0-invoc"], capture_output=True, text=True, check=True
    )
    assert json.loads(inspected_layout.stdout)["Digest"] == invocation_digest


def test_unresolvable_component_fails_before_any_tag(
    server: ServerProcess, tmp_path: Path, docker_config: Path
) -> None:
    host = server.host
    ok(
        moorage(
            "login",
            host,
            "-u",
            "admin",
            "--password-stdin",
            "--insecure-registries",
            host,
            stdin=server.password,
        )
    )
    layout, _ = single_platform_layout(tmp_path / "web", tag="1")
    run_skopeo(server, "copy", f"oci:{layout.root}:1", docker_ref(server, "lab/web:1"))
    app_dir = write_app(tmp_path, host, "lab/web:1", "lab/missing:3")
    target = f"{host}/lab/broken:1"
    message = failed(moorage("app", "push", str(app_dir), "--tag", target, "--insecure-registries", host))
    assert message == (
        f'moorage: fixing up "{target}" for push: failed to resolve "{host}/lab/missing:3", push the image '
        f"to the registry before pushing the bundle: {host}/lab/missing:3: not found\n"
    )
    with registry_client(server) as http:
        assert http.get("/v2/lab/broken/tags/list").status_code == 404

    # Without credentials the message says how to sign in.
    (docker_config / "config.json").unlink()
    message = failed(moorage("app", "push", str(app_dir), "--tag", target, "--insecure-registries", host))
    assert f"moorage login {host}" in message


def test_x509_failures_and_trusted_tls(tmp_path: Path, docker_config: Path) -> None:
    tls = tmp_path / "tls"
    # A certificate for registry.example and 127.0.0.1: "localhost" is a name it does not cover.
    ok(moorage("certs", "generate", "--fqdn", "registry.example", "--ip", "127.0.0.1", "--out", str(tls)))
    env = {
        "MOORAGE_FQDN": "registry.example",
        "MOORAGE_TLS_CERT": str(tls / "server.crt"),
        "MOORAGE_TLS_KEY": str(tls / "server.key"),
        "MOORAGE_TLS_CA": str(tls / "ca.crt"),
    }
    server = start_server(tmp_path / "data", env, ca_cert=tls / "ca.crt")
    try:
        port = server.host.rsplit(":", 1)[1]
        host = f"127.0.0.1:{port}"
        bundle = tmp_path / "bundle.json"
        bundle.write_text(json.dumps({"schemaVersion": "v1.0.0", "name": "tls", "version": "1.0.0"}))

        message = failed(moorage("app", "push", str(bundle), "--tag", f"{host}/lab/tls:1"))
        assert message.startswith(f"moorage: x509: certificate of {host} signed by unknown authority.\n")
        assert f"https://{host}/ca" in message
        assert f"--insecure-registries {host}" in message

        message = failed(
            moorage("app", "inspect", f"localhost:{port}/lab/tls:1", "--ca-file", str(tls / "ca.crt"))
        )
        assert message.startswith(
            f"moorage: x509: the certificate of localhost:{port} is not valid for the name 'localhost'"
        )

        # Trusting the CA, everything works over HTTPS with token auth.
        ok(
            moorage(
                "login",
                host,
                "-u",
                "admin",
                "--password-stdin",
                "--ca-file",
                str(tls / "ca.crt"),
                stdin=server.password,
            )
        )
        out = ok(
            moorage(
                "app", "push", str(bundle), "--tag", f"{host}/lab/tls:1", "--ca-file", str(tls / "ca.crt")
            )
        )
        assert out.splitlines()[0] == f"{host}/lab/tls:1-invoc"
        # For testing, --insecure-registries skips the verification.
        out = ok(moorage("app", "inspect", f"{host}/lab/tls:1", "--insecure-registries", host, "--json"))
        assert json.loads(out)["components"] == []
    finally:
        server.stop()
