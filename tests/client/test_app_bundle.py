"""bundle.json from a docker-app or a file, and the cnab-to-oci documents built from it, read back
with Moorage's own server-side parser (``moorage.oci.cnab``) and classifier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from moorage.client import bundle as b
from moorage.client.dockerapp import AppInvalid, load_docker_app
from moorage.oci import cnab
from moorage.oci import mediatypes as mt
from moorage.oci.classify import APPLICATION, ARTIFACT, classify
from moorage.oci.digest import compute
from moorage.oci.manifest import parse_manifest

from .test_dockerapp import write_app

INVOC = b.Descriptor(mt.OCI_MANIFEST, "sha256:" + "1" * 64, 700)
WEB = b.Descriptor(mt.OCI_MANIFEST, "sha256:" + "2" * 64, 500)
WORKER = b.Descriptor(mt.OCI_INDEX, "sha256:" + "3" * 64, 900)


def docker_app_bundle(tmp_path: Path) -> dict[str, Any]:
    return b.docker_app_bundle(
        load_docker_app(write_app(tmp_path)), "registry.example.com/lab/hello:0.1.0-invoc"
    )


def test_docker_app_bundle(tmp_path: Path) -> None:
    bundle = docker_app_bundle(tmp_path)
    assert bundle["schemaVersion"] == "v1.0.0"
    assert (bundle["name"], bundle["version"], bundle["description"]) == (
        "hello",
        "0.1.0",
        "a hello world app",
    )
    assert bundle["maintainers"] == [
        {"name": "Jane Developer", "email": "jane@example.com"},
        {"name": "John Developer"},
    ]
    assert bundle["invocationImages"] == [
        {"imageType": "oci", "image": "registry.example.com/lab/hello:0.1.0-invoc"}
    ]
    assert bundle["images"] == {
        "web": {
            "image": "registry.example.com/lab/web:1.10",
            "description": "registry.example.com/lab/web:1.10",
        },
        "worker": {"image": "lab/worker:1", "description": "lab/worker:1"},
    }
    # The app's parameters, passed as docker_paramN in name order, next to docker-app's own.
    assert bundle["parameters"]["web.port"] == {
        "definition": "web.port",
        "destination": {"env": "docker_param2"},
    }
    assert bundle["definitions"]["web.port"] == {"default": "8080", "type": "string"}
    assert bundle["parameters"]["com.docker.app.orchestrator"]["definition"] == "com.docker.app.orchestrator"
    assert set(bundle["credentials"]) == {"com.docker.app.context", "com.docker.app.registry-creds"}
    assert set(bundle["actions"]) == {
        "com.docker.app.inspect",
        "com.docker.app.render",
        "io.cnab.status",
        "io.cnab.status+json",
    }


def test_canonical_json_is_sorted_and_compact() -> None:
    assert (
        b.canonical_json({"b": 1, "a": {"d": [1, 2], "c": "é"}}) == '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()
    )


def test_fixed_bundle_records_digests_sizes_media_types(tmp_path: Path) -> None:
    bundle = docker_app_bundle(tmp_path)
    fixed = b.fixed_bundle(bundle, INVOC, {"web": WEB, "worker": WORKER})
    assert fixed["images"]["web"] | {} == {
        "image": "registry.example.com/lab/web:1.10",
        "description": "registry.example.com/lab/web:1.10",
        "contentDigest": WEB.digest,
        "size": 500,
        "mediaType": mt.OCI_MANIFEST,
        "imageType": "oci",
    }
    assert fixed["images"]["worker"]["imageType"] == "oci"
    assert fixed["invocationImages"][0]["contentDigest"] == INVOC.digest
    assert "contentDigest" not in bundle["invocationImages"][0]  # the input is not changed


def test_index_layout_matches_cnab_to_oci(tmp_path: Path) -> None:
    bundle = b.fixed_bundle(docker_app_bundle(tmp_path), INVOC, {"web": WEB, "worker": WORKER})
    bundle["keywords"] = ["demo"]
    blob = b.canonical_json(bundle)
    config_manifest = b.config_manifest(blob)
    assert json.loads(config_manifest) == {
        "schemaVersion": 2,
        "config": {
            "mediaType": "application/vnd.cnab.config.v1+json",
            "digest": str(compute(blob)),
            "size": len(blob),
        },
        "layers": [],
    }
    config = b.Descriptor(mt.OCI_MANIFEST, str(compute(config_manifest)), len(config_manifest))
    index = json.loads(b.bundle_index(bundle, config, INVOC, {"worker": WORKER, "web": WEB}))
    assert list(index) == ["schemaVersion", "manifests", "annotations"]  # no mediaType, as cnab-to-oci
    assert index["annotations"] == {
        "io.cnab.keywords": '["demo"]',
        "io.cnab.runtime_version": "v1.0.0",
        "org.opencontainers.artifactType": "application/vnd.cnab.manifest.v1",
        "org.opencontainers.image.authors": '[{"name":"Jane Developer","email":"jane@example.com"},'
        '{"name":"John Developer"}]',
        "org.opencontainers.image.description": "a hello world app",
        "org.opencontainers.image.title": "hello",
        "org.opencontainers.image.version": "0.1.0",
    }
    assert index["manifests"] == [
        {
            "mediaType": mt.OCI_MANIFEST,
            "digest": config.digest,
            "size": config.size,
            "annotations": {"io.cnab.manifest.type": "config"},
        },
        {
            "mediaType": mt.OCI_MANIFEST,
            "digest": INVOC.digest,
            "size": 700,
            "annotations": {"io.cnab.manifest.type": "invocation"},
        },
        {
            "mediaType": mt.OCI_MANIFEST,
            "digest": WEB.digest,
            "size": 500,
            "annotations": {"io.cnab.component.name": "web", "io.cnab.manifest.type": "component"},
        },
        {
            "mediaType": mt.OCI_INDEX,
            "digest": WORKER.digest,
            "size": 900,
            "annotations": {"io.cnab.component.name": "worker", "io.cnab.manifest.type": "component"},
        },
    ]


def test_the_server_side_parser_reads_what_the_client_writes(tmp_path: Path) -> None:
    bundle = b.fixed_bundle(docker_app_bundle(tmp_path), INVOC, {"web": WEB, "worker": WORKER})
    blob = b.canonical_json(bundle)
    config_manifest = b.config_manifest(blob)
    config = b.Descriptor(mt.OCI_MANIFEST, str(compute(config_manifest)), len(config_manifest))
    for docker_list, media_type in ((False, mt.OCI_INDEX), (True, mt.DOCKER_MANIFEST_LIST)):
        raw = b.bundle_index(
            bundle, config, INVOC, {"web": WEB, "worker": WORKER}, docker_manifest_list=docker_list
        )
        index = parse_manifest(raw, media_type)
        classification = classify(index, None)
        assert classification.kind == APPLICATION
        assert classification.bundle is not None
        parsed = cnab.build_bundle(classification.bundle, blob)
        assert parsed.layout == cnab.LAYOUT_BUNDLE_JSON
        assert (parsed.name, parsed.version) == ("hello", "0.1.0")
        assert parsed.invocation_digests == (INVOC.digest,)
        assert parsed.component_digests == (WEB.digest, WORKER.digest)
        assert [c.original_reference for c in parsed.components] == [
            "registry.example.com/lab/web:1.10",
            "lab/worker:1",
        ]
    # The config manifest is typed as the bundle's config, in each fallback form.
    for manifest, media_type in b.config_manifest_candidates(blob):
        parsed_manifest = parse_manifest(manifest, media_type)
        assert cnab.is_bundle_config_manifest(parsed_manifest, json.loads(blob))
        assert classify(parsed_manifest, json.loads(blob)).kind == ARTIFACT


def test_docker_manifest_list_fallback_puts_media_type_last(tmp_path: Path) -> None:
    bundle = b.fixed_bundle(docker_app_bundle(tmp_path), INVOC, {})
    bundle["images"] = {}
    raw = b.bundle_index(bundle, WEB, INVOC, {}, docker_manifest_list=True)
    assert list(json.loads(raw)) == ["schemaVersion", "manifests", "annotations", "mediaType"]
    assert json.loads(raw)["mediaType"] == mt.DOCKER_MANIFEST_LIST


def test_docker_config_fallback_repeats_the_config_as_its_layer() -> None:
    blob = b'{"name":"x"}'
    manifest = json.loads(b.docker_config_manifest(blob))
    assert manifest["mediaType"] == mt.DOCKER_MANIFEST
    assert manifest["layers"] == [manifest["config"]]
    assert manifest["config"]["mediaType"] == mt.DOCKER_CONFIG


def test_bundle_file(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    document = {
        "schemaVersion": "v1.0.0",
        "name": "hello",
        "version": "1.0.0",
        "invocationImages": [{"imageType": "docker", "image": "old/invoc:1", "labels": {"a": "b"}}],
        "images": {"web": {"image": "lab/web:1", "imageType": "docker"}},
    }
    path.write_text(json.dumps(document, indent=2))
    loaded = b.load_bundle_file(path)
    assert loaded == document
    replaced = b.with_invocation_image(loaded, "r.example/lab/app:1-invoc")
    assert replaced["invocationImages"] == [
        {"imageType": "oci", "image": "r.example/lab/app:1-invoc", "labels": {"a": "b"}}
    ]
    assert b.component_images(replaced) == {"web": {"image": "lab/web:1", "imageType": "docker"}}
    fixed = b.fixed_bundle(replaced, None, {"web": WEB})
    assert fixed["images"]["web"]["imageType"] == "docker"  # a bundle's own imageType is kept


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{\n  "name": "x",\n  "version": 1,,\n}', ":3:16: invalid JSON"),
        ("[1]", ": a bundle must be a JSON object"),
        ('{"name": "x"}', ": version must be a non-empty string"),
        ('{"name": "x", "version": "1", "images": []}', ": images must be an object"),
        ('{"name": "x", "version": "1", "images": {"web": {"image": 3}}}', ": images.web.image must be"),
        ('{"name": "x", "version": "1", "invocationImages": [{}, {}]}', "at most one image"),
        (
            '{"name": "x", "version": "1", "images": {"w": {"image": "a", "mediaType": "text/plain"}}}',
            "is not a manifest type",
        ),
    ],
)
def test_bad_bundle_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(text)
    with pytest.raises(AppInvalid) as info:
        b.load_bundle_file(path)
    assert info.value.message.startswith(str(path))
    assert message in info.value.message
