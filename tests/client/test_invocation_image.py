"""The invocation image: a real OCI image whose layer holds the CNAB layout /cnab/app/."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from moorage.client.invocation import (
    BaseImage,
    LayerDescriptor,
    PlatformInvalid,
    build_invocation_image,
    extract_app_files,
    layer_files,
    layer_tar,
    parse_platform,
)
from moorage.oci import mediatypes as mt
from moorage.oci.classify import IMAGE, classify
from moorage.oci.manifest import Platform, parse_manifest

APP_FILES = {
    "metadata.yml": b"name: hello\nversion: 0.1.0\n",
    "docker-compose.yml": b"services: {}\n",
    "parameters.yml": b"",
    "config/nginx.conf": b"server {}\n",
}


def members(layer: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_layer_holds_the_cnab_layout() -> None:
    files = layer_files(b'{"name":"hello"}', APP_FILES, "hello.dockerapp")
    assert sorted(files) == [
        "cnab/app/bundle.json",
        "cnab/app/hello.dockerapp/config/nginx.conf",
        "cnab/app/hello.dockerapp/docker-compose.yml",
        "cnab/app/hello.dockerapp/metadata.yml",
        "cnab/app/hello.dockerapp/parameters.yml",
    ]
    layer, diff_id = layer_tar(files | {"cnab/app/run": b"#!/bin/sh\n"})
    found = members(layer)
    assert list(found) == [
        "cnab",
        "cnab/app",
        "cnab/app/hello.dockerapp",
        "cnab/app/hello.dockerapp/config",
        "cnab/app/bundle.json",
        "cnab/app/hello.dockerapp/config/nginx.conf",
        "cnab/app/hello.dockerapp/docker-compose.yml",
        "cnab/app/hello.dockerapp/metadata.yml",
        "cnab/app/hello.dockerapp/parameters.yml",
        "cnab/app/run",
    ]
    assert all(found[d].isdir() and found[d].mode == 0o755 for d in ("cnab", "cnab/app"))
    assert found["cnab/app/bundle.json"].mode == 0o644
    assert found["cnab/app/run"].mode == 0o755
    assert {(m.uid, m.gid, m.mtime) for m in found.values()} == {(0, 0, 0)}
    assert diff_id == "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()


def test_files_outside_the_app_directory_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        layer_files(b"{}", {"../etc/passwd": b"x"}, "hello.dockerapp")


def test_layer_is_reproducible() -> None:
    files = layer_files(b"{}", APP_FILES, "hello.dockerapp")
    assert layer_tar(files) == layer_tar(dict(reversed(list(files.items()))))


def test_image_without_base() -> None:
    files = layer_files(b'{"name":"hello"}', APP_FILES, "hello.dockerapp")
    image = build_invocation_image(
        files, Platform("linux", "arm64", "v8"), labels={"org.opencontainers.image.title": "hello"}
    )
    manifest = json.loads(image.manifest)
    assert manifest["mediaType"] == mt.OCI_MANIFEST
    assert manifest["config"] == {
        "mediaType": mt.OCI_CONFIG,
        "digest": image.config_digest,
        "size": len(image.config),
    }
    assert manifest["layers"] == [
        {"mediaType": mt.OCI_LAYER_GZIP, "digest": image.layer_digest, "size": len(image.layer)}
    ]
    config = json.loads(image.config)
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm64", "v8")
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer_tar(files)[1]]}
    assert config["config"]["WorkingDir"] == "/cnab/app"
    assert config["config"]["Labels"] == {"org.opencontainers.image.title": "hello"}
    # The server types it as an image with its platform.
    classification = classify(parse_manifest(image.manifest, mt.OCI_MANIFEST), config)
    assert classification.kind == IMAGE
    assert classification.platform == Platform("linux", "arm64", "v8")
    assert extract_app_files(image.layer) == {k.removeprefix("cnab/app/"): v for k, v in files.items()}


def test_image_on_a_base() -> None:
    diff_ids = ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
    base_config: dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Entrypoint": ["/cnab/app/run"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "base 1"}, {"created_by": "base 2"}],
    }
    base = BaseImage(
        "r.example/base:1",
        (
            LayerDescriptor(mt.DOCKER_LAYER_GZIP, "sha256:" + "c" * 64, 10),
            LayerDescriptor(mt.OCI_LAYER_GZIP, "sha256:" + "d" * 64, 20),
        ),
        base_config,
    )
    assert base.platform == Platform("linux", "amd64")
    image = build_invocation_image(layer_files(b"{}", APP_FILES, None), Platform("linux", "amd64"), base)
    manifest = json.loads(image.manifest)
    assert [layer["mediaType"] for layer in manifest["layers"]] == [mt.OCI_LAYER_GZIP] * 3
    assert [layer["digest"] for layer in manifest["layers"]][:2] == [
        "sha256:" + "c" * 64,
        "sha256:" + "d" * 64,
    ]
    config = json.loads(image.config)
    assert config["config"] == {"Entrypoint": ["/cnab/app/run"], "Env": ["PATH=/bin"]}
    assert config["rootfs"]["diff_ids"][:2] == diff_ids
    assert len(config["rootfs"]["diff_ids"]) == 3
    assert [h["created_by"] for h in config["history"]][:2] == ["base 1", "base 2"]
    assert config["created"] == "2023-11-14T22:13:20Z"
    broken = BaseImage("r.example/base:1", base.layers[:1], base_config)
    with pytest.raises(ValueError, match="diff_ids"):
        build_invocation_image({}, Platform("linux", "amd64"), broken)


def test_extraction_skips_what_is_not_a_regular_file_under_cnab_app() -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in (
            ("cnab/app/ok.txt", b"ok"),
            ("./cnab/app/.env", b"x=1"),
            ("etc/passwd", b"no"),
            ("cnab/app/../../etc/shadow", b"no"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("cnab/app/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    assert extract_app_files(gzip.compress(raw.getvalue())) == {"ok.txt": b"ok", ".env": b"x=1"}


@pytest.mark.parametrize(
    ("text", "platform"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
        ("Windows/AMD64", Platform("windows", "amd64")),
    ],
)
def test_parse_platform(text: str, platform: Platform) -> None:
    assert parse_platform(text) == platform


@pytest.mark.parametrize("text", ["linux", "linux/", "linux/amd64/v8/x", "linux/am d64", ""])
def test_bad_platform(text: str) -> None:
    with pytest.raises(PlatformInvalid, match="OS/ARCHITECTURE"):
        parse_platform(text)
