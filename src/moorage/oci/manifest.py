"""Parsing and validating manifests: OCI image manifest and index, Docker schema2 and manifest list.

``parse_manifest`` is the single entry point. It never touches storage: checking that the
referenced blobs and manifests exist is the service's job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from moorage.oci import mediatypes as mt
from moorage.oci.digest import parse_digest
from moorage.oci.errors import ManifestInvalid, RegistryError


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"os": self.os, "architecture": self.architecture, "variant": self.variant}

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            plat: dict[str, str] = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                plat["variant"] = self.platform.variant
            out["platform"] = plat
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest: what it references and how it describes itself."""

    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str]
    document: dict[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEX_MANIFESTS

    @property
    def effective_artifact_type(self) -> str | None:
        """The artifact type the referrers API reports: ``artifactType``, else a non-image config type."""
        if self.artifact_type:
            return self.artifact_type
        if self.config is not None and self.config.media_type not in (mt.OCI_CONFIG, mt.DOCKER_CONFIG):
            return self.config.media_type
        return None

    def blob_digests(self) -> list[str]:
        """Digests of every blob (config and layers) this manifest needs."""
        out = [self.config.digest] if self.config is not None else []
        out.extend(d.digest for d in self.layers)
        return out


def _fail(message: str) -> ManifestInvalid:
    return ManifestInvalid(f"manifest invalid: {message}", {"reason": message})


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _fail(f"{where} must be an object of strings")
    return dict(value)


def _platform(value: Any, where: str) -> Platform | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(f"{where}.platform must be an object")
    os_, arch = value.get("os"), value.get("architecture")
    if not isinstance(os_, str) or not isinstance(arch, str):
        raise _fail(f"{where}.platform needs string os and architecture")
    variant = value.get("variant")
    os_version = value.get("os.version")
    return Platform(
        os_,
        arch,
        variant if isinstance(variant, str) and variant else None,
        os_version if isinstance(os_version, str) else None,
    )


def parse_descriptor(value: Any, where: str) -> Descriptor:
    """Validate one descriptor object (``mediaType``, ``digest``, ``size`` are required)."""
    if not isinstance(value, dict):
        raise _fail(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    digest = value.get("digest")
    size = value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _fail(f"{where}.mediaType must be a non-empty string")
    if not isinstance(digest, str):
        raise _fail(f"{where}.digest must be a string")
    try:
        parse_digest(digest)
    except RegistryError as exc:
        raise _fail(f"{where}.digest: {exc.message}") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _fail(f"{where}.size must be a non-negative integer")
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _fail(f"{where}.artifactType must be a string")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        platform=_platform(value.get("platform"), where),
        artifact_type=artifact_type or None,
        annotations=_str_map(value.get("annotations"), f"{where}.annotations"),
    )


def _descriptors(value: Any, where: str, required: bool) -> tuple[Descriptor, ...]:
    if value is None:
        if required:
            raise _fail(f"{where} is required")
        return ()
    if not isinstance(value, list):
        raise _fail(f"{where} must be an array")
    return tuple(parse_descriptor(item, f"{where}[{i}]") for i, item in enumerate(value))


def _decide_media_type(content_type: str | None, document: dict[str, Any]) -> str:
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _fail("mediaType must be a string")
    header = (content_type or "").split(";")[0].strip().lower() or None
    if header in mt.SCHEMA1_TYPES and header != "application/json":
        header = mt.DOCKER_SCHEMA1
    if document.get("schemaVersion") == 1 or header == mt.DOCKER_SCHEMA1 or declared in mt.SCHEMA1_TYPES:
        raise _fail(
            "Docker image manifest schema 1 is deprecated and not supported; push with a current "
            "client (it sends schema 2 or OCI manifests)"
        )
    if header in mt.MANIFEST_TYPES:
        if declared and declared != header:
            raise _fail(f"mediaType {declared!r} does not match Content-Type {header!r}")
        return header
    if declared in mt.MANIFEST_TYPES:
        return declared
    if declared:
        raise _fail(f"unsupported manifest media type {declared!r}")
    if header and header not in ("application/json", "application/octet-stream"):
        raise _fail(f"unsupported manifest media type {header!r}")
    # No usable type: infer from the shape (OCI allows mediaType to be absent).
    if "manifests" in document:
        return mt.OCI_INDEX
    if "config" in document:
        return mt.OCI_MANIFEST
    raise _fail("cannot tell the manifest type: set Content-Type or mediaType")


def parse_manifest(data: bytes, content_type: str | None) -> Manifest:
    """Parse manifest bytes as pushed; raise ``ManifestInvalid`` with a precise reason."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(f"not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise _fail("a manifest must be a JSON object")
    media_type = _decide_media_type(content_type, document)
    if document.get("schemaVersion") != 2:
        raise _fail("schemaVersion must be 2")
    artifact_type = document.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _fail("artifactType must be a string")
    subject = document.get("subject")
    subject_desc = parse_descriptor(subject, "subject") if subject is not None else None
    annotations = _str_map(document.get("annotations"), "annotations")
    if media_type in mt.INDEX_MANIFESTS:
        if "config" in document or "layers" in document:
            raise _fail("an index has manifests, not config or layers")
        return Manifest(
            media_type=media_type,
            config=None,
            layers=(),
            manifests=_descriptors(document.get("manifests"), "manifests", required=True),
            subject=subject_desc,
            artifact_type=artifact_type or None,
            annotations=annotations,
            document=document,
        )
    if "manifests" in document:
        raise _fail("an image manifest has config and layers, not manifests")
    config = parse_descriptor(document.get("config"), "config")
    layers = _descriptors(document.get("layers"), "layers", required=media_type == mt.DOCKER_MANIFEST)
    return Manifest(
        media_type=media_type,
        config=config,
        layers=layers,
        manifests=(),
        subject=subject_desc,
        artifact_type=artifact_type or None,
        annotations=annotations,
        document=document,
    )
