"""Deciding what a manifest is, once, on push: image, multi-arch, application, plugin or artifact.

``invocation`` is never decided here: a manifest becomes an invocation image when an
application bundle that names it is pushed (see ``invocation_digests`` and ``as_invocation``).

The order of the rules, first match wins:

1. An index (OCI index or Docker manifest list):
   a. that claims to be a CNAB bundle (``cnab.is_bundle_index``) -> ``application``; its
      structure is validated and a malformed bundle raises ``ManifestInvalid``;
   b. with an ``artifactType`` -> ``artifact``;
   c. anything else -> ``multi-arch``, with the platforms of its children (attestation
      children on ``unknown/unknown`` left out).
2. An image manifest:
   a. config type ``application/vnd.docker.plugin.v1+json`` -> ``plugin``;
   b. a CNAB bundle config (CNAB config type, or an image config type whose content is a
      bundle: cnab-to-oci's fallbacks) -> ``artifact``;
   c. an ``artifactType`` that is not an image config type -> ``artifact``;
   d. a config type that is not an image config type (Helm, cosign, in-toto, ...) -> ``artifact``;
   e. an image config whose layers are all signatures, attestations or SBOMs (cosign's tag
      layout, buildx attestation manifests) -> ``artifact`` typed by its layers;
   f. anything else -> ``image``, with os/architecture/variant from its config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from moorage.oci import cnab
from moorage.oci import mediatypes as mt
from moorage.oci.manifest import Manifest, Platform

IMAGE = "image"
MULTI_ARCH = "multi-arch"
APPLICATION = "application"
INVOCATION = "invocation"
PLUGIN = "plugin"
ARTIFACT = "artifact"

KINDS = (IMAGE, MULTI_ARCH, APPLICATION, INVOCATION, PLUGIN, ARTIFACT)

#: Kinds an application may turn into ``invocation`` when it names them.
INVOCATION_ELIGIBLE = frozenset({IMAGE, MULTI_ARCH, INVOCATION})

# What an artifact is, for people (``Classification.category``).
SIGNATURE = "signature"
SBOM = "sbom"
ATTESTATION = "attestation"
HELM_CHART = "helm-chart"
BUNDLE_CONFIG = "cnab-bundle-config"
CATEGORIES = (SIGNATURE, SBOM, ATTESTATION, HELM_CHART, BUNDLE_CONFIG)

COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
COSIGN_SBOM_ARTIFACT = "application/vnd.dev.cosign.artifact.sbom.v1+json"
NOTARY_SIGNATURE = "application/vnd.cncf.notary.signature"
SIGSTORE_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
IN_TOTO = "application/vnd.in-toto+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_CONTENT = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
SPDX_JSON = "application/spdx+json"
CYCLONEDX_JSON = "application/vnd.cyclonedx+json"

_CATEGORY_BY_TYPE: dict[str, str] = {
    COSIGN_SIMPLESIGNING: SIGNATURE,
    COSIGN_SIGNATURE_ARTIFACT: SIGNATURE,
    NOTARY_SIGNATURE: SIGNATURE,
    IN_TOTO: ATTESTATION,
    DSSE_ENVELOPE: ATTESTATION,
    "application/vnd.dev.cosign.attestation.v1+json": ATTESTATION,
    HELM_CONFIG: HELM_CHART,
    HELM_CHART_CONTENT: HELM_CHART,
    SPDX_JSON: SBOM,
    "application/spdx": SBOM,
    "text/spdx": SBOM,
    "text/spdx+json": SBOM,
    "text/spdx+xml": SBOM,
    CYCLONEDX_JSON: SBOM,
    "application/vnd.cyclonedx+xml": SBOM,
    "application/vnd.cyclonedx": SBOM,
    "application/vnd.syft+json": SBOM,
    COSIGN_SBOM_ARTIFACT: SBOM,
    mt.CNAB_CONFIG: BUNDLE_CONFIG,
    mt.CNAB_BUNDLE_CONFIG: BUNDLE_CONFIG,
}

_IMAGE_CONFIG_TYPES = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})
#: Layer-derived typing applies to signatures, attestations and SBOMs only: never to file systems.
_LAYER_CATEGORIES = frozenset({SIGNATURE, ATTESTATION, SBOM})
_UNKNOWN_PLATFORM = "unknown"


@dataclass(frozen=True, slots=True)
class Classification:
    kind: str
    artifact_type: str | None
    platform: Platform | None  # the image's own platform (single-platform kinds)
    platforms: tuple[Platform, ...]  # every platform: one for an image, one per child of an index
    #: For artifacts (and applications' configs): signature, sbom, attestation, helm-chart,
    #: cnab-bundle-config; ``None`` for kinds that are not artifacts and for unknown artifact types.
    category: str | None = None
    #: For applications: the validated structure of the bundle index (config, invocation, components).
    bundle: cnab.BundleIndex | None = dataclasses.field(default=None, compare=False, hash=False)


def artifact_category(artifact_type: str | None) -> str | None:
    """signature / sbom / attestation / helm-chart / cnab-bundle-config, or ``None`` when unknown."""
    if not artifact_type:
        return None
    base = artifact_type.split(";")[0].strip().lower()
    found = _CATEGORY_BY_TYPE.get(base)
    if found is not None:
        return found
    if base.startswith(SIGSTORE_BUNDLE_PREFIX):
        return SIGNATURE
    if base.startswith("application/vnd.in-toto."):
        return ATTESTATION
    if "spdx" in base or "cyclonedx" in base:
        return SBOM
    return None


def config_platform(config: Mapping[str, Any] | None) -> Platform | None:
    """os/architecture/variant/os.version of an image config, when it names both os and architecture."""
    if not config:
        return None
    os_, arch = config.get("os"), config.get("architecture")
    if not (isinstance(os_, str) and isinstance(arch, str) and os_ and arch):
        return None
    variant, os_version = config.get("variant"), config.get("os.version")
    return Platform(
        os_,
        arch,
        variant if isinstance(variant, str) and variant else None,
        os_version if isinstance(os_version, str) and os_version else None,
    )


def index_platforms(manifest: Manifest) -> tuple[Platform, ...]:
    """Distinct platforms of an index's children, in order; ``unknown/unknown`` (attestations) left out."""
    return _distinct(
        d.platform
        for d in manifest.manifests
        if d.platform is not None
        and not (d.platform.os == _UNKNOWN_PLATFORM and d.platform.architecture == _UNKNOWN_PLATFORM)
    )


def _distinct(platforms: Iterable[Platform]) -> tuple[Platform, ...]:
    return tuple(dict.fromkeys(platforms))


def is_cnab_index(manifest: Manifest) -> bool:
    """A CNAB bundle index, in either layout cnab-to-oci has written (see ``cnab.is_bundle_index``)."""
    return cnab.is_bundle_index(manifest)


def invocation_digests(manifest: Manifest) -> list[str]:
    """Digests of the invocation images a bundle index names; empty for anything else.

    The service marks these manifests (already in the repository: an index's children must
    exist before it) as ``invocation`` when the application is pushed; see ``as_invocation``.
    """
    if not cnab.is_bundle_index(manifest):
        return []
    return [
        d.digest
        for d in manifest.manifests
        if d.annotations.get(cnab.ANN_MANIFEST_TYPE) == cnab.ROLE_INVOCATION
    ]


def component_digests(manifest: Manifest) -> list[str]:
    """Digests of the component images a bundle index names; empty for anything else."""
    if not cnab.is_bundle_index(manifest):
        return []
    return [
        d.digest
        for d in manifest.manifests
        if d.annotations.get(cnab.ANN_MANIFEST_TYPE) == cnab.ROLE_COMPONENT
    ]


def as_invocation(classification: Classification) -> Classification:
    """The classification of an image once an application names it as its invocation image.

    Images and multi-arch lists become ``invocation`` and keep their platforms; other kinds
    (which no valid bundle names) are returned unchanged.
    """
    if classification.kind not in INVOCATION_ELIGIBLE:
        return classification
    return dataclasses.replace(classification, kind=INVOCATION)


def classify(manifest: Manifest, config: Mapping[str, Any] | None) -> Classification:
    """Classify a parsed manifest; ``config`` is its parsed config blob when it is JSON.

    Deterministic and total over parsed manifests: it returns a ``Classification`` whose kind is
    never ``invocation``, or raises ``ManifestInvalid`` for an index that claims to be a CNAB
    bundle but is malformed (no config descriptor, two invocation images, ...).
    """
    if manifest.is_index:
        return _classify_index(manifest)
    return _classify_image_manifest(manifest, config)


def _classify_index(manifest: Manifest) -> Classification:
    if cnab.is_bundle_index(manifest):
        bundle = cnab.parse_bundle_index(manifest)
        artifact_type = manifest.artifact_type or cnab.CNAB_MANIFEST_TYPE
        return Classification(APPLICATION, artifact_type, None, (), None, bundle)
    platforms = index_platforms(manifest)
    if manifest.artifact_type:
        return Classification(
            ARTIFACT, manifest.artifact_type, None, platforms, artifact_category(manifest.artifact_type)
        )
    return Classification(MULTI_ARCH, None, None, platforms)


def _artifact(artifact_type: str, category: str | None = None) -> Classification:
    return Classification(ARTIFACT, artifact_type, None, (), category or artifact_category(artifact_type))


def _classify_image_manifest(manifest: Manifest, config: Mapping[str, Any] | None) -> Classification:
    assert manifest.config is not None
    config_type = manifest.config.media_type
    if config_type == mt.DOCKER_PLUGIN_CONFIG:
        return Classification(PLUGIN, config_type, None, ())
    if cnab.is_bundle_config_manifest(manifest, config):
        return _artifact(
            config_type if config_type in cnab.CNAB_CONFIG_TYPES else mt.CNAB_CONFIG, BUNDLE_CONFIG
        )
    if manifest.artifact_type and manifest.artifact_type not in _IMAGE_CONFIG_TYPES:
        return _artifact(manifest.artifact_type)
    if config_type not in _IMAGE_CONFIG_TYPES and config_type != mt.OCI_EMPTY:
        return _artifact(config_type)
    layer_type = _artifact_layer_type(manifest)
    if layer_type is not None:
        # A manifest with a subject is listed by the referrers API, which must report the
        # spec's artifact type (artifactType, else the config type), not the layers'.
        artifact_type = (manifest.effective_artifact_type or config_type) if manifest.subject else layer_type
        return _artifact(artifact_type, artifact_category(layer_type))
    if config_type == mt.OCI_EMPTY:
        return _artifact(config_type)
    platform = config_platform(config)
    return Classification(IMAGE, None, platform, (platform,) if platform else ())


def _artifact_layer_type(manifest: Manifest) -> str | None:
    """The shared kind of layer when every layer is a signature, attestation or SBOM."""
    if not manifest.layers:
        return None
    categories = {artifact_category(layer.media_type) for layer in manifest.layers}
    if len(categories) != 1 or not categories <= _LAYER_CATEGORIES:
        return None
    return manifest.layers[0].media_type
