"""CNAB bundle indexes and bundle configs (``moorage.oci.cnab``), in both cnab-to-oci layouts."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from fixtures_cnab import (
    Built,
    CnabFixture,
    bundle_json_bundle,
    canonical,
    digest_of,
    docker_app_bundle,
    docker_plugin,
    image,
    multi_arch,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.oci import cnab
from moorage.oci import mediatypes as mt
from moorage.oci.errors import ManifestInvalid
from moorage.oci.manifest import Platform

LAYOUTS = {"bundle-json": bundle_json_bundle, "docker-app-2019": docker_app_bundle}
FALLBACKS = ("cnab", "cnab-spec", "oci", "docker")


def load(fx: CnabFixture) -> cnab.Bundle:
    index = cnab.parse_bundle_index(fx.index.manifest)
    blob_desc = cnab.config_blob_descriptor(fx.config_manifest.manifest)
    assert blob_desc.digest == digest_of(fx.config_blob)
    return cnab.build_bundle(index, fx.config_blob)


def invalid(fx: CnabFixture, match: str, config: bytes | None = None) -> ManifestInvalid:
    def read() -> cnab.Bundle:
        index = cnab.parse_bundle_index(fx.index.manifest)
        return cnab.build_bundle(index, fx.config_blob if config is None else config)

    with pytest.raises(ManifestInvalid, match=match) as info:
        read()
    assert info.value.code == "MANIFEST_INVALID"
    return info.value


def edited_bundle(fx: CnabFixture, edit: Any) -> bytes:
    doc = copy.deepcopy(fx.bundle_config)
    edit(doc)
    return canonical(doc)


# --------------------------------------------------------------------------- both layouts parse


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("fallback", FALLBACKS)
@pytest.mark.parametrize("docker_list", [False, True], ids=["oci-index", "docker-list"])
def test_every_layout_and_fallback_reads(layout: str, fallback: str, docker_list: bool) -> None:
    fx = LAYOUTS[layout](config_fallback=fallback, docker_list=docker_list)
    manifest = fx.index.manifest
    assert manifest.media_type == (mt.DOCKER_MANIFEST_LIST if docker_list else mt.OCI_INDEX)
    assert cnab.is_bundle_index(manifest)
    index = cnab.parse_bundle_index(manifest)
    assert index.layout == layout
    assert index.config.digest == fx.config_manifest.digest
    assert index.invocation.digest == fx.invocation.digest
    assert index.component_digests == tuple(fx.components[n].digest for n in index.components)
    assert set(index.components) == set(fx.components)
    assert cnab.is_bundle_config_manifest(fx.config_manifest.manifest, fx.config_manifest.config)
    bundle = load(fx)
    assert bundle.layout == layout
    assert bundle.invocation_digests == (fx.invocation.digest,)
    assert sorted(bundle.component_digests) == sorted(b.digest for b in fx.components.values())


def test_bundle_json_layout_model() -> None:
    fx = bundle_json_bundle()
    b = load(fx)
    assert (b.name, b.version, b.description, b.schema_version) == (
        "my-app",
        "0.1.0",
        "description",
        "v1.0.0",
    )
    assert b.keywords == ("keyword1", "keyword2")
    assert b.maintainers == (cnab.Maintainer("docker", "docker@docker.com", "docker.com"),)
    (inv,) = b.invocation_images
    assert (inv.role, inv.name) == ("invocation", None)
    assert inv.original_reference == "my.registry/namespace/my-app-invoc"
    assert (inv.media_type, inv.image_type) == (mt.DOCKER_MANIFEST, "docker")
    assert inv.size == len(fx.invocation.content)
    assert [c.name for c in b.components] == ["another-image", "image-1"]
    another, image_1 = b.components
    assert another.original_reference == "my.registry/namespace/another-image"
    assert another.description == "a service"
    assert image_1.media_type == mt.OCI_INDEX
    assert image_1.digest == fx.components["image-1"].digest
    p1, p2 = b.parameters
    assert (p1.name, p1.definition, p1.type, p1.default) == (
        "param1",
        "param1Type",
        "string|boolean|number",
        "hello",
    )
    assert (p1.env, p1.path, p1.required) == ("env_var", "/some/path", False)
    assert (p2.name, p2.type, p2.default, p2.required, p2.env, p2.path) == (
        "param2",
        "number",
        0.5,
        True,
        "PARM2",
        None,
    )
    assert b.credentials == (cnab.Credential("cred-1", "env-var", "/some/path"),)
    assert b.actions == ("action-1",)
    assert b.document["custom"] == {"my-key": "my-value"}


def test_docker_app_2019_layout_model() -> None:
    fx = docker_app_bundle()
    b = load(fx)
    assert (b.name, b.version, b.description) == ("hello-world", "0.1.0", "Hello, World!")
    assert b.schema_version == "v1.0.0-WD"
    assert b.maintainers == (cnab.Maintainer("dev", "dev@example.com"),)
    assert b.keywords == ()
    (inv,) = b.invocation_images
    assert (inv.digest, inv.original_reference) == (fx.invocation.digest, None)
    by_name = {c.name: c for c in b.components}
    assert by_name["api"].original_reference == "python:3.6"
    assert by_name["web"].original_reference == "nginx:1.17"
    assert by_name["web"].media_type == mt.DOCKER_MANIFEST_LIST
    orchestrator = next(p for p in b.parameters if p.name == "com.docker.app.orchestrator")
    assert orchestrator.type == "string"
    assert orchestrator.description == "Orchestrator on which to deploy"
    assert orchestrator.env == "DOCKER_STACK_ORCHESTRATOR"
    assert orchestrator.apply_to == ("install", "upgrade", "uninstall")
    assert [c.name for c in b.credentials] == ["com.docker.app.registry-creds", "docker.context"]
    assert b.credentials[0].path == "/cnab/app/registry-creds.json"
    assert b.actions == ("com.docker.app.inspect", "com.docker.app.render", "com.docker.app.status")


def test_parse_bundle_config_tells_the_layouts_apart() -> None:
    assert cnab.parse_bundle_config(bundle_json_bundle().config_blob).layout == cnab.LAYOUT_BUNDLE_JSON
    assert cnab.parse_bundle_config(docker_app_bundle().config_blob).layout == cnab.LAYOUT_DOCKER_APP_2019
    assert cnab.parse_bundle_config({"schema_version": "v1.0.0-WD"}).layout == cnab.LAYOUT_DOCKER_APP_2019


def test_component_platforms_from_bundle_json_and_descriptor() -> None:
    fx = bundle_json_bundle()

    def add_platform(doc: dict[str, Any]) -> None:
        doc["images"]["another-image"]["platform"] = {"os": "linux", "architecture": "amd64"}

    b = cnab.build_bundle(cnab.parse_bundle_index(fx.index.manifest), edited_bundle(fx, add_platform))
    assert b.components[0].platforms == (Platform("linux", "amd64"),)


def test_bundle_without_component_digests_is_accepted() -> None:
    fx = bundle_json_bundle()

    def drop(doc: dict[str, Any]) -> None:
        for img in [*doc["images"].values(), *doc["invocationImages"]]:
            del img["contentDigest"]

    b = cnab.build_bundle(cnab.parse_bundle_index(fx.index.manifest), edited_bundle(fx, drop))
    assert b.invocation_digests == (fx.invocation.digest,)


def test_looks_like_bundle_config() -> None:
    assert cnab.looks_like_bundle_config(bundle_json_bundle().bundle_config)
    assert cnab.looks_like_bundle_config(docker_app_bundle().bundle_config)
    assert not cnab.looks_like_bundle_config(image().config or {})
    assert not cnab.looks_like_bundle_config({"schema_version": "v1", "rootfs": {}})
    assert not cnab.is_bundle_config_manifest(image().manifest, image().config)
    assert not cnab.is_bundle_config_manifest(multi_arch().manifest, None)


# --------------------------------------------------------------------------- bad indexes


def _index_with(fx: CnabFixture, edit: Any) -> CnabFixture:
    doc = fx.index_document()
    edit(doc)
    return fx.with_index(doc)


def test_no_config_descriptor() -> None:
    fx = _index_with(bundle_json_bundle(), lambda d: d["manifests"].pop(0))
    invalid(fx, "no config descriptor")


def test_two_invocation_images() -> None:
    def add(doc: dict[str, Any]) -> None:
        extra = image(docker=True, seed="second invocation").ref(
            annotations={cnab.ANN_MANIFEST_TYPE: "invocation"}
        )
        doc["manifests"].insert(2, extra)

    invalid(_index_with(bundle_json_bundle(), add), "2 invocation images; exactly one")
    invalid(_index_with(docker_app_bundle(docker_list=True), add), "2 invocation images; exactly one")


def test_no_invocation_image() -> None:
    invalid(_index_with(bundle_json_bundle(), lambda d: d["manifests"].pop(1)), "0 invocation images")


def test_two_config_descriptors() -> None:
    invalid(
        _index_with(bundle_json_bundle(), lambda d: d["manifests"].append(copy.deepcopy(d["manifests"][0]))),
        "2 config descriptors",
    )


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda d: d["manifests"][2]["annotations"].pop(cnab.ANN_COMPONENT_NAME),
            "without an io.cnab.component.name",
        ),
        (
            lambda d: d["manifests"][2]["annotations"].__setitem__(cnab.ANN_MANIFEST_TYPE, "service"),
            "'service'",
        ),
        (lambda d: d["manifests"][3]["annotations"].pop(cnab.ANN_MANIFEST_TYPE), "no io.cnab.manifest.type"),
        (
            lambda d: d["manifests"][3]["annotations"].__setitem__(cnab.ANN_COMPONENT_NAME, "another-image"),
            "appears twice",
        ),
        (lambda d: d["manifests"][0].__setitem__("mediaType", mt.OCI_INDEX), "must be an image manifest"),
        (lambda d: d["manifests"][2].__setitem__("mediaType", "application/octet-stream"), "references only"),
    ],
)
def test_malformed_bundle_indexes(edit: Any, match: str) -> None:
    invalid(_index_with(bundle_json_bundle(), edit), match)


def test_parse_bundle_index_refuses_an_image_manifest() -> None:
    with pytest.raises(ManifestInvalid, match="must be an image index"):
        cnab.parse_bundle_index(image().manifest)


def test_config_blob_descriptor_needs_a_bundle_config_manifest() -> None:
    with pytest.raises(ManifestInvalid, match="must point at an image manifest"):
        cnab.config_blob_descriptor(multi_arch().manifest)
    with pytest.raises(ManifestInvalid, match="not a CNAB config"):
        cnab.config_blob_descriptor(docker_plugin().manifest)


# --------------------------------------------------------------------------- bad config blobs


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"{}", "not a CNAB bundle"),
        (canonical(image().config), "not a CNAB bundle"),
        (b'{"schema_version": 1}', "schema_version must be a string"),
    ],
)
def test_config_blob_that_is_not_a_bundle(blob: bytes, match: str) -> None:
    invalid(bundle_json_bundle(), match, config=blob)


def test_component_digest_differs_from_index() -> None:
    fx = bundle_json_bundle()
    other = digest_of(b"another manifest")

    def edit(doc: dict[str, Any]) -> None:
        doc["images"]["image-1"]["contentDigest"] = other

    err = invalid(fx, "component 'image-1' has digest", config=edited_bundle(fx, edit))
    assert other in err.message
    assert fx.components["image-1"].digest in err.message


def test_invocation_digest_differs_from_index() -> None:
    fx = bundle_json_bundle()

    def edit(doc: dict[str, Any]) -> None:
        doc["invocationImages"][0]["contentDigest"] = digest_of(b"elsewhere")

    invalid(fx, "the invocation image has digest", config=edited_bundle(fx, edit))


def test_index_component_missing_from_bundle() -> None:
    fx = bundle_json_bundle()
    invalid(
        fx,
        "'image-1' in the bundle index is not an image",
        config=edited_bundle(fx, lambda d: d["images"].pop("image-1")),
    )


def test_bundle_image_missing_from_index() -> None:
    fx = _index_with(bundle_json_bundle(), lambda d: d["manifests"].pop(3))
    invalid(fx, "'image-1' of the bundle.json has no component descriptor")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.pop("name"), "non-empty string name"),
        (lambda d: d.__setitem__("version", 1), "non-empty string version"),
        (lambda d: d.pop("invocationImages"), "invocationImages array"),
        (lambda d: d["invocationImages"].append(d["invocationImages"][0]), "2 invocation images"),
        (lambda d: d.__setitem__("images", []), "images must be an object"),
        (lambda d: d["parameters"]["param1"].__setitem__("definition", "nope"), "definition 'nope'"),
        (lambda d: d.__setitem__("parameters", ["p"]), "parameters must be an object"),
        (lambda d: d.__setitem__("credentials", {"c": "x"}), "credentials.c must be an object"),
        (lambda d: d.__setitem__("maintainers", [{"email": "x"}]), r"maintainers\[0\] needs a name"),
        (lambda d: d.__setitem__("keywords", "k"), "keywords must be an array of strings"),
        (lambda d: d.__setitem__("schemaVersion", 1), "schemaVersion must be a string"),
    ],
)
def test_bad_bundle_json(edit: Any, match: str) -> None:
    fx = bundle_json_bundle()
    invalid(fx, match, config=edited_bundle(fx, edit))


@pytest.mark.parametrize(
    ("annotation", "value", "match"),
    [
        (cnab.ANN_TITLE, None, "missing the org.opencontainers.image.title"),
        (cnab.ANN_VERSION, None, "missing the org.opencontainers.image.version"),
        (cnab.ANN_AUTHORS, "not json", "authors annotation is not a JSON array"),
        (cnab.ANN_KEYWORDS, '{"a": 1}', "keywords must be an array of strings"),
    ],
)
def test_bad_docker_app_annotations(annotation: str, value: str | None, match: str) -> None:
    def edit(doc: dict[str, Any]) -> None:
        if value is None:
            doc["annotations"].pop(annotation)
        else:
            doc["annotations"][annotation] = value

    invalid(_index_with(docker_app_bundle(), edit), match)


# --------------------------------------------------------------------------- properties

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_bundle_keys = st.sampled_from(
    ["schemaVersion", "schema_version", "name", "version", "invocationImages", "images", "parameters",
     "credentials", "actions", "definitions", "maintainers", "keywords", "description", "license"]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_bundle_keys, _json, max_size=8) | _json)
def test_any_config_blob_is_a_bundle_or_refused(document: Any) -> None:
    """Arbitrary JSON never crashes the bundle reader: a Bundle or ManifestInvalid."""
    fx = bundle_json_bundle()
    index = cnab.parse_bundle_index(fx.index.manifest)
    outcome: cnab.Bundle | ManifestInvalid
    try:
        outcome = cnab.build_bundle(index, json.dumps(document).encode())
    except ManifestInvalid as exc:
        outcome = exc
    if isinstance(outcome, ManifestInvalid):
        assert outcome.message.startswith("manifest invalid: ")
    else:
        assert outcome.name
        assert outcome.version
        assert outcome.invocation_digests == (fx.invocation.digest,)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(LAYOUTS)), st.data())
def test_mutated_bundle_fields_are_read_or_refused(layout: str, data: st.DataObject) -> None:
    fx = LAYOUTS[layout]()
    doc = fx.bundle_config
    key = data.draw(st.sampled_from(sorted(doc)))
    doc[key] = data.draw(_json)
    index = cnab.parse_bundle_index(fx.index.manifest)
    with contextlib.suppress(ManifestInvalid):
        cnab.build_bundle(index, doc)


def test_fixture_children_are_valid_manifests() -> None:
    for fx in (bundle_json_bundle(), docker_app_bundle(config_fallback="docker", docker_list=True)):
        children: list[Built] = [fx.config_manifest, fx.invocation, *fx.components.values()]
        digests = {c.digest for c in children}
        assert digests == {d.digest for d in fx.index.manifest.manifests}
