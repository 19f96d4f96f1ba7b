"""CNAB bundles as cnab-to-oci stores them: the bundle index and the bundle config blob.

A bundle is an OCI image index (or, when a registry refuses the index, the same JSON pushed as a
Docker manifest list) whose children are, in this order:

* one *config* manifest (``io.cnab.manifest.type: config``): an image manifest whose config
  blob holds the bundle description;
* one *invocation* image (``io.cnab.manifest.type: invocation``), the installer;
* zero or more *component* images (``io.cnab.manifest.type: component`` plus
  ``io.cnab.component.name``), each an image manifest or a multi-arch list.

Two layouts exist and both are read here:

``docker-app-2019``
    written by ``docker app push`` (cnab-to-oci before August 2019, what DTR 2.7 received).
    The index carries ``io.docker.app.format: cnab`` and ``io.docker.type: app``; name,
    version, description, maintainers and keywords live in the index annotations; components
    carry ``io.cnab.component.original_name``; the config blob is only
    ``{"schema_version", "actions", "parameters", "credentials", "custom"}``.
``bundle-json``
    today's cnab-to-oci: the config blob is the whole canonical ``bundle.json`` and the index
    annotations are a copy of some of its fields.

The config manifest's config media type is ``application/vnd.cnab.config.v1+json`` (what
cnab-to-oci writes), ``application/vnd.cnab.bundle.config.v1+json`` (what the CNAB spec names),
or, through cnab-to-oci's fallback chain, a plain OCI or Docker image config type (the Docker
fallback also repeats the config blob as its only layer).

Everything here is pure: the service fetches the config manifest and blob and hands them in.
Bad input raises ``ManifestInvalid`` with a message that names the problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from moorage.oci import mediatypes as mt
from moorage.oci.errors import ManifestInvalid
from moorage.oci.manifest import Descriptor, Manifest, Platform

#: ``org.opencontainers.artifactType`` value (and image-spec 1.1 ``artifactType``) of a bundle index.
CNAB_MANIFEST_TYPE = "application/vnd.cnab.manifest.v1"
#: Config media types that name a CNAB bundle config outright.
CNAB_CONFIG_TYPES = frozenset({mt.CNAB_CONFIG, mt.CNAB_BUNDLE_CONFIG})
#: Every type that marks an index as a bundle when found in ``artifactType`` or its annotation.
BUNDLE_ARTIFACT_TYPES = CNAB_CONFIG_TYPES | {CNAB_MANIFEST_TYPE}

# Index-level annotations.
ANN_ARTIFACT_TYPE = "org.opencontainers.artifactType"
ANN_DOCKER_APP_FORMAT = "io.docker.app.format"
ANN_DOCKER_TYPE = "io.docker.type"
ANN_RUNTIME_VERSION = "io.cnab.runtime_version"
ANN_KEYWORDS = "io.cnab.keywords"
ANN_TITLE = "org.opencontainers.image.title"
ANN_VERSION = "org.opencontainers.image.version"
ANN_DESCRIPTION = "org.opencontainers.image.description"
ANN_AUTHORS = "org.opencontainers.image.authors"

# Descriptor-level annotations.
ANN_MANIFEST_TYPE = "io.cnab.manifest.type"
ANN_COMPONENT_NAME = "io.cnab.component.name"
ANN_ORIGINAL_NAME = "io.cnab.component.original_name"

ROLE_CONFIG = "config"
ROLE_INVOCATION = "invocation"
ROLE_COMPONENT = "component"
ROLES = (ROLE_CONFIG, ROLE_INVOCATION, ROLE_COMPONENT)

LAYOUT_DOCKER_APP_2019 = "docker-app-2019"
LAYOUT_BUNDLE_JSON = "bundle-json"

_IMAGE_CONFIG_TYPES = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})


def _fail(message: str) -> ManifestInvalid:
    return ManifestInvalid(f"manifest invalid: {message}", {"reason": message})


# --------------------------------------------------------------------------- the index


@dataclass(frozen=True, slots=True)
class BundleIndex:
    """The structure of a bundle index: which child is the config, the invocation image, the components."""

    config: Descriptor
    invocation: Descriptor
    #: Component name -> descriptor, in index order.
    components: dict[str, Descriptor]
    #: ``docker-app-2019`` when the index carries the ``io.docker.*`` annotations, else ``bundle-json``
    #: (the config blob decides for certain; see ``build_bundle``).
    layout: str
    runtime_version: str | None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def component_digests(self) -> tuple[str, ...]:
        return tuple(d.digest for d in self.components.values())


def is_docker_app_index(manifest: Manifest) -> bool:
    ann = manifest.annotations
    return ann.get(ANN_DOCKER_APP_FORMAT) == "cnab" or ann.get(ANN_DOCKER_TYPE) == "app"


def is_bundle_index(manifest: Manifest) -> bool:
    """Whether an index (OCI index or Docker manifest list) says it is a CNAB bundle.

    Any one signal is a claim: the docker-app annotations, ``io.cnab.runtime_version``, a CNAB
    ``artifactType`` (field or ``org.opencontainers.artifactType`` annotation), or a child
    descriptor carrying ``io.cnab.manifest.type``. Image manifests are never bundles.
    """
    if not manifest.is_index:
        return False
    ann = manifest.annotations
    if is_docker_app_index(manifest) or ANN_RUNTIME_VERSION in ann:
        return True
    if manifest.artifact_type in BUNDLE_ARTIFACT_TYPES or ann.get(ANN_ARTIFACT_TYPE) in BUNDLE_ARTIFACT_TYPES:
        return True
    return any(ANN_MANIFEST_TYPE in d.annotations for d in manifest.manifests)


def parse_bundle_index(manifest: Manifest) -> BundleIndex:
    """Validate the structure of a bundle index; raise ``ManifestInvalid`` naming what is wrong.

    Rules (those cnab-to-oci writes and reads): every child has ``io.cnab.manifest.type`` of
    ``config``, ``invocation`` or ``component``; exactly one config, itself an image manifest;
    exactly one invocation image; every component has a unique ``io.cnab.component.name``.
    """
    if not manifest.is_index:
        raise _fail(f"a CNAB bundle must be an image index or manifest list, not {manifest.media_type}")
    configs: list[Descriptor] = []
    invocations: list[Descriptor] = []
    components: dict[str, Descriptor] = {}
    for i, d in enumerate(manifest.manifests):
        where = f"bundle index manifests[{i}] ({d.digest})"
        if d.media_type not in mt.MANIFEST_TYPES:
            raise _fail(f"{where} has media type {d.media_type!r}; a bundle references only manifests")
        role = d.annotations.get(ANN_MANIFEST_TYPE)
        if role is None:
            raise _fail(f"{where} has no {ANN_MANIFEST_TYPE} annotation (config, invocation or component)")
        if role == ROLE_CONFIG:
            if d.media_type not in mt.IMAGE_MANIFESTS:
                raise _fail(f"{where}: the bundle config must be an image manifest, not {d.media_type}")
            configs.append(d)
        elif role == ROLE_INVOCATION:
            invocations.append(d)
        elif role == ROLE_COMPONENT:
            name = d.annotations.get(ANN_COMPONENT_NAME)
            if not name:
                raise _fail(f"{where} is a component without an {ANN_COMPONENT_NAME} annotation")
            if name in components:
                raise _fail(f"{where}: component name {name!r} appears twice")
            components[name] = d
        else:
            raise _fail(f"{where} has {ANN_MANIFEST_TYPE}={role!r}; expected one of {', '.join(ROLES)}")
    if not configs:
        raise _fail(f"the bundle index has no config descriptor ({ANN_MANIFEST_TYPE}=config)")
    if len(configs) > 1:
        raise _fail(f"the bundle index has {len(configs)} config descriptors; exactly one is allowed")
    if len(invocations) != 1:
        raise _fail(
            f"the bundle index has {len(invocations)} invocation images; exactly one is supported "
            f"({ANN_MANIFEST_TYPE}=invocation)"
        )
    return BundleIndex(
        config=configs[0],
        invocation=invocations[0],
        components=components,
        layout=LAYOUT_DOCKER_APP_2019 if is_docker_app_index(manifest) else LAYOUT_BUNDLE_JSON,
        runtime_version=manifest.annotations.get(ANN_RUNTIME_VERSION),
        annotations=dict(manifest.annotations),
    )


def config_blob_descriptor(config_manifest: Manifest) -> Descriptor:
    """The descriptor of the bundle config blob inside the config manifest the index points at."""
    if config_manifest.is_index or config_manifest.config is None:
        raise _fail("the bundle config descriptor must point at an image manifest with a config blob")
    cfg = config_manifest.config
    if cfg.media_type not in CNAB_CONFIG_TYPES | _IMAGE_CONFIG_TYPES:
        raise _fail(f"the bundle config manifest has config media type {cfg.media_type!r}, not a CNAB config")
    return cfg


def is_bundle_config_manifest(manifest: Manifest, config: Mapping[str, Any] | None) -> bool:
    """An image manifest wrapping a bundle config, in any of cnab-to-oci's fallback forms."""
    if manifest.is_index or manifest.config is None:
        return False
    cfg = manifest.config
    if cfg.media_type in CNAB_CONFIG_TYPES:
        return True
    if cfg.media_type not in _IMAGE_CONFIG_TYPES or config is None:
        return False
    # Fallbacks put the bundle behind an image config type: no layers, or the config repeated.
    if any(layer.digest != cfg.digest for layer in manifest.layers):
        return False
    return looks_like_bundle_config(config)


def looks_like_bundle_config(config: Mapping[str, Any]) -> bool:
    """Whether a parsed config blob is a bundle (either layout) rather than an image config."""
    if "rootfs" in config:
        return False
    if isinstance(config.get("invocationImages"), list) and isinstance(config.get("name"), str):
        return True
    return isinstance(config.get("schema_version"), str) and (
        "parameters" in config or "credentials" in config
    )


# --------------------------------------------------------------------------- the bundle


@dataclass(frozen=True, slots=True)
class Maintainer:
    name: str
    email: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class BundleImage:
    """An invocation image or a component image, as the bundle and its index describe it."""

    role: str  # "invocation" or "component"
    name: str | None  # component name; None for the invocation image
    digest: str | None  # the manifest in this repository (from the index)
    media_type: str | None
    size: int | None
    original_reference: str | None  # where the image came from (``image`` / ``original_name``)
    image_type: str | None = None  # "docker" or "oci"
    description: str | None = None
    platforms: tuple[Platform, ...] = ()


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: str | None
    default: Any
    required: bool
    description: str | None
    env: str | None
    path: str | None
    apply_to: tuple[str, ...] = ()
    definition: str | None = None


@dataclass(frozen=True, slots=True)
class Credential:
    name: str
    env: str | None
    path: str | None
    description: str | None = None
    required: bool = False
    apply_to: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Bundle:
    layout: str  # LAYOUT_DOCKER_APP_2019 or LAYOUT_BUNDLE_JSON
    schema_version: str | None
    name: str
    version: str
    description: str | None
    keywords: tuple[str, ...]
    maintainers: tuple[Maintainer, ...]
    license: str | None
    invocation_images: tuple[BundleImage, ...]
    components: tuple[BundleImage, ...]
    parameters: tuple[Parameter, ...]
    credentials: tuple[Credential, ...]
    actions: tuple[str, ...]
    #: The parsed config blob as stored (for display); never interpreted further.
    document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def invocation_digests(self) -> tuple[str, ...]:
        return tuple(i.digest for i in self.invocation_images if i.digest)

    @property
    def component_digests(self) -> tuple[str, ...]:
        return tuple(c.digest for c in self.components if c.digest)


@dataclass(frozen=True, slots=True)
class BundleConfig:
    """A parsed config blob, before it is joined with its index."""

    layout: str
    document: dict[str, Any]


def parse_bundle_config(data: bytes | Mapping[str, Any]) -> BundleConfig:
    """Parse a bundle config blob and tell its layout; raise ``ManifestInvalid`` if it is not one."""
    if isinstance(data, bytes | bytearray):
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _fail(f"the bundle config blob is not valid JSON ({exc})") from None
    else:
        document = dict(data)
    if not isinstance(document, dict):
        raise _fail("the bundle config blob must be a JSON object")
    if "invocationImages" in document or "schemaVersion" in document:
        return BundleConfig(LAYOUT_BUNDLE_JSON, document)
    if "schema_version" in document:
        if not isinstance(document["schema_version"], str):
            raise _fail("the docker-app bundle config's schema_version must be a string")
        return BundleConfig(LAYOUT_DOCKER_APP_2019, document)
    raise _fail(
        "the bundle config blob is not a CNAB bundle: expected a bundle.json "
        "(schemaVersion, name, version, invocationImages) or a docker-app bundle config (schema_version)"
    )


def build_bundle(index: BundleIndex, config: bytes | Mapping[str, Any] | BundleConfig) -> Bundle:
    """Join a bundle index with its config blob into a ``Bundle``, checking they agree.

    For ``bundle-json``: each component in the index must be an image of the bundle and every
    bundle image must be in the index, with the same digest where the bundle records one; the
    invocation image likewise. For ``docker-app-2019`` the index is the only source of names,
    versions and images, so it must carry the title and version annotations.
    """
    parsed = config if isinstance(config, BundleConfig) else parse_bundle_config(config)
    if parsed.layout == LAYOUT_DOCKER_APP_2019:
        return _docker_app_bundle(index, parsed.document)
    return _bundle_json_bundle(index, parsed.document)


def _docker_app_bundle(index: BundleIndex, doc: dict[str, Any]) -> Bundle:
    ann = index.annotations
    name, version = ann.get(ANN_TITLE), ann.get(ANN_VERSION)
    if not name:
        raise _fail(f"the docker-app bundle index is missing the {ANN_TITLE} annotation")
    if not version:
        raise _fail(f"the docker-app bundle index is missing the {ANN_VERSION} annotation")
    invocation = _image_from_descriptor(ROLE_INVOCATION, None, index.invocation, None)
    components = tuple(
        _image_from_descriptor(ROLE_COMPONENT, n, d, d.annotations.get(ANN_ORIGINAL_NAME) or None)
        for n, d in index.components.items()
    )
    return Bundle(
        layout=LAYOUT_DOCKER_APP_2019,
        schema_version=doc["schema_version"],
        name=name,
        version=version,
        description=ann.get(ANN_DESCRIPTION) or None,
        keywords=_json_strings(ann.get(ANN_KEYWORDS), ANN_KEYWORDS),
        maintainers=_maintainers_annotation(ann.get(ANN_AUTHORS)),
        license=None,
        invocation_images=(invocation,),
        components=components,
        parameters=_parameters(doc.get("parameters"), {}),
        credentials=_credentials(doc.get("credentials")),
        actions=_actions(doc.get("actions")),
        document=doc,
    )


def _bundle_json_bundle(index: BundleIndex, doc: dict[str, Any]) -> Bundle:
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not name:
        raise _fail("the bundle.json needs a non-empty string name")
    if not isinstance(version, str) or not version:
        raise _fail("the bundle.json needs a non-empty string version")
    schema_version = doc.get("schemaVersion")
    if schema_version is not None and not isinstance(schema_version, str):
        raise _fail("the bundle.json schemaVersion must be a string")
    description = _opt_str(doc.get("description"), "description")
    license_ = _opt_str(doc.get("license"), "license")

    invocation_docs = doc.get("invocationImages")
    if not isinstance(invocation_docs, list):
        raise _fail("the bundle.json needs an invocationImages array")
    if len(invocation_docs) != 1:
        raise _fail(f"the bundle.json has {len(invocation_docs)} invocation images; exactly one is supported")
    inv_doc = _object(invocation_docs[0], "invocationImages[0]")
    _check_digest(inv_doc, index.invocation, "the invocation image")
    invocation = _image_from_json(ROLE_INVOCATION, None, inv_doc, index.invocation)

    images = doc.get("images")
    if images is None:
        images = {}
    if not isinstance(images, dict):
        raise _fail("the bundle.json images must be an object of component name to image")
    for comp in index.components:
        if comp not in images:
            raise _fail(f"component {comp!r} in the bundle index is not an image of the bundle.json")
    components: list[BundleImage] = []
    for comp, value in sorted(images.items()):
        img = _object(value, f"images.{comp}")
        desc = index.components.get(comp)
        if desc is None:
            raise _fail(f"image {comp!r} of the bundle.json has no component descriptor in the bundle index")
        _check_digest(img, desc, f"component {comp!r}")
        components.append(_image_from_json(ROLE_COMPONENT, comp, img, desc))

    definitions = doc.get("definitions")
    return Bundle(
        layout=LAYOUT_BUNDLE_JSON,
        schema_version=schema_version or index.runtime_version,
        name=name,
        version=version,
        description=description,
        keywords=_strings(doc.get("keywords"), "keywords"),
        maintainers=_maintainers(doc.get("maintainers"), "maintainers"),
        license=license_,
        invocation_images=(invocation,),
        components=tuple(components),
        parameters=_parameters(doc.get("parameters"), definitions if isinstance(definitions, dict) else {}),
        credentials=_credentials(doc.get("credentials")),
        actions=_actions(doc.get("actions")),
        document=doc,
    )


def _check_digest(image: Mapping[str, Any], desc: Descriptor, what: str) -> None:
    # ``contentDigest`` since bundle.json became the config (2019-08); the older ``digest`` field
    # never reached a registry in a config blob and may hold another kind of hash, so it is ignored.
    recorded = image.get("contentDigest")
    if recorded is None or recorded == "":
        return
    if not isinstance(recorded, str):
        raise _fail(f"{what}: contentDigest must be a string")
    if recorded != desc.digest:
        raise _fail(f"{what} has digest {recorded} in the bundle.json but {desc.digest} in the bundle index")


def _image_from_descriptor(
    role: str, name: str | None, desc: Descriptor, original: str | None
) -> BundleImage:
    return BundleImage(
        role=role,
        name=name,
        digest=desc.digest,
        media_type=desc.media_type,
        size=desc.size,
        original_reference=original,
        image_type=_image_type(desc.media_type),
        platforms=(desc.platform,) if desc.platform else (),
    )


def _image_from_json(role: str, name: str | None, img: Mapping[str, Any], desc: Descriptor) -> BundleImage:
    where = f"images.{name}" if name else "invocationImages[0]"
    original = _opt_str(img.get("originalImage"), f"{where}.originalImage") or _opt_str(
        img.get("image"), f"{where}.image"
    )
    platforms: list[Platform] = []
    plat = img.get("platform")
    if (
        isinstance(plat, dict)
        and isinstance(plat.get("os"), str)
        and isinstance(plat.get("architecture"), str)
    ):
        platforms.append(Platform(plat["os"], plat["architecture"]))
    if desc.platform is not None and desc.platform not in platforms:
        platforms.append(desc.platform)
    return BundleImage(
        role=role,
        name=name,
        digest=desc.digest,
        media_type=desc.media_type,
        size=desc.size,
        original_reference=original,
        image_type=_opt_str(img.get("imageType"), f"{where}.imageType") or _image_type(desc.media_type),
        description=_opt_str(img.get("description"), f"{where}.description"),
        platforms=tuple(platforms),
    )


def _image_type(media_type: str) -> str:
    return "oci" if media_type in (mt.OCI_MANIFEST, mt.OCI_INDEX) else "docker"


def _parameters(value: Any, definitions: Mapping[str, Any]) -> tuple[Parameter, ...]:
    """Parameters in either layout: 2019 inline definitions or today's ``definition`` references."""
    out = []
    for name, p in sorted(_object(value, "parameters").items()):
        p = _object(p, f"parameters.{name}")
        dest = _object(p.get("destination"), f"parameters.{name}.destination")
        definition = _opt_str(p.get("definition"), f"parameters.{name}.definition")
        schema: Mapping[str, Any] = p
        if definition is not None:
            found = definitions.get(definition)
            if not isinstance(found, dict):
                raise _fail(f"parameter {name!r} refers to definition {definition!r}, which the bundle lacks")
            schema = found
        type_ = schema.get("type")
        if isinstance(type_, list):
            type_ = "|".join(str(t) for t in type_)
        metadata = p.get("metadata")
        description = p.get("description") or (
            metadata.get("description") if isinstance(metadata, dict) else None
        )
        out.append(
            Parameter(
                name=name,
                type=type_ if isinstance(type_, str) else None,
                default=schema.get("default", schema.get("defaultValue")),
                required=p.get("required") is True,
                description=description if isinstance(description, str) else None,
                env=_opt_str(dest.get("env"), f"parameters.{name}.destination.env"),
                path=_opt_str(dest.get("path"), f"parameters.{name}.destination.path"),
                apply_to=_strings(p.get("applyTo", p.get("apply-to")), f"parameters.{name}.applyTo"),
                definition=definition,
            )
        )
    return tuple(out)


def _credentials(value: Any) -> tuple[Credential, ...]:
    out = []
    for name, c in sorted(_object(value, "credentials").items()):
        c = _object(c, f"credentials.{name}")
        out.append(
            Credential(
                name=name,
                env=_opt_str(c.get("env"), f"credentials.{name}.env"),
                path=_opt_str(c.get("path"), f"credentials.{name}.path"),
                description=_opt_str(c.get("description"), f"credentials.{name}.description"),
                required=c.get("required") is True,
                apply_to=_strings(c.get("applyTo"), f"credentials.{name}.applyTo"),
            )
        )
    return tuple(out)


def _actions(value: Any) -> tuple[str, ...]:
    return tuple(sorted(_object(value, "actions")))


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(f"bundle {where} must be an object")
    return value


def _opt_str(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _fail(f"bundle {where} must be a string")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(f"bundle {where} must be an array of strings")
    return tuple(value)


def _json_strings(value: str | None, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    try:
        parsed = json.loads(value)
    except ValueError:
        raise _fail(f"the {where} annotation is not a JSON array of strings") from None
    return _strings(parsed, where)


def _maintainers(value: Any, where: str) -> tuple[Maintainer, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(f"bundle {where} must be an array")
    out = []
    for i, m in enumerate(value):
        m = _object(m, f"{where}[{i}]")
        name = m.get("name")
        if not isinstance(name, str) or not name:
            raise _fail(f"bundle {where}[{i}] needs a name")
        out.append(
            Maintainer(
                name,
                _opt_str(m.get("email"), f"{where}[{i}].email"),
                _opt_str(m.get("url"), f"{where}[{i}].url"),
            )
        )
    return tuple(out)


def _maintainers_annotation(value: str | None) -> tuple[Maintainer, ...]:
    if value is None:
        return ()
    try:
        parsed = json.loads(value)
    except ValueError:
        raise _fail(f"the {ANN_AUTHORS} annotation is not a JSON array of maintainers") from None
    return _maintainers(parsed, ANN_AUTHORS)
