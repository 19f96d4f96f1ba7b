"""skopeo against a real Moorage: copy in and out (OCI and Docker schema 2, single and
multi-platform), inspect, list-tags, delete, and copies between repositories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import ServerProcess, docker_ref, expect, pull_blob, registry_client, run_skopeo, tags_of
from .layouts import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    PLATFORMS,
    Layout,
    Platform,
    multi_platform_layout,
    sha256,
    single_platform_layout,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(shared_server: ServerProcess) -> ServerProcess:
    """Every test here works in repositories of its own, so they share a server per backend."""
    return shared_server


def inspect_raw(server: ServerProcess, name: str) -> bytes:
    return run_skopeo(server, "inspect", "--raw", docker_ref(server, name)).stdout.encode()


def choose(platform: Platform | None) -> list[str]:
    """skopeo's flags for picking ``platform``'s instance out of an index."""
    if platform is None:
        return []
    args = ["--override-os", platform.os, "--override-arch", platform.architecture]
    return [*args, "--override-variant", platform.variant] if platform.variant else args


def inspect(server: ServerProcess, name: str, platform: Platform | None = None, config: bool = False) -> dict:
    """``skopeo inspect`` (``--config``: the image's config) of the instance ``platform`` selects."""
    flags = ["--config"] if config else []
    result = run_skopeo(server, "inspect", *flags, *choose(platform), docker_ref(server, name))
    document = json.loads(result.stdout)
    assert isinstance(document, dict)
    return document


def test_layouts_are_reproducible(tmp_path: Path) -> None:
    """The same layout built twice has the same bytes, so digests are stable from run to run."""
    a, index_a = multi_platform_layout(tmp_path / "a", tag="m")
    b, index_b = multi_platform_layout(tmp_path / "b", tag="m")
    assert index_a == index_b
    assert sorted(p.name for p in (a.root / "blobs" / "sha256").iterdir()) == sorted(
        p.name for p in (b.root / "blobs" / "sha256").iterdir()
    )
    assert (a.root / "index.json").read_bytes() == (b.root / "index.json").read_bytes()
    _, other = multi_platform_layout(tmp_path / "c", tag="m", salt="different")
    assert other.digest != index_a.digest


def test_copy_single_platform_image_keeps_its_digest(server: ServerProcess, tmp_path: Path) -> None:
    layout, image = single_platform_layout(tmp_path / "in", tag="v1", layers=3)
    run_skopeo(server, "copy", f"oci:{layout.root}:v1", docker_ref(server, "lab/single:v1"))

    raw = inspect_raw(server, "lab/single:v1")
    assert raw == layout.blob(image.digest)
    assert sha256(raw) == image.digest
    info = inspect(server, "lab/single:v1")
    assert info["Digest"] == image.digest
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert info["RepoTags"] == ["v1"]
    assert info["Layers"] == [d for kind, d in layout.walk(image.digest) if kind == "layer"]

    with registry_client(server) as client:
        r = expect(client.get(f"/v2/lab/single/manifests/{image.digest}"), 200)
        assert r.headers["content-type"] == OCI_MANIFEST
        assert r.headers["docker-content-digest"] == image.digest
        assert r.content == raw
        for kind, digest in layout.walk(image.digest):
            if kind != "manifest":
                assert pull_blob(client, "lab/single", digest) == layout.blob(digest)


def test_multi_platform_index_round_trips_with_all(server: ServerProcess, tmp_path: Path) -> None:
    source, index = multi_platform_layout(tmp_path / "in", tag="multi")
    run_skopeo(server, "copy", "--all", f"oci:{source.root}:multi", docker_ref(server, "lab/multi:1.0"))

    raw = inspect_raw(server, "lab/multi:1.0")
    assert raw == source.blob(index.digest)
    assert json.loads(raw)["mediaType"] == OCI_INDEX

    # skopeo picks each platform's instance out of the index.
    children = {Platform(**m["platform"]): m["digest"] for m in json.loads(raw)["manifests"]}
    assert set(children) == set(PLATFORMS)
    for platform in PLATFORMS:
        info = inspect(server, "lab/multi:1.0", platform)
        assert (info["Os"], info["Architecture"]) == (platform.os, platform.architecture)
        assert info["Layers"] == [d for kind, d in source.walk(children[platform]) if kind == "layer"]
        config = inspect(server, "lab/multi:1.0", platform, config=True)
        assert (config["os"], config["architecture"]) == (platform.os, platform.architecture)
        assert config.get("variant") == platform.variant

    out = Layout(tmp_path / "out")
    run_skopeo(server, "copy", "--all", docker_ref(server, "lab/multi:1.0"), f"oci:{out.root}:back")
    assert out.resolve("back").digest == index.digest
    expected = list(source.walk(index.digest))
    assert list(out.walk(index.digest)) == expected
    assert len({d for _, d in expected}) == 11  # 1 index, 3 manifests, 3 configs, 4 distinct layers
    for _, digest in expected:
        assert out.blob(digest) == source.blob(digest)


def test_list_tags(server: ServerProcess, tmp_path: Path) -> None:
    first, _ = single_platform_layout(tmp_path / "a", tag="t")
    second, _ = single_platform_layout(tmp_path / "b", tag="t", salt="other")
    tags = ["v1", "latest", "1.0", "1.0.1-rc.1", "V2"]
    for tag in tags:
        run_skopeo(server, "copy", f"oci:{first.root}:t", docker_ref(server, f"lab/tags:{tag}"))
    run_skopeo(server, "copy", f"oci:{second.root}:t", docker_ref(server, "lab/tags:other"))

    listed = json.loads(run_skopeo(server, "list-tags", docker_ref(server, "lab/tags")).stdout)
    assert listed["Repository"] == f"{server.host}/lab/tags"
    # The distribution-spec lists tags in lexical (byte) order.
    assert listed["Tags"] == sorted([*tags, "other"])

    result = run_skopeo(server, "list-tags", docker_ref(server, "lab/nothing-here"), check=False)
    assert result.returncode != 0
    assert "404" in result.stderr
    with registry_client(server) as client:
        r = expect(client.get("/v2/lab/nothing-here/tags/list"), 404)
        assert r.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_delete_by_tag_deletes_the_manifest_and_every_tag_on_it(
    server: ServerProcess, tmp_path: Path
) -> None:
    """``skopeo delete repo:tag`` resolves the tag and sends ``DELETE /manifests/<digest>``.

    The distribution-spec deletes the manifest; its tags go with it (a tag cannot point at
    nothing). Other manifests in the repository stay. Deleting just a tag is a DELETE of
    ``/manifests/<tag>`` (OCI 1.1), which leaves the manifest.
    """
    layout_x, x = single_platform_layout(tmp_path / "x", tag="t")
    layout_y, y = single_platform_layout(tmp_path / "y", tag="t", salt="y")
    for tag in ("a", "b"):
        run_skopeo(server, "copy", f"oci:{layout_x.root}:t", docker_ref(server, f"lab/del:{tag}"))
    run_skopeo(server, "copy", f"oci:{layout_y.root}:t", docker_ref(server, "lab/del:c"))

    run_skopeo(server, "delete", docker_ref(server, "lab/del:a"))
    with registry_client(server) as client:
        r = expect(client.get(f"/v2/lab/del/manifests/{x.digest}"), 404)
        assert r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        expect(client.head("/v2/lab/del/manifests/b"), 404)
        assert tags_of(client, "lab/del") == ["c"]
    result = run_skopeo(server, "inspect", docker_ref(server, "lab/del:b"), check=False)
    assert result.returncode != 0
    assert "manifest unknown" in result.stderr.lower()
    assert inspect(server, "lab/del:c")["Digest"] == y.digest

    # By digest reference; a second delete of the same manifest is refused.
    run_skopeo(server, "delete", docker_ref(server, f"lab/del@{y.digest}"))
    assert json.loads(run_skopeo(server, "list-tags", docker_ref(server, "lab/del")).stdout)["Tags"] == []
    assert (
        run_skopeo(server, "delete", docker_ref(server, f"lab/del@{y.digest}"), check=False).returncode != 0
    )

    # Deleting a tag alone leaves the manifest and its other tags.
    for tag in ("a", "b"):
        run_skopeo(server, "copy", f"oci:{layout_x.root}:t", docker_ref(server, f"lab/del:{tag}"))
    with registry_client(server) as client:
        expect(client.delete("/v2/lab/del/manifests/a"), 202)
        expect(client.delete("/v2/lab/del/manifests/a"), 404)
        assert tags_of(client, "lab/del") == ["b"]
        expect(client.head(f"/v2/lab/del/manifests/{x.digest}"), 200)
    assert inspect(server, "lab/del:b")["Digest"] == x.digest


def test_docker_schema2_round_trip(server: ServerProcess, tmp_path: Path) -> None:
    """``--format v2s2`` converts the OCI image to Docker schema 2 on the way in; the
    registry keeps that manifest byte for byte, and the blobs are the layout's."""
    layout, image = single_platform_layout(tmp_path / "in", tag="v1")
    run_skopeo(
        server, "copy", "--format", "v2s2", f"oci:{layout.root}:v1", docker_ref(server, "lab/docker:v1")
    )

    raw = inspect_raw(server, "lab/docker:v1")
    manifest = json.loads(raw)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }
    oci = layout.json_blob(image.digest)
    assert manifest["config"]["digest"] == oci["config"]["digest"]
    assert [layer["digest"] for layer in manifest["layers"]] == [layer["digest"] for layer in oci["layers"]]
    assert inspect(server, "lab/docker:v1")["Digest"] == sha256(raw)

    with registry_client(server) as client:
        r = expect(client.get("/v2/lab/docker/manifests/v1"), 200)
        assert r.headers["content-type"] == DOCKER_MANIFEST
        assert r.content == raw

    # Out again into a dir: (which keeps manifests as they are), and registry to registry.
    out = tmp_path / "dir-out"
    run_skopeo(server, "copy", docker_ref(server, "lab/docker:v1"), f"dir:{out}")
    assert (out / "manifest.json").read_bytes() == raw
    for blob in [manifest["config"], *manifest["layers"]]:
        assert sha256((out / blob["digest"].split(":")[1]).read_bytes()) == blob["digest"]
    run_skopeo(server, "copy", docker_ref(server, "lab/docker:v1"), docker_ref(server, "lab/docker-copy:v1"))
    assert inspect_raw(server, "lab/docker-copy:v1") == raw

    # A multi-platform index becomes a Docker manifest list.
    source, _ = multi_platform_layout(tmp_path / "multi", tag="m")
    run_skopeo(
        server,
        "copy",
        "--all",
        "--format",
        "v2s2",
        f"oci:{source.root}:m",
        docker_ref(server, "lab/docker:list"),
    )
    listed = json.loads(inspect_raw(server, "lab/docker:list"))
    assert listed["mediaType"] == DOCKER_MANIFEST_LIST
    assert {Platform(**m["platform"]) for m in listed["manifests"]} == set(PLATFORMS)
    with registry_client(server) as client:
        for child in listed["manifests"]:
            assert child["mediaType"] == DOCKER_MANIFEST
            r = expect(client.get(f"/v2/lab/docker/manifests/{child['digest']}"), 200)
            assert r.headers["content-type"] == DOCKER_MANIFEST
            assert sha256(r.content) == child["digest"]
    info = inspect(server, "lab/docker:list", Platform("linux", "arm", "v7"))
    assert (info["Os"], info["Architecture"]) == ("linux", "arm")


def test_copy_between_repositories_mounts_blobs(server: ServerProcess, tmp_path: Path) -> None:
    """A registry-to-registry copy within Moorage mounts the layers instead of re-uploading them."""
    layout, image = single_platform_layout(tmp_path / "in", tag="v1", layers=3)
    run_skopeo(server, "copy", f"oci:{layout.root}:v1", docker_ref(server, "lab/source:v1"))
    result = run_skopeo(
        server, "copy", "--debug", docker_ref(server, "lab/source:v1"), docker_ref(server, "team/target:v1")
    )
    assert "mount OK" in result.stderr, result.stderr[-3000:]
    assert inspect_raw(server, "team/target:v1") == layout.blob(image.digest)

    layers = [d for kind, d in layout.walk(image.digest) if kind == "layer"]
    with registry_client(server) as client:
        for kind, digest in layout.walk(image.digest):
            if kind != "manifest":
                pull_blob(client, "team/target", digest)
        # The mount itself: 201 with the blob's location; from a repository without the
        # blob the registry falls back to an ordinary upload session (202).
        r = expect(
            client.post("/v2/team/third/blobs/uploads/", params={"mount": layers[0], "from": "lab/source"}),
            201,
        )
        assert r.headers["location"].endswith(f"/v2/team/third/blobs/{layers[0]}")
        assert r.headers["docker-content-digest"] == layers[0]
        pull_blob(client, "team/third", layers[0])
        r = expect(
            client.post("/v2/team/fourth/blobs/uploads/", params={"mount": layers[1], "from": "lab/none"}),
            202,
        )
        assert "/v2/team/fourth/blobs/uploads/" in r.headers["location"]
        expect(client.head(f"/v2/team/fourth/blobs/{layers[1]}"), 404)
