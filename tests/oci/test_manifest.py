"""Manifest parsing and validation (``moorage.oci.manifest``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.oci import mediatypes as mt
from moorage.oci.errors import ManifestInvalid
from moorage.oci.manifest import Descriptor, Platform, parse_descriptor, parse_manifest


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CONFIG = {"mediaType": mt.OCI_CONFIG, "digest": digest_of(b"config"), "size": 6}
LAYER = {"mediaType": mt.OCI_LAYER_GZIP, "digest": digest_of(b"layer"), "size": 5}
CHILD = {
    "mediaType": mt.OCI_MANIFEST,
    "digest": digest_of(b"child"),
    "size": 500,
    "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
}


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def image(**extra: Any) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": CONFIG, "layers": [LAYER], **extra}


def index(**extra: Any) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [CHILD], **extra}


def invalid(data: bytes, content_type: str | None = None) -> str:
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(data, content_type)
    assert info.value.code == "MANIFEST_INVALID"
    assert info.value.message.startswith("manifest invalid: ")
    return info.value.message


# -- the kinds of manifest ------------------------------------------------------------
def test_oci_image_manifest() -> None:
    m = parse_manifest(encode(image(annotations={"a": "b"})), mt.OCI_MANIFEST)
    assert m.media_type == mt.OCI_MANIFEST
    assert not m.is_index
    assert m.config == Descriptor(mt.OCI_CONFIG, CONFIG["digest"], 6)
    assert m.layers == (Descriptor(mt.OCI_LAYER_GZIP, LAYER["digest"], 5),)
    assert m.manifests == ()
    assert m.subject is None
    assert m.artifact_type is None
    assert m.effective_artifact_type is None
    assert m.annotations == {"a": "b"}
    assert m.blob_digests() == [CONFIG["digest"], LAYER["digest"]]


def test_oci_index() -> None:
    m = parse_manifest(encode(index()), mt.OCI_INDEX)
    assert m.is_index
    assert m.config is None
    assert m.layers == ()
    assert m.blob_digests() == []
    (child,) = m.manifests
    assert child.digest == CHILD["digest"]
    assert child.platform == Platform("linux", "arm64", "v8")
    assert str(child.platform) == "linux/arm64/v8"


def test_docker_schema2_manifest() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": {**CONFIG, "mediaType": mt.DOCKER_CONFIG},
        "layers": [{**LAYER, "mediaType": mt.DOCKER_LAYER_GZIP}],
    }
    m = parse_manifest(encode(doc), mt.DOCKER_MANIFEST)
    assert m.media_type == mt.DOCKER_MANIFEST
    assert m.effective_artifact_type is None
    assert m.layers[0].media_type == mt.DOCKER_LAYER_GZIP


def test_docker_manifest_needs_layers() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": {**CONFIG, "mediaType": mt.DOCKER_CONFIG},
    }
    assert "layers is required" in invalid(encode(doc), mt.DOCKER_MANIFEST)


def test_docker_manifest_list() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_LIST,
        "manifests": [{**CHILD, "mediaType": mt.DOCKER_MANIFEST}],
    }
    m = parse_manifest(encode(doc), mt.DOCKER_MANIFEST_LIST)
    assert m.is_index
    assert m.media_type == mt.DOCKER_MANIFEST_LIST
    assert m.manifests[0].media_type == mt.DOCKER_MANIFEST


def test_zero_layer_manifest() -> None:
    m = parse_manifest(encode(image(layers=[])), mt.OCI_MANIFEST)
    assert m.layers == ()
    assert m.blob_digests() == [CONFIG["digest"]]
    doc = image()
    del doc["layers"]
    assert parse_manifest(encode(doc), mt.OCI_MANIFEST).layers == ()


def test_empty_index() -> None:
    assert parse_manifest(encode(index(manifests=[])), mt.OCI_INDEX).manifests == ()


def test_artifact_manifest_with_artifact_type_and_subject() -> None:
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": digest_of(b"subject"), "size": 42}
    doc = image(
        artifactType="application/vnd.example.sbom.v1",
        config={"mediaType": mt.OCI_EMPTY, "digest": digest_of(b"{}"), "size": 2},
        subject=subject,
    )
    m = parse_manifest(encode(doc), mt.OCI_MANIFEST)
    assert m.artifact_type == "application/vnd.example.sbom.v1"
    assert m.effective_artifact_type == "application/vnd.example.sbom.v1"
    assert m.subject == Descriptor(mt.OCI_MANIFEST, subject["digest"], 42)


def test_effective_artifact_type_falls_back_to_config_type() -> None:
    doc = image(
        config={
            "mediaType": "application/vnd.cncf.helm.config.v1+json",
            "digest": CONFIG["digest"],
            "size": 6,
        }
    )
    m = parse_manifest(encode(doc), mt.OCI_MANIFEST)
    assert m.artifact_type is None
    assert m.effective_artifact_type == "application/vnd.cncf.helm.config.v1+json"


def test_index_with_artifact_type_and_subject() -> None:
    subject = {"mediaType": mt.OCI_INDEX, "digest": digest_of(b"s"), "size": 7}
    m = parse_manifest(encode(index(artifactType="application/vnd.example+type", subject=subject)), None)
    assert m.is_index
    assert m.artifact_type == "application/vnd.example+type"
    assert m.subject is not None
    assert m.subject.digest == subject["digest"]


def test_document_is_kept() -> None:
    doc = image(annotations={"org.opencontainers.image.title": "x"})
    assert parse_manifest(encode(doc), mt.OCI_MANIFEST).document == doc


# -- deciding the media type ---------------------------------------------------------------
def test_content_type_parameters_are_ignored() -> None:
    m = parse_manifest(encode(image()), f"{mt.OCI_MANIFEST}; charset=utf-8")
    assert m.media_type == mt.OCI_MANIFEST


def test_media_type_from_document_when_header_is_generic() -> None:
    for header in (None, "application/octet-stream", ""):
        assert parse_manifest(encode(index()), header).media_type == mt.OCI_INDEX


def test_media_type_from_header_when_document_has_none() -> None:
    doc = image()
    del doc["mediaType"]
    assert parse_manifest(encode(doc), mt.DOCKER_MANIFEST).media_type == mt.DOCKER_MANIFEST


def test_media_type_inferred_from_shape() -> None:
    doc_i, doc_m = index(), image()
    del doc_i["mediaType"], doc_m["mediaType"]
    assert parse_manifest(encode(doc_i), None).media_type == mt.OCI_INDEX
    assert parse_manifest(encode(doc_m), None).media_type == mt.OCI_MANIFEST


def test_header_and_document_media_types_must_agree() -> None:
    message = invalid(encode(image()), mt.OCI_INDEX)
    assert "does not match Content-Type" in message


def test_unknown_content_type_is_refused() -> None:
    assert "unsupported manifest media type" in invalid(encode(image(mediaType=None)), "text/plain")


@pytest.mark.parametrize("header", [None, "application/octet-stream", "application/json; charset=utf-8"])
def test_unknown_declared_media_type_is_refused(header: str | None) -> None:
    # Not silently stored as an OCI manifest whose document says otherwise.
    message = invalid(encode(image(mediaType="application/vnd.example.thing")), header)
    assert "unsupported manifest media type 'application/vnd.example.thing'" in message


def test_shapeless_document_is_refused() -> None:
    assert "cannot tell the manifest type" in invalid(b'{"schemaVersion": 2}', None)


def test_index_with_layers_is_refused() -> None:
    assert "an index has manifests" in invalid(encode(index(layers=[LAYER])), mt.OCI_INDEX)


def test_image_with_manifests_is_refused() -> None:
    assert "not manifests" in invalid(encode(image(manifests=[CHILD])), mt.OCI_MANIFEST)


# -- schema 1 ------------------------------------------------------------------------------
SCHEMA1 = {
    "schemaVersion": 1,
    "name": "library/hello",
    "tag": "latest",
    "architecture": "amd64",
    "fsLayers": [{"blobSum": digest_of(b"x")}],
    "history": [{"v1Compatibility": "{}"}],
}


@pytest.mark.parametrize(
    "content_type", [None, mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED, "application/json", mt.OCI_MANIFEST]
)
def test_schema1_is_refused_with_a_clear_message(content_type: str | None) -> None:
    message = invalid(encode(SCHEMA1), content_type)
    assert "schema 1" in message
    assert "not supported" in message


def test_schema1_content_type_is_refused_even_with_schema2_body() -> None:
    assert "schema 1" in invalid(encode(image(mediaType=None)), mt.DOCKER_SCHEMA1_SIGNED)


# -- malformed documents -------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"not json", b"\xff\xfe\x00", b'{"schemaVersion": 2,}', b"{'a': 1}"],
)
def test_malformed_json(data: bytes) -> None:
    assert "not valid JSON" in invalid(data, mt.OCI_MANIFEST)


@pytest.mark.parametrize("data", [b"[]", b"2", b'"manifest"', b"null", b"true"])
def test_non_object_json(data: bytes) -> None:
    assert "must be a JSON object" in invalid(data, mt.OCI_MANIFEST)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (image(schemaVersion=3), "schemaVersion must be 2"),
        (image(schemaVersion="2"), "schemaVersion must be 2"),
        ({"mediaType": mt.OCI_MANIFEST, "config": CONFIG}, "schemaVersion must be 2"),
        (image(mediaType=5), "mediaType must be a string"),
        (image(artifactType=7), "artifactType must be a string"),
        (image(annotations=["a"]), "annotations must be an object of strings"),
        (image(annotations={"a": 1}), "annotations must be an object of strings"),
        (image(config=None), "config must be a descriptor object"),
        (image(config="sha256:x"), "config must be a descriptor object"),
        (image(config={**CONFIG, "mediaType": ""}), "config.mediaType must be a non-empty string"),
        (image(config={**CONFIG, "mediaType": 3}), "config.mediaType must be a non-empty string"),
        (image(config={**CONFIG, "digest": 5}), "config.digest must be a string"),
        (image(config={**CONFIG, "digest": "sha256:abc"}), "config.digest: invalid sha256 digest"),
        (image(config={**CONFIG, "digest": "md5:" + "a" * 32}), "config.digest: digest algorithm 'md5'"),
        (image(config={**CONFIG, "size": -1}), "config.size must be a non-negative integer"),
        (image(config={**CONFIG, "size": "6"}), "config.size must be a non-negative integer"),
        (image(config={**CONFIG, "size": 6.5}), "config.size must be a non-negative integer"),
        (image(config={**CONFIG, "size": True}), "config.size must be a non-negative integer"),
        (image(config={k: v for k, v in CONFIG.items() if k != "size"}), "config.size"),
        (image(layers={"a": LAYER}), "layers must be an array"),
        (image(layers=[LAYER, 3]), "layers[1] must be a descriptor object"),
        (
            image(layers=[{**LAYER, "annotations": {"k": []}}]),
            "layers[0].annotations must be an object of strings",
        ),
        (image(layers=[{**LAYER, "artifactType": 1}]), "layers[0].artifactType must be a string"),
        (image(subject="sha256:x"), "subject must be a descriptor object"),
        (image(subject={**CONFIG, "digest": "nope"}), "subject.digest"),
        (index(manifests=None), "manifests is required"),
        (index(manifests="x"), "manifests must be an array"),
        (index(manifests=[{**CHILD, "platform": "linux"}]), "manifests[0].platform must be an object"),
        (index(manifests=[{**CHILD, "platform": {"os": "linux"}}]), "needs string os and architecture"),
    ],
)
def test_wrong_types_are_refused_precisely(document: dict[str, Any], reason: str) -> None:
    content_type = mt.OCI_INDEX if "manifests" in document else mt.OCI_MANIFEST
    if document.get("mediaType") is None or not isinstance(document.get("mediaType"), str):
        content_type = None
    message = invalid(encode(document), content_type)
    assert reason in message


def test_index_needs_manifests_even_without_declared_type() -> None:
    doc = index()
    del doc["manifests"]
    assert "manifests is required" in invalid(encode(doc), mt.OCI_INDEX)


# -- properties ------------------------------------------------------------------------
HEX = "0123456789abcdef"
token = st.from_regex(r"[a-z][a-z0-9.+-]{0,20}", fullmatch=True)
media_types = st.builds(lambda a, b: f"application/{a}.{b}", token, token)
digests = st.one_of(
    st.text(HEX, min_size=64, max_size=64).map(lambda e: f"sha256:{e}"),
    st.text(HEX, min_size=128, max_size=128).map(lambda e: f"sha512:{e}"),
)
annotation_maps = st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=4)
platforms = st.builds(Platform, token, token, st.one_of(st.none(), token), st.just(None))
descriptors = st.builds(
    Descriptor,
    media_type=media_types,
    digest=digests,
    size=st.integers(0, 2**53),
    platform=st.one_of(st.none(), platforms),
    artifact_type=st.one_of(st.none(), media_types),
    annotations=annotation_maps,
)


@given(descriptors)
def test_descriptor_round_trip(desc: Descriptor) -> None:
    assert parse_descriptor(desc.as_json(), "d") == desc
    # And through JSON bytes.
    assert parse_descriptor(json.loads(json.dumps(desc.as_json())), "d") == desc


@given(descriptors, st.lists(descriptors, max_size=5), st.one_of(st.none(), descriptors), annotation_maps)
def test_image_manifest_round_trip(
    config: Descriptor, layers: list[Descriptor], subject: Descriptor | None, annotations: dict[str, str]
) -> None:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": config.as_json(),
        "layers": [d.as_json() for d in layers],
    }
    if subject is not None:
        doc["subject"] = subject.as_json()
    if annotations:
        doc["annotations"] = annotations
    m = parse_manifest(encode(doc), mt.OCI_MANIFEST)
    assert m.config == config
    assert m.layers == tuple(layers)
    assert m.subject == subject
    assert m.annotations == annotations
    assert m.blob_digests() == [config.digest, *(d.digest for d in layers)]


@given(
    st.lists(descriptors, max_size=5),
    st.one_of(st.none(), media_types),
    st.sampled_from(sorted(mt.INDEX_MANIFESTS)),
)
def test_index_round_trip(children: list[Descriptor], artifact_type: str | None, media_type: str) -> None:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [d.as_json() for d in children],
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    m = parse_manifest(encode(doc), media_type)
    assert m.media_type == media_type
    assert m.manifests == tuple(children)
    assert m.artifact_type == artifact_type


@given(st.binary(max_size=300), st.one_of(st.none(), st.sampled_from(sorted(mt.MANIFEST_TYPES))))
def test_arbitrary_bytes_never_crash(data: bytes, content_type: str | None) -> None:
    try:
        parse_manifest(data, content_type)
    except ManifestInvalid as exc:
        message = exc.message
        assert message.startswith("manifest invalid: ")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "schemaVersion": json_values,
            "mediaType": json_values | st.sampled_from(sorted(mt.MANIFEST_TYPES)),
            "config": json_values,
            "layers": json_values,
            "manifests": json_values,
            "subject": json_values,
            "artifactType": json_values,
            "annotations": json_values,
        },
    )
)
def test_arbitrary_documents_are_parsed_or_refused_cleanly(document: dict[str, Any]) -> None:
    try:
        m = parse_manifest(encode(document), None)
    except ManifestInvalid:
        return
    assert m.media_type in mt.MANIFEST_TYPES
    assert document["schemaVersion"] == 2
