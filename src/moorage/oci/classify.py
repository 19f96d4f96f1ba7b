"""Deciding what a manifest is, once, on push: image, multi-arch, application, plugin or artifact.

``invocation`` is never decided here: a manifest becomes an invocation image when an
application bundle that names it is pushed (see ``invocation_digests``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moorage.oci import mediatypes as mt
from moorage.oci.manifest import Manifest, Platform

IMAGE = "image"
MULTI_ARCH = "multi-arch"
APPLICATION = "application"
INVOCATION = "invocation"
PLUGIN = "plugin"
ARTIFACT = "artifact"

KINDS = (IMAGE, MULTI_ARCH, APPLICATION, INVOCATION, PLUGIN, ARTIFACT)

_CNAB_CONFIG_TYPES = frozenset({mt.CNAB_CONFIG, mt.CNAB_BUNDLE_CONFIG})


@dataclass(frozen=True, slots=True)
class Classification:
    kind: str
    artifact_type: str | None
    platform: Platform | None  # the image's own platform (single-platform kinds)
    platforms: tuple[Platform, ...]  # every platform: one for an image, one per child of an index


def _config_platform(config: dict[str, Any] | None) -> Platform | None:
    if not config:
        return None
    os_, arch = config.get("os"), config.get("architecture")
    if isinstance(os_, str) and isinstance(arch, str) and os_ and arch:
        variant = config.get("variant")
        return Platform(os_, arch, variant if isinstance(variant, str) and variant else None)
    return None


def is_cnab_index(manifest: Manifest) -> bool:
    """A CNAB bundle index, in either layout cnab-to-oci has written."""
    ann = manifest.annotations
    if ann.get("io.docker.app.format") == "cnab" or ann.get("io.docker.type") == "app":
        return True
    if manifest.artifact_type in _CNAB_CONFIG_TYPES:
        return True
    if ann.get("org.opencontainers.artifactType") in _CNAB_CONFIG_TYPES:
        return True
    return any(d.annotations.get("io.cnab.manifest.type") == "config" for d in manifest.manifests)


def invocation_digests(manifest: Manifest) -> list[str]:
    """Digests of the invocation images a bundle index names."""
    return [d.digest for d in manifest.manifests if d.annotations.get("io.cnab.manifest.type") == "invocation"]


def classify(manifest: Manifest, config: dict[str, Any] | None) -> Classification:
    """Classify a parsed manifest; ``config`` is its parsed config blob when it is JSON."""
    if manifest.is_index:
        if is_cnab_index(manifest):
            return Classification(APPLICATION, manifest.artifact_type or mt.CNAB_CONFIG, None, ())
        platforms = tuple(d.platform for d in manifest.manifests if d.platform is not None)
        if manifest.artifact_type:
            return Classification(ARTIFACT, manifest.artifact_type, None, platforms)
        return Classification(MULTI_ARCH, None, None, platforms)
    assert manifest.config is not None
    config_type = manifest.config.media_type
    if config_type == mt.DOCKER_PLUGIN_CONFIG:
        return Classification(PLUGIN, config_type, None, ())
    if config_type in _CNAB_CONFIG_TYPES:
        return Classification(ARTIFACT, config_type, None, ())
    artifact_type = manifest.effective_artifact_type
    if artifact_type:
        return Classification(ARTIFACT, artifact_type, None, ())
    platform = _config_platform(config)
    return Classification(IMAGE, None, platform, (platform,) if platform else ())
