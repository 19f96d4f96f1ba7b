"""Classification on push (``moorage.oci.classify``): every kind, both CNAB layouts, properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fixtures_cnab import (
    COSIGN_SIG_ARTIFACT,
    COSIGN_SIMPLESIGNING,
    HELM_CONFIG,
    IN_TOTO,
    SPDX_JSON,
    Built,
    buildx_attestation,
    bundle_json_bundle,
    canonical,
    cosign_signature_config_type,
    cosign_signature_referrer,
    cosign_signature_tag_layout,
    descriptor,
    digest_of,
    docker_app_bundle,
    docker_plugin,
    helm_chart,
    image,
    image_config,
    in_toto_referrer,
    multi_arch,
    multi_arch_with_attestation,
    sbom_referrer,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.oci import classify as c
from moorage.oci import cnab
from moorage.oci import mediatypes as mt
from moorage.oci.errors import ManifestInvalid
from moorage.oci.manifest import Platform, parse_manifest


def classify(b: Built) -> c.Classification:
    return c.classify(b.manifest, b.config)


# --------------------------------------------------------------------------- images and lists


@pytest.mark.parametrize("docker", [True, False], ids=["schema2", "oci"])
def test_image_platform_from_config(docker: bool) -> None:
    got = classify(image("linux", "arm", "v7", docker=docker))
    assert got.kind == c.IMAGE
    assert (got.artifact_type, got.category) == (None, None)
    assert got.platform == Platform("linux", "arm", "v7")
    assert got.platforms == (got.platform,)


def test_windows_image_keeps_os_version() -> None:
    b = image(config=image_config("windows", "amd64", **{"os.version": "10.0.17763.1"}))
    assert classify(b).platform == Platform("windows", "amd64", None, "10.0.17763.1")


@pytest.mark.parametrize(
    "config", [None, {}, {"os": "linux"}, {"os": "", "architecture": ""}, {"os": 1, "architecture": ["x"]}]
)
def test_image_without_usable_platform(config: dict[str, Any] | None) -> None:
    got = c.classify(image().manifest, config)
    assert (got.kind, got.platform, got.platforms) == (c.IMAGE, None, ())


@pytest.mark.parametrize("docker", [True, False], ids=["manifest-list", "oci-index"])
def test_multi_arch(docker: bool) -> None:
    got = classify(multi_arch(docker=docker))
    assert got.kind == c.MULTI_ARCH
    assert got.platform is None
    assert got.platforms == (Platform("linux", "amd64"), Platform("linux", "arm", "v6"))


def test_multi_arch_leaves_out_attestation_children() -> None:
    got = classify(multi_arch_with_attestation())
    assert got.kind == c.MULTI_ARCH
    assert got.platforms == (Platform("linux", "amd64"), Platform("linux", "arm64", "v8"))


def test_buildx_attestation_manifest_is_an_attestation() -> None:
    got = classify(buildx_attestation())
    assert (got.kind, got.artifact_type, got.category) == (c.ARTIFACT, IN_TOTO, c.ATTESTATION)


def test_index_with_artifact_type_is_an_artifact() -> None:
    doc = dict(multi_arch().document, artifactType="application/vnd.example.collection")
    got = classify(Built(doc, mt.OCI_INDEX))
    assert (got.kind, got.artifact_type) == (c.ARTIFACT, "application/vnd.example.collection")


# --------------------------------------------------------------------------- plugins and artifacts


def test_docker_plugin() -> None:
    got = classify(docker_plugin())
    assert (got.kind, got.artifact_type, got.platform) == (c.PLUGIN, mt.DOCKER_PLUGIN_CONFIG, None)


def test_helm_chart() -> None:
    got = classify(helm_chart())
    assert (got.kind, got.artifact_type, got.category) == (c.ARTIFACT, HELM_CONFIG, c.HELM_CHART)


@pytest.mark.parametrize(
    ("make", "artifact_type"),
    [
        (cosign_signature_tag_layout, COSIGN_SIMPLESIGNING),
        (cosign_signature_config_type, COSIGN_SIMPLESIGNING),
        (cosign_signature_referrer, COSIGN_SIG_ARTIFACT),
    ],
    ids=["tag-layout", "config-type", "referrer"],
)
def test_cosign_signatures(make: Any, artifact_type: str) -> None:
    got = classify(make(image()))
    assert (got.kind, got.artifact_type, got.category) == (c.ARTIFACT, artifact_type, c.SIGNATURE)


def test_sbom_referrer() -> None:
    b = sbom_referrer(image())
    assert b.manifest.subject is not None
    got = classify(b)
    assert (got.kind, got.artifact_type, got.category) == (c.ARTIFACT, SPDX_JSON, c.SBOM)


def test_in_toto_referrer() -> None:
    got = classify(in_toto_referrer(image()))
    assert (got.kind, got.artifact_type, got.category) == (c.ARTIFACT, IN_TOTO, c.ATTESTATION)


def test_layer_typed_artifact_with_subject_keeps_the_referrers_type() -> None:
    """Referrers must report artifactType or the config type, not a type guessed from layers."""
    doc = dict(cosign_signature_tag_layout(image()).document, subject=image().ref())
    got = classify(Built(doc, mt.OCI_MANIFEST))
    assert (got.kind, got.artifact_type, got.category) == (c.ARTIFACT, mt.OCI_CONFIG, c.SIGNATURE)


def test_unknown_config_type_is_an_artifact() -> None:
    doc = dict(helm_chart().document)
    doc["config"] = descriptor("application/vnd.wasm.config.v0+json", b"{}")
    got = classify(Built(doc, mt.OCI_MANIFEST))
    assert (got.kind, got.artifact_type, got.category) == (
        c.ARTIFACT,
        "application/vnd.wasm.config.v0+json",
        None,
    )


def test_empty_config_without_artifact_type() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(mt.OCI_EMPTY, b"{}"),
        "layers": [descriptor("application/octet-stream", b"x")],
    }
    got = classify(Built(doc, mt.OCI_MANIFEST))
    assert (got.kind, got.artifact_type) == (c.ARTIFACT, mt.OCI_EMPTY)


def test_mixed_layers_stay_an_image() -> None:
    """A file-system image that happens to carry one SBOM layer is still an image."""
    b = image()
    doc = dict(b.document)
    doc["layers"] = [*doc["layers"], descriptor(SPDX_JSON, b"{}")]
    assert c.classify(Built(doc, mt.OCI_MANIFEST).manifest, b.config).kind == c.IMAGE


@pytest.mark.parametrize(
    ("artifact_type", "category"),
    [
        ("application/vnd.dev.sigstore.bundle.v0.3+json", c.SIGNATURE),
        ("application/vnd.cncf.notary.signature", c.SIGNATURE),
        ("application/vnd.cyclonedx+json", c.SBOM),
        ("text/spdx", c.SBOM),
        ("application/vnd.in-toto.provenance+dsse", c.ATTESTATION),
        (mt.CNAB_CONFIG, c.BUNDLE_CONFIG),
        ("application/vnd.example", None),
        (None, None),
    ],
)
def test_artifact_category(artifact_type: str | None, category: str | None) -> None:
    assert c.artifact_category(artifact_type) == category


# --------------------------------------------------------------------------- applications

LAYOUTS = {"bundle-json": bundle_json_bundle, "docker-app-2019": docker_app_bundle}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("docker_list", [False, True], ids=["oci-index", "docker-list"])
def test_bundle_index_is_an_application(layout: str, docker_list: bool) -> None:
    fx = LAYOUTS[layout](docker_list=docker_list)
    got = classify(fx.index)
    assert got.kind == c.APPLICATION
    assert got.artifact_type == cnab.CNAB_MANIFEST_TYPE
    assert got.platforms == ()
    assert got.bundle is not None
    assert got.bundle.layout == layout
    assert got.bundle.invocation.digest == fx.invocation.digest
    assert c.invocation_digests(fx.index.manifest) == [fx.invocation.digest]
    assert sorted(c.component_digests(fx.index.manifest)) == sorted(b.digest for b in fx.components.values())


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("fallback", ["cnab", "cnab-spec", "oci", "docker"])
def test_bundle_children_are_typed(layout: str, fallback: str) -> None:
    fx = LAYOUTS[layout](config_fallback=fallback)
    config = classify(fx.config_manifest)
    assert (config.kind, config.category) == (c.ARTIFACT, c.BUNDLE_CONFIG)
    expected_type = mt.CNAB_BUNDLE_CONFIG if fallback == "cnab-spec" else mt.CNAB_CONFIG
    assert config.artifact_type == expected_type
    invocation = classify(fx.invocation)
    assert (invocation.kind, invocation.platform) == (c.IMAGE, Platform("linux", "amd64"))
    invoc = c.as_invocation(invocation)
    assert (invoc.kind, invoc.platform, invoc.platforms) == (
        c.INVOCATION,
        invocation.platform,
        invocation.platforms,
    )
    for built in fx.components.values():
        assert classify(built).kind in (c.IMAGE, c.MULTI_ARCH)


@pytest.mark.parametrize(
    "signal",
    [
        {"annotations": {cnab.ANN_DOCKER_TYPE: "app"}},
        {"annotations": {cnab.ANN_DOCKER_APP_FORMAT: "cnab"}},
        {"annotations": {cnab.ANN_ARTIFACT_TYPE: cnab.CNAB_MANIFEST_TYPE}},
        {"annotations": {cnab.ANN_ARTIFACT_TYPE: mt.CNAB_CONFIG}},
        {"annotations": {cnab.ANN_RUNTIME_VERSION: "v1.0.0"}},
        {"artifactType": cnab.CNAB_MANIFEST_TYPE},
        {"artifactType": mt.CNAB_BUNDLE_CONFIG},
        {},  # descriptor annotations alone
    ],
)
def test_each_signal_alone_marks_an_application(signal: dict[str, Any]) -> None:
    doc = bundle_json_bundle().index_document()
    doc.pop("annotations")
    doc.update(signal)
    got = classify(Built(doc, mt.OCI_INDEX))
    assert got.kind == c.APPLICATION
    assert got.artifact_type == signal.get("artifactType", cnab.CNAB_MANIFEST_TYPE)


def test_claimed_bundle_without_config_is_refused() -> None:
    doc = bundle_json_bundle().index_document()
    doc["manifests"].pop(0)
    with pytest.raises(ManifestInvalid, match="no config descriptor"):
        classify(Built(doc, mt.OCI_INDEX))


def test_claimed_bundle_with_unannotated_children_is_refused() -> None:
    doc = bundle_json_bundle().index_document()
    for d in doc["manifests"]:
        d.pop("annotations")
    with pytest.raises(ManifestInvalid, match=r"manifests\[0\] .* has no io.cnab.manifest.type annotation"):
        classify(Built(doc, mt.OCI_INDEX))


def test_claimed_bundle_with_two_invocation_images_is_refused() -> None:
    doc = docker_app_bundle(docker_list=True).index_document()
    doc["manifests"][2]["annotations"] = {cnab.ANN_MANIFEST_TYPE: "invocation"}
    with pytest.raises(ManifestInvalid, match="2 invocation images"):
        classify(Built(doc, mt.DOCKER_MANIFEST_LIST))


def test_invocation_digests_of_non_bundles() -> None:
    assert c.invocation_digests(multi_arch().manifest) == []
    assert c.invocation_digests(image().manifest) == []
    assert c.component_digests(multi_arch().manifest) == []


def test_as_invocation_leaves_other_kinds() -> None:
    sig = classify(cosign_signature_referrer(image()))
    assert c.as_invocation(sig) is sig
    assert c.as_invocation(classify(multi_arch())).kind == c.INVOCATION


def test_first_cut_api_still_works() -> None:
    """The service builds and reads Classification with the original four fields."""
    got = c.Classification(c.IMAGE, None, None, ())
    assert (got.kind, got.artifact_type, got.platform, got.platforms, got.category, got.bundle) == (
        c.IMAGE,
        None,
        None,
        (),
        None,
        None,
    )
    assert c.is_cnab_index(bundle_json_bundle().index.manifest)
    assert not c.is_cnab_index(multi_arch().manifest)


# --------------------------------------------------------------------------- properties

_digests = st.binary(min_size=1, max_size=8).map(digest_of)
_words = st.sampled_from(["linux", "windows", "amd64", "arm", "arm64", "v7", "unknown", "s390x"])
_platforms = st.builds(Platform, _words, _words, st.none() | _words)
_media_types = st.sampled_from(
    sorted(mt.MANIFEST_TYPES | {mt.OCI_CONFIG, mt.DOCKER_CONFIG, mt.OCI_EMPTY, mt.DOCKER_PLUGIN_CONFIG, mt.CNAB_CONFIG,
                                mt.CNAB_BUNDLE_CONFIG, HELM_CONFIG, COSIGN_SIMPLESIGNING, SPDX_JSON, IN_TOTO,
                                mt.OCI_LAYER_GZIP, mt.DOCKER_LAYER_GZIP, "application/vnd.example+json"})
)  # fmt: skip
_annotation_keys = st.sampled_from(
    [cnab.ANN_MANIFEST_TYPE, cnab.ANN_COMPONENT_NAME, cnab.ANN_DOCKER_TYPE, cnab.ANN_DOCKER_APP_FORMAT,
     cnab.ANN_ARTIFACT_TYPE, cnab.ANN_RUNTIME_VERSION, cnab.ANN_TITLE, "org.example"]
)  # fmt: skip
_annotation_values = st.sampled_from(
    ["config", "invocation", "component", "app", "cnab", cnab.CNAB_MANIFEST_TYPE, mt.CNAB_CONFIG, "x", ""]
)
_annotations = st.dictionaries(_annotation_keys, _annotation_values, max_size=3)


def _plat_json(p: Platform) -> dict[str, str]:
    out = {"os": p.os, "architecture": p.architecture}
    if p.variant:
        out["variant"] = p.variant
    return out


@st.composite
def descriptors(draw: st.DrawFn, media_types: st.SearchStrategy[str] = _media_types) -> dict[str, Any]:
    d: dict[str, Any] = {
        "mediaType": draw(media_types),
        "digest": draw(_digests),
        "size": draw(st.integers(0, 9999)),
    }
    if draw(st.booleans()):
        d["annotations"] = draw(_annotations)
    if draw(st.booleans()):
        d["platform"] = _plat_json(draw(_platforms))
    return d


@st.composite
def manifests(draw: st.DrawFn) -> tuple[bytes, str]:
    media_type = draw(st.sampled_from(sorted(mt.MANIFEST_TYPES)))
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if media_type in mt.INDEX_MANIFESTS:
        doc["manifests"] = draw(st.lists(descriptors(st.sampled_from(sorted(mt.MANIFEST_TYPES))), max_size=5))
    else:
        doc["config"] = draw(descriptors())
        doc["layers"] = draw(st.lists(descriptors(), max_size=3))
    if draw(st.booleans()):
        doc["annotations"] = draw(_annotations)
    if draw(st.booleans()):
        doc["artifactType"] = draw(_media_types)
    if draw(st.booleans()):
        doc["subject"] = {"mediaType": mt.OCI_MANIFEST, "digest": draw(_digests), "size": 1}
    return json.dumps(doc).encode(), media_type


_configs = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "os": st.sampled_from(["linux", "windows", "", 3]),
        "architecture": st.sampled_from(["amd64", "arm", "", None]),
        "variant": st.sampled_from(["v7", "", None]),
        "rootfs": st.just({"type": "layers", "diff_ids": []}),
        "schema_version": st.just("v1.0.0-WD"),
        "parameters": st.just({}),
        "invocationImages": st.just([]),
        "name": st.just("app"),
    },
)


@settings(max_examples=400, deadline=None)
@given(manifests(), _configs)
def test_classification_is_total_and_deterministic(
    pushed: tuple[bytes, str], config: dict[str, Any] | None
) -> None:
    manifest = parse_manifest(*pushed)
    try:
        first = c.classify(manifest, config)
    except ManifestInvalid:
        assert c.is_cnab_index(manifest), "only a claimed but malformed bundle may be refused"
        with pytest.raises(ManifestInvalid):
            c.classify(manifest, config)
        return
    assert first == c.classify(manifest, config)
    assert first.kind in c.KINDS
    assert first.kind != c.INVOCATION
    assert (first.kind == c.APPLICATION) == c.is_cnab_index(manifest)
    if first.kind == c.ARTIFACT:
        assert first.artifact_type
    if first.kind in (c.IMAGE, c.PLUGIN):
        assert not manifest.is_index
    if first.kind == c.MULTI_ARCH:
        assert manifest.is_index
        assert not manifest.artifact_type
        assert set(first.platforms) <= {d.platform for d in manifest.manifests}
    if first.platform is not None:
        assert first.platforms == (first.platform,)


@settings(max_examples=200, deadline=None)
@given(st.lists(_platforms, min_size=1, max_size=6), st.booleans())
def test_index_of_platform_images_is_multi_arch_unless_cnab_annotated(
    platforms: list[Platform], docker: bool
) -> None:
    media_type = mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX
    child_type = mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST
    children = [
        {
            "mediaType": child_type,
            "digest": digest_of(str(i).encode()),
            "size": 100 + i,
            "platform": _plat_json(p),
        }
        for i, p in enumerate(platforms)
    ]
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": children}
    got = c.classify(parse_manifest(canonical(doc), media_type), None)
    assert got.kind == c.MULTI_ARCH
    expected = tuple(dict.fromkeys(p for p in platforms if (p.os, p.architecture) != ("unknown", "unknown")))
    assert got.platforms == expected
    # The same children, annotated as cnab-to-oci annotates them, make an application.
    children[0]["annotations"] = {cnab.ANN_MANIFEST_TYPE: "config"}
    config_child = dict(children[0], mediaType=child_type)
    invocation = {"mediaType": child_type, "digest": digest_of(b"inv"), "size": 1}
    invocation["annotations"] = {cnab.ANN_MANIFEST_TYPE: "invocation"}
    components = [
        dict(ch, annotations={cnab.ANN_MANIFEST_TYPE: "component", cnab.ANN_COMPONENT_NAME: f"c{i}"})
        for i, ch in enumerate(children[1:])
    ]
    doc["manifests"] = [config_child, invocation, *components]
    doc["annotations"] = {cnab.ANN_DOCKER_TYPE: "app", cnab.ANN_DOCKER_APP_FORMAT: "cnab"}
    app = c.classify(parse_manifest(canonical(doc), media_type), None)
    assert app.kind == c.APPLICATION
    assert app.bundle is not None
    assert len(app.bundle.components) == len(platforms) - 1


@settings(max_examples=100, deadline=None)
@given(_platforms, st.booleans())
def test_image_platform_is_its_config_platform(platform: Platform, docker: bool) -> None:
    b = image(platform.os, platform.architecture, platform.variant, docker=docker)
    got = classify(b)
    assert (got.kind, got.platform) == (c.IMAGE, platform)
