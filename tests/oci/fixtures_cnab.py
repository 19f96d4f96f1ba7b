"""Manifests for classification and CNAB tests, built in Python from the specs.

The CNAB fixtures follow the JSON *structure* cnab-to-oci emits (converter/convert.go, types.go
and its README example) in its two layouts:

* ``docker-app-2019``: what ``docker app push`` wrote in the DTR 2.7 era (cnab-to-oci before
  2019-08): ``io.docker.*`` index annotations, ``original_name`` on components, and a config
  blob that holds only ``schema_version``/``actions``/``parameters``/``credentials``/``custom``;
* ``bundle-json``: today's cnab-to-oci: the canonical ``bundle.json`` is the config blob.

Each fixture carries real digests over its own bytes, so the manifests parse and the bundle
config digests can be checked against the index.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from moorage.oci import cnab
from moorage.oci import mediatypes as mt
from moorage.oci.manifest import Manifest, parse_manifest

COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIG_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
SPDX_JSON = "application/spdx+json"
IN_TOTO = "application/vnd.in-toto+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(value: Any) -> bytes:
    """Canonical-ish JSON (sorted keys, no spaces), as cnab-go writes bundle.json."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def descriptor(media_type: str, content: bytes, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": media_type, "digest": digest_of(content), "size": len(content)}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


@dataclass(frozen=True)
class Built:
    """A manifest as a client would push it: bytes, media type, digest, plus its parsed form."""

    document: dict[str, Any]
    media_type: str
    config: dict[str, Any] | None = None  # the parsed config blob, as the service hands it to classify
    config_blob: bytes | None = None
    #: Layer blobs by digest, for tests that push the fixture through the registry.
    layers: dict[str, bytes] = field(default_factory=dict)
    #: The manifests an index lists, for tests that push the fixture through the registry.
    children: tuple[Built, ...] = ()

    @property
    def content(self) -> bytes:
        return json.dumps(self.document, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        return digest_of(self.content)

    @property
    def manifest(self) -> Manifest:
        return parse_manifest(self.content, self.media_type)

    def ref(self, **extra: Any) -> dict[str, Any]:
        """A descriptor of this manifest for an index."""
        return descriptor(self.media_type, self.content, **extra)


# --------------------------------------------------------------------------- images


def image_config(
    os_: str = "linux", arch: str = "amd64", variant: str | None = None, **extra: Any
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "architecture": arch,
        "os": os_,
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(f"{os_}/{arch}".encode())]},
    }
    if variant:
        cfg["variant"] = variant
    cfg.update(extra)
    return cfg


def image(
    os_: str = "linux",
    arch: str = "amd64",
    variant: str | None = None,
    *,
    docker: bool = False,
    config: dict[str, Any] | None = None,
    seed: str = "",
) -> Built:
    """A single-platform image: Docker schema 2 or OCI, one gzip layer."""
    cfg = config if config is not None else image_config(os_, arch, variant)
    blob = canonical(cfg)
    layer = f"layer {os_}/{arch}/{variant} {seed}".encode()
    if docker:
        doc = {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": descriptor(mt.DOCKER_CONFIG, blob),
            "layers": [descriptor(mt.DOCKER_LAYER_GZIP, layer)],
        }
        return Built(doc, mt.DOCKER_MANIFEST, cfg, blob, {digest_of(layer): layer})
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(mt.OCI_CONFIG, blob),
        "layers": [descriptor(mt.OCI_LAYER_GZIP, layer)],
    }
    return Built(doc, mt.OCI_MANIFEST, cfg, blob, {digest_of(layer): layer})


def platform_of(b: Built) -> dict[str, str]:
    assert b.config is not None
    plat = {"architecture": b.config["architecture"], "os": b.config["os"]}
    if b.config.get("variant"):
        plat["variant"] = b.config["variant"]
    return plat


def multi_arch(
    children: list[Built] | None = None, *, docker: bool = False, extra: list[dict[str, Any]] | None = None
) -> Built:
    """A Docker manifest list or OCI index of platform images (the golang:alpine shape)."""
    children = children or [image(docker=docker), image(arch="arm", variant="v6", docker=docker)]
    media_type = mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [c.ref(platform=platform_of(c)) for c in children] + list(extra or []),
    }
    return Built(doc, media_type, children=tuple(children))


def buildx_attestation() -> Built:
    """The attestation manifest buildx adds to an index (platform unknown/unknown in the index)."""
    cfg = {
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    statement = canonical(
        {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://slsa.dev/provenance/v0.2"}
    )
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(mt.OCI_CONFIG, canonical(cfg)),
        "layers": [
            descriptor(
                IN_TOTO,
                statement,
                annotations={"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
            )
        ],
    }
    return Built(doc, mt.OCI_MANIFEST, cfg)


def multi_arch_with_attestation() -> Built:
    amd, arm = image(), image(arch="arm64", variant="v8")
    att = buildx_attestation()
    extra = att.ref(
        platform={"architecture": "unknown", "os": "unknown"},
        annotations={
            "vnd.docker.reference.digest": amd.digest,
            "vnd.docker.reference.type": "attestation-manifest",
        },
    )
    return multi_arch([amd, arm], extra=[extra])


# --------------------------------------------------------------------------- plugins and artifacts


def docker_plugin() -> Built:
    """A managed Docker plugin (docker plugin push): schema 2 with the plugin config type."""
    cfg = {
        "Description": "a sample volume plugin",
        "Documentation": "https://docs.docker.com/engine/extend/",
        "Entrypoint": ["/plugin"],
        "Interface": {"Socket": "plugin.sock", "Types": ["docker.volumedriver/1.0"]},
        "Linux": {"Capabilities": ["CAP_SYS_ADMIN"], "AllowAllDevices": False, "Devices": None},
        "Network": {"Type": "host"},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(b"plugin rootfs")]},
    }
    blob = canonical(cfg)
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": descriptor(mt.DOCKER_PLUGIN_CONFIG, blob),
        "layers": [descriptor(mt.DOCKER_LAYER_GZIP, b"plugin rootfs")],
    }
    return Built(doc, mt.DOCKER_MANIFEST, cfg, blob, {digest_of(b"plugin rootfs"): b"plugin rootfs"})


def helm_chart() -> Built:
    cfg = {"apiVersion": "v2", "name": "moorage-demo", "version": "0.1.0", "type": "application"}
    blob = canonical(cfg)
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(HELM_CONFIG, blob),
        "layers": [descriptor(HELM_CHART, b"chart tarball")],
        "annotations": {"org.opencontainers.image.title": "moorage-demo"},
    }
    return Built(doc, mt.OCI_MANIFEST, cfg, blob, {digest_of(b"chart tarball"): b"chart tarball"})


def _simplesigning_payload(subject: Built) -> bytes:
    return canonical(
        {
            "critical": {
                "identity": {"docker-reference": "registry.example/lab/words"},
                "image": {"docker-manifest-digest": subject.digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    )


def cosign_signature_tag_layout(subject: Built) -> Built:
    """cosign's ``sha256-<hex>.sig`` tag: an image config with simplesigning layers."""
    cfg = {"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(mt.OCI_CONFIG, canonical(cfg)),
        "layers": [
            descriptor(
                COSIGN_SIMPLESIGNING,
                _simplesigning_payload(subject),
                annotations={"dev.cosignproject.cosign/signature": "MEUCIQDfake"},
            )
        ],
    }
    return Built(doc, mt.OCI_MANIFEST, cfg)


def cosign_signature_config_type(subject: Built) -> Built:
    """A signature whose config media type is the simplesigning type."""
    payload = _simplesigning_payload(subject)
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(COSIGN_SIMPLESIGNING, payload),
        "layers": [descriptor(COSIGN_SIMPLESIGNING, payload)],
    }
    return Built(doc, mt.OCI_MANIFEST)


def _empty_config() -> dict[str, Any]:
    return descriptor(mt.OCI_EMPTY, b"{}", data="e30=")


def cosign_signature_referrer(subject: Built) -> Built:
    """cosign with OCI 1.1 referrers: artifactType, empty config, subject."""
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": COSIGN_SIG_ARTIFACT,
        "config": _empty_config(),
        "layers": [descriptor(COSIGN_SIMPLESIGNING, _simplesigning_payload(subject))],
        "subject": subject.ref(),
    }
    payload = _simplesigning_payload(subject)
    return Built(doc, mt.OCI_MANIFEST, {}, b"{}", {digest_of(payload): payload})


def sbom_referrer(subject: Built) -> Built:
    """An SPDX SBOM attached with ``oras attach --artifact-type application/spdx+json``."""
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": SPDX_JSON,
        "config": _empty_config(),
        "layers": [descriptor(SPDX_JSON, canonical({"spdxVersion": "SPDX-2.3", "name": "words"}))],
        "subject": subject.ref(),
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }
    return Built(doc, mt.OCI_MANIFEST)


def in_toto_referrer(subject: Built) -> Built:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": IN_TOTO,
        "config": _empty_config(),
        "layers": [descriptor(IN_TOTO, b'{"_type":"https://in-toto.io/Statement/v1"}')],
        "subject": subject.ref(),
    }
    return Built(doc, mt.OCI_MANIFEST)


# --------------------------------------------------------------------------- CNAB bundles


@dataclass(frozen=True)
class CnabFixture:
    """Everything a CNAB push puts in a repository, children first."""

    layout: str
    index: Built
    config_manifest: Built
    config_blob: bytes
    invocation: Built
    components: dict[str, Built] = field(default_factory=dict)

    @property
    def bundle_config(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.config_blob)
        return parsed

    def with_index(self, document: dict[str, Any]) -> CnabFixture:
        """The same push with an edited index document."""
        media_type = document.get("mediaType") or self.index.media_type
        return CnabFixture(
            self.layout,
            Built(document, media_type),
            self.config_manifest,
            self.config_blob,
            self.invocation,
            self.components,
        )

    def index_document(self) -> dict[str, Any]:
        return copy.deepcopy(self.index.document)


def _config_manifest(blob: bytes, fallback: str, *, layers_null: bool) -> Built:
    """The manifest wrapping the bundle config, as each step of cnab-to-oci's fallback chain writes it."""
    if fallback == "docker":
        cfg_desc = descriptor(mt.DOCKER_CONFIG, blob)
        doc = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST, "config": cfg_desc, "layers": [cfg_desc]}
        return Built(doc, mt.DOCKER_MANIFEST, json.loads(blob), blob)
    config_type = {"cnab": mt.CNAB_CONFIG, "cnab-spec": mt.CNAB_BUNDLE_CONFIG, "oci": mt.OCI_CONFIG}[fallback]
    oci_doc: dict[str, Any] = {"schemaVersion": 2, "config": descriptor(config_type, blob)}
    oci_doc["layers"] = None if layers_null else []
    return Built(oci_doc, mt.OCI_MANIFEST, json.loads(blob), blob)


def _bundle_image(role_image: str, built: Built, image_type: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "contentDigest": built.digest,
        "image": role_image,
        "imageType": image_type,
        "mediaType": built.media_type,
        "size": len(built.content),
    }
    out.update(extra)
    return out


def bundle_json_bundle(*, config_fallback: str = "cnab", docker_list: bool = False) -> CnabFixture:
    """Today's cnab-to-oci layout: the whole bundle.json is the config blob."""
    invocation = image(docker=True, seed="invocation")
    components = {
        "another-image": image(seed="another-image"),
        "image-1": multi_arch([image(seed="image-1"), image(arch="arm64", variant="v8", seed="image-1")]),
    }
    bundle = {
        "schemaVersion": "v1.0.0",
        "name": "my-app",
        "version": "0.1.0",
        "description": "description",
        "keywords": ["keyword1", "keyword2"],
        "maintainers": [{"email": "docker@docker.com", "name": "docker", "url": "docker.com"}],
        "invocationImages": [_bundle_image("my.registry/namespace/my-app-invoc", invocation, "docker")],
        "images": {
            "another-image": _bundle_image(
                "my.registry/namespace/another-image",
                components["another-image"],
                "oci",
                description="a service",
            ),
            "image-1": _bundle_image("my.registry/namespace/image-1", components["image-1"], "oci"),
        },
        "actions": {"action-1": {"modifies": True}},
        "credentials": {"cred-1": {"env": "env-var", "path": "/some/path"}},
        "definitions": {
            "param1Type": {
                "default": "hello",
                "enum": ["value1", True, 1],
                "type": ["string", "boolean", "number"],
            },
            "numberType": {"default": 0.5, "type": "number"},
            "output1Type": {"type": "string"},
        },
        "parameters": {
            "param1": {"definition": "param1Type", "destination": {"env": "env_var", "path": "/some/path"}},
            "param2": {"definition": "numberType", "destination": {"env": "PARM2"}, "required": True},
        },
        "outputs": {
            "output1": {
                "applyTo": ["install"],
                "definition": "output1Type",
                "description": "magic",
                "path": "/cnab/app/outputs/magic",
            }
        },
        "custom": {"my-key": "my-value"},
    }
    blob = canonical(bundle)
    config_manifest = _config_manifest(blob, config_fallback, layers_null=True)
    manifests = [
        config_manifest.ref(annotations={cnab.ANN_MANIFEST_TYPE: "config"}),
        invocation.ref(annotations={cnab.ANN_MANIFEST_TYPE: "invocation"}),
    ]
    for name in sorted(components):
        manifests.append(
            components[name].ref(
                annotations={cnab.ANN_MANIFEST_TYPE: "component", cnab.ANN_COMPONENT_NAME: name}
            )
        )
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "manifests": manifests,
        "annotations": {
            cnab.ANN_RUNTIME_VERSION: "v1.0.0",
            cnab.ANN_TITLE: "my-app",
            cnab.ANN_VERSION: "0.1.0",
            cnab.ANN_DESCRIPTION: "description",
            cnab.ANN_AUTHORS: json.dumps(bundle["maintainers"], separators=(",", ":")),
            cnab.ANN_KEYWORDS: '["keyword1","keyword2"]',
            cnab.ANN_ARTIFACT_TYPE: cnab.CNAB_MANIFEST_TYPE,
        },
    }
    if docker_list:  # cnab-to-oci re-pushes the same JSON as a manifest list when an index is refused
        index["mediaType"] = mt.DOCKER_MANIFEST_LIST
    media_type = mt.DOCKER_MANIFEST_LIST if docker_list else mt.OCI_INDEX
    return CnabFixture(
        cnab.LAYOUT_BUNDLE_JSON, Built(index, media_type), config_manifest, blob, invocation, components
    )


def docker_app_bundle(*, config_fallback: str = "cnab", docker_list: bool = False) -> CnabFixture:
    """What ``docker app push`` (cnab-to-oci 2019-06) sent to DTR 2.7."""
    invocation = image(docker=True, seed="hello-world:0.1.0-invoc")
    components = {"api": image(docker=True, seed="python:3.6"), "web": multi_arch(docker=True)}
    originals = {"api": "python:3.6", "web": "nginx:1.17"}
    config = {
        "schema_version": "v1.0.0-WD",
        "actions": {
            "com.docker.app.inspect": {"stateless": True},
            "com.docker.app.render": {"stateless": True},
            "com.docker.app.status": {},
        },
        "parameters": {
            "com.docker.app.orchestrator": {
                "type": "string",
                "default": "",
                "allowedValues": ["", "swarm", "kubernetes"],
                "destination": {"env": "DOCKER_STACK_ORCHESTRATOR"},
                "metadata": {"description": "Orchestrator on which to deploy"},
                "apply-to": ["install", "upgrade", "uninstall"],
            },
            "port": {"type": "string", "default": "8080", "destination": {"env": "docker_param1"}},
        },
        "credentials": {
            "com.docker.app.registry-creds": {"path": "/cnab/app/registry-creds.json"},
            "docker.context": {"path": "/cnab/app/context.dockercontext"},
        },
        "custom": {"com.docker.app": {"version": "v0.8.0"}},
    }
    blob = json.dumps(config, separators=(",", ":")).encode()  # encoding/json order, not canonical
    config_manifest = _config_manifest(blob, config_fallback, layers_null=False)
    manifests = [
        config_manifest.ref(annotations={cnab.ANN_MANIFEST_TYPE: "config"}),
        invocation.ref(annotations={cnab.ANN_MANIFEST_TYPE: "invocation"}),
    ]
    for name, built in components.items():  # Go map order: unsorted before 2019-06-24
        manifests.append(
            built.ref(
                annotations={
                    cnab.ANN_MANIFEST_TYPE: "component",
                    cnab.ANN_COMPONENT_NAME: name,
                    cnab.ANN_ORIGINAL_NAME: originals[name],
                }
            )
        )
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "manifests": manifests,
        "annotations": {
            cnab.ANN_DOCKER_APP_FORMAT: "cnab",
            cnab.ANN_DOCKER_TYPE: "app",
            cnab.ANN_RUNTIME_VERSION: "v1.0.0-WD",
            cnab.ANN_TITLE: "hello-world",
            cnab.ANN_VERSION: "0.1.0",
            cnab.ANN_DESCRIPTION: "Hello, World!",
            cnab.ANN_AUTHORS: '[{"name":"dev","email":"dev@example.com"}]',
            cnab.ANN_ARTIFACT_TYPE: cnab.CNAB_MANIFEST_TYPE,
        },
    }
    if docker_list:
        index["mediaType"] = mt.DOCKER_MANIFEST_LIST
    media_type = mt.DOCKER_MANIFEST_LIST if docker_list else mt.OCI_INDEX
    return CnabFixture(
        cnab.LAYOUT_DOCKER_APP_2019, Built(index, media_type), config_manifest, blob, invocation, components
    )
