"""CNAB bundles on the client side: ``bundle.json`` from a docker-app or a file, and the OCI
documents cnab-to-oci pushes for it.

The layout is today's cnab-to-oci (``converter/convert.go``, ``converter/types.go``):

* the **config blob** is the whole canonical ``bundle.json`` (keys sorted, no spaces), media
  type ``application/vnd.cnab.config.v1+json``, wrapped in an OCI image manifest
  ``{"schemaVersion":2,"config":{…},"layers":[]}`` (fallbacks: the same with
  ``application/vnd.oci.image.config.v1+json``, then a Docker schema 2 manifest whose only
  layer repeats the config);
* the **bundle index**: ``{"schemaVersion":2,"manifests":[config, invocation,
  components sorted by name…],"annotations":{…}}`` pushed as an OCI index (fallback: the
  same JSON with ``"mediaType"`` of a Docker manifest list). Descriptors carry
  ``io.cnab.manifest.type`` (``config`` | ``invocation`` | ``component``) and components
  ``io.cnab.component.name``; the index carries ``io.cnab.runtime_version`` (the bundle's
  ``schemaVersion``), ``org.opencontainers.image.{title,version,description}``,
  ``org.opencontainers.artifactType: application/vnd.cnab.manifest.v1`` and, when the bundle
  has them, ``org.opencontainers.image.authors`` and ``io.cnab.keywords`` (JSON arrays).

Bundles are plain JSON documents (``dict``) here: they are written back byte for byte as
cnab-go would, and a typed model would only lose the fields this code does not know.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moorage.client.dockerapp import AppInvalid, DockerApp, read_file
from moorage.oci import cnab
from moorage.oci import mediatypes as mt
from moorage.oci.digest import compute

SCHEMA_VERSION = "v1.0.0"
#: The CNAB spec's name for a bundle config; cnab-to-oci writes ``mt.CNAB_CONFIG`` (cnab-spec #381).
CONFIG_MEDIA_TYPES = (mt.CNAB_CONFIG, mt.OCI_CONFIG)
IMAGE_MEDIA_TYPES = frozenset(mt.MANIFEST_TYPES)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """What the index says of a manifest: media type, digest, size."""

    media_type: str
    digest: str
    size: int

    def as_json(self, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        # Go's field order (image-spec specs-go Descriptor): mediaType, digest, size, annotations.
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if annotations:
            out["annotations"] = dict(sorted(annotations.items()))
        return out


def canonical_json(document: Any) -> bytes:
    """cnab-go's ``bundle.Marshal``: canonical JSON, keys sorted, no insignificant space."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------- docker-app -> bundle

# docker-app's own parameters (docker/app internal/packager/cnab.go): what its invocation
# image (docker/cnab-app-base) reads.
_DOCKER_APP_DEFINITIONS: dict[str, dict[str, Any]] = {
    "com.docker.app.args": {
        "default": "",
        "description": "Arguments that are passed by file to the invocation image",
        "title": "Arguments",
        "type": "string",
    },
    "com.docker.app.inspect-format": {
        "default": "json",
        "description": "Output format for the inspect command",
        "enum": ["json", "pretty"],
        "title": "Inspect format",
        "type": "string",
    },
    "com.docker.app.kubernetes-namespace": {
        "default": "",
        "description": "Namespace in which to deploy",
        "title": "Namespace",
        "type": "string",
    },
    "com.docker.app.orchestrator": {
        "default": "",
        "description": "Orchestrator on which to deploy",
        "enum": ["", "swarm", "kubernetes"],
        "title": "Orchestrator",
        "type": "string",
    },
    "com.docker.app.render-format": {
        "default": "yaml",
        "description": "Output format for the render command",
        "enum": ["yaml", "json"],
        "title": "Render format",
        "type": "string",
    },
    "com.docker.app.share-registry-creds": {
        "default": False,
        "description": "Share registry credentials with the invocation image",
        "title": "Share registry credentials",
        "type": "boolean",
    },
}
_LIFECYCLE = ["install", "upgrade", "uninstall", "io.cnab.status"]
_DOCKER_APP_PARAMETERS: dict[str, dict[str, Any]] = {
    "com.docker.app.args": {
        "applyTo": ["install", "upgrade"],
        "destination": {"path": "/cnab/app/args.json"},
    },
    "com.docker.app.inspect-format": {
        "applyTo": ["com.docker.app.inspect"],
        "destination": {"env": "DOCKER_INSPECT_FORMAT"},
    },
    "com.docker.app.kubernetes-namespace": {
        "applyTo": _LIFECYCLE,
        "destination": {"env": "DOCKER_KUBERNETES_NAMESPACE"},
    },
    "com.docker.app.orchestrator": {
        "applyTo": _LIFECYCLE,
        "destination": {"env": "DOCKER_STACK_ORCHESTRATOR"},
    },
    "com.docker.app.render-format": {
        "applyTo": ["com.docker.app.render"],
        "destination": {"env": "DOCKER_RENDER_FORMAT"},
    },
    "com.docker.app.share-registry-creds": {"destination": {"env": "DOCKER_SHARE_REGISTRY_CREDS"}},
}


def docker_app_bundle(app: DockerApp, invocation_image: str) -> dict[str, Any]:
    """The CNAB bundle of a docker-app, as docker-app (v0.9) made it: its parameters become
    definitions passed as ``docker_paramN`` variables, its services the bundle's images."""
    definitions = copy.deepcopy(_DOCKER_APP_DEFINITIONS)
    parameters: dict[str, dict[str, Any]] = copy.deepcopy(_DOCKER_APP_PARAMETERS)
    for name in parameters:
        parameters[name]["definition"] = name
    for i, (name, value) in enumerate(sorted(app.parameters.items()), start=1):
        definitions[name] = {"default": value, "type": "string"}
        parameters[name] = {"definition": name, "destination": {"env": f"docker_param{i}"}}
    bundle: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "name": app.name,
        "version": app.version,
        "description": app.description,
        "invocationImages": [{"imageType": "oci", "image": invocation_image}],
        "images": {
            # imageType ("docker" or "oci") is filled in when the image is resolved (``fix_image``).
            s.name: {"image": s.image, "description": s.image}
            for s in app.services
        },
        "actions": {
            "com.docker.app.inspect": {"stateless": True},
            "com.docker.app.render": {"stateless": True},
            "io.cnab.status": {},
            "io.cnab.status+json": {},
        },
        "parameters": parameters,
        "definitions": definitions,
        "credentials": {
            "com.docker.app.context": {"path": "/cnab/app/context.dockercontext"},
            "com.docker.app.registry-creds": {"path": "/cnab/app/registry-creds.json"},
        },
        "custom": {"com.docker.app": {"version": "v1.0.0", "payload": {"app-directory": app.directory_name}}},
    }
    if app.maintainers:
        bundle["maintainers"] = [
            {"name": m.name, **({"email": m.email} if m.email else {})} for m in app.maintainers
        ]
    if not app.description:
        del bundle["description"]
    return bundle


# --------------------------------------------------------------------------- bundle.json files


def load_bundle_file(path: Path) -> dict[str, Any]:
    """Read and check a ``bundle.json``; raise ``AppInvalid`` naming the file (and line for syntax)."""
    raw = read_file(path)
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise AppInvalid(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise AppInvalid(f"{path}: not UTF-8 text") from None
    check_bundle(document, str(path))
    return document  # type: ignore[no-any-return]


def check_bundle(document: Any, where: str) -> None:
    """The parts of a bundle the push relies on; CNAB 1.0 (``cnab-spec`` 101) required fields."""
    if not isinstance(document, dict):
        raise AppInvalid(f"{where}: a bundle must be a JSON object")
    for key in ("name", "version"):
        if not isinstance(document.get(key), str) or not document[key]:
            raise AppInvalid(f"{where}: {key} must be a non-empty string")
    schema = document.get("schemaVersion")
    if schema is not None and not isinstance(schema, str):
        raise AppInvalid(f"{where}: schemaVersion must be a string")
    invocation = document.get("invocationImages")
    if invocation is not None and (not isinstance(invocation, list) or len(invocation) > 1):
        raise AppInvalid(
            f"{where}: invocationImages must be a list of at most one image (only one is supported)"
        )
    images = document.get("images")
    if images is None:
        return
    if not isinstance(images, dict):
        raise AppInvalid(f"{where}: images must be an object of component name to image")
    for name, image in images.items():
        if not isinstance(image, dict) or not isinstance(image.get("image"), str) or not image["image"]:
            raise AppInvalid(f"{where}: images.{name}.image must be a non-empty image reference")
        for key in ("contentDigest", "mediaType", "imageType"):
            if key in image and not isinstance(image[key], str):
                raise AppInvalid(f"{where}: images.{name}.{key} must be a string")
        if image.get("mediaType") and image["mediaType"] not in IMAGE_MEDIA_TYPES:
            raise AppInvalid(
                f"{where}: images.{name}.mediaType {image['mediaType']!r} is not a manifest type"
            )
    for key in ("maintainers", "keywords"):
        if key in document and not isinstance(document[key], list):
            raise AppInvalid(f"{where}: {key} must be a list")


def with_invocation_image(bundle: dict[str, Any], image: str) -> dict[str, Any]:
    """The bundle with ``image`` as its only invocation image (any other fields it had are dropped:
    they described an image that is not the one pushed)."""
    out = copy.deepcopy(bundle)
    previous = (out.get("invocationImages") or [{}])[0]
    entry: dict[str, Any] = {"imageType": "oci", "image": image}
    if isinstance(previous, dict) and isinstance(previous.get("labels"), dict):
        entry["labels"] = previous["labels"]
    out["invocationImages"] = [entry]
    out.setdefault("schemaVersion", SCHEMA_VERSION)
    return out


def component_images(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Component name -> its image object, sorted by name (cnab-to-oci's order)."""
    images = bundle.get("images") or {}
    return {name: images[name] for name in sorted(images)}


def _image_type(media_type: str) -> str:
    return "oci" if media_type in (mt.OCI_MANIFEST, mt.OCI_INDEX) else "docker"


def fix_image(image: dict[str, Any], resolved: Descriptor, keep_type: bool = False) -> None:
    """Record the manifest an image resolved to (cnab-to-oci's ``--auto-update-bundle``)."""
    image["contentDigest"] = resolved.digest
    image["size"] = resolved.size
    image["mediaType"] = resolved.media_type
    if not keep_type or not image.get("imageType"):
        image["imageType"] = _image_type(resolved.media_type)


def fixed_bundle(
    bundle: dict[str, Any], invocation: Descriptor | None, components: dict[str, Descriptor]
) -> dict[str, Any]:
    """A copy of ``bundle`` naming the digests, sizes and media types its images resolved to."""
    out = copy.deepcopy(bundle)
    images = out.get("images") or {}
    for name, descriptor in components.items():
        fix_image(images[name], descriptor, keep_type=True)
    if invocation is not None:
        fix_image(out["invocationImages"][0], invocation)
    return out


# --------------------------------------------------------------------------- OCI documents


def config_manifest(config_blob: bytes, config_media_type: str = mt.CNAB_CONFIG) -> bytes:
    """The image manifest wrapping the bundle config (cnab-to-oci's ``prepareOCIBundleConfig``)."""
    config = Descriptor(config_media_type, _sha256(config_blob), len(config_blob))
    return _json({"schemaVersion": 2, "config": config.as_json(), "layers": []})


def docker_config_manifest(config_blob: bytes) -> bytes:
    """The last fallback: Docker schema 2, the config repeated as the only layer."""
    config = Descriptor(mt.DOCKER_CONFIG, _sha256(config_blob), len(config_blob)).as_json()
    return _json({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST, "config": config, "layers": [config]})


def config_manifest_candidates(config_blob: bytes) -> list[tuple[bytes, str]]:
    """``(manifest, media type)`` in cnab-to-oci's fallback order."""
    return [
        (config_manifest(config_blob, mt.CNAB_CONFIG), mt.OCI_MANIFEST),
        (config_manifest(config_blob, mt.OCI_CONFIG), mt.OCI_MANIFEST),
        (docker_config_manifest(config_blob), mt.DOCKER_MANIFEST),
    ]


def index_annotations(bundle: dict[str, Any]) -> dict[str, str]:
    """cnab-to-oci's ``makeAnnotations``."""
    out = {
        cnab.ANN_RUNTIME_VERSION: str(bundle.get("schemaVersion") or ""),
        cnab.ANN_TITLE: str(bundle["name"]),
        cnab.ANN_VERSION: str(bundle["version"]),
        cnab.ANN_DESCRIPTION: str(bundle.get("description") or ""),
        cnab.ANN_ARTIFACT_TYPE: cnab.CNAB_MANIFEST_TYPE,
    }
    if bundle.get("maintainers") is not None:
        # Go marshals bundle.Maintainer as name, email, url (the last two omitted when empty).
        maintainers = [
            {k: m[k] for k in ("name", "email", "url") if isinstance(m, dict) and m.get(k)}
            for m in bundle["maintainers"]
        ]
        out[cnab.ANN_AUTHORS] = json.dumps(maintainers, separators=(",", ":"), ensure_ascii=False)
    if bundle.get("keywords") is not None:
        out[cnab.ANN_KEYWORDS] = json.dumps(bundle["keywords"], separators=(",", ":"), ensure_ascii=False)
    return out


def bundle_index(
    bundle: dict[str, Any],
    config: Descriptor,
    invocation: Descriptor,
    components: dict[str, Descriptor],
    docker_manifest_list: bool = False,
) -> bytes:
    """The bundle index (cnab-to-oci's ``ConvertBundleToOCIIndex``); with ``docker_manifest_list``,
    the same JSON marked as a Docker manifest list (its fallback for registries refusing an index)."""
    manifests = [
        config.as_json({cnab.ANN_MANIFEST_TYPE: cnab.ROLE_CONFIG}),
        invocation.as_json({cnab.ANN_MANIFEST_TYPE: cnab.ROLE_INVOCATION}),
    ]
    for name in sorted(components):
        manifests.append(
            components[name].as_json(
                {cnab.ANN_MANIFEST_TYPE: cnab.ROLE_COMPONENT, cnab.ANN_COMPONENT_NAME: name}
            )
        )
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "manifests": manifests,
        "annotations": dict(sorted(index_annotations(bundle).items())),
    }
    if docker_manifest_list:
        document["mediaType"] = mt.DOCKER_MANIFEST_LIST  # last, where Go's ociIndexWrapper puts it
    return _json(document)


def _json(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return str(compute(data))
