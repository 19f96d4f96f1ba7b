"""``moorage app push``: a docker-app directory or a bundle.json into a registry, as ``docker app
push`` (cnab-to-oci) did.

The order keeps the promise that a failure leaves no tag behind:

1. resolve every component image (and ``--base``) in the registry: an image that cannot be
   resolved fails here, with docker-app's message, before anything is written;
2. copy or mount the components into the target repository, by digest (untagged);
3. build the invocation image and push it as ``TAG-invoc`` (the first tag);
4. push the bundle config (the whole bundle.json, naming every digest) and its manifest, by digest;
5. push the bundle index as ``TAG``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moorage.client import bundle as bundles
from moorage.client.dockerapp import AppInvalid, load_docker_app, read_file
from moorage.client.invocation import (
    DEFAULT_PLATFORM,
    BaseImage,
    LayerDescriptor,
    build_invocation_image,
    layer_files,
)
from moorage.client.progress import Reporter
from moorage.client.references import ImageRef, ReferenceInvalid, parse_image_ref
from moorage.client.registries import Registries
from moorage.client.registry import ClientError, RegistryClient
from moorage.client.transfer import copy_blob, copy_manifest
from moorage.oci import mediatypes as mt
from moorage.oci.digest import compute
from moorage.oci.errors import RegistryError
from moorage.oci.manifest import Manifest, Platform, parse_manifest

INVOCATION_SUFFIX = "-invoc"
#: Statuses with which a registry refuses a manifest's type or shape (cnab-to-oci then falls back).
_REFUSED = (400, 415)


class AppPushError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class AppSource:
    """What to push: the bundle (its invocation image not yet known) and the files for /cnab/app."""

    origin: Path
    bundle: dict[str, Any]
    files: dict[str, bytes]
    #: Subdirectory of /cnab/app holding ``files`` (``NAME.dockerapp``); ``None`` for /cnab/app itself.
    directory: str | None


def load_app_source(argument: str | Path) -> AppSource:
    """A docker-app directory (``hello.dockerapp`` or ``hello``) or a CNAB ``bundle.json`` file.

    For a bundle.json, the files of a ``cnab/app/`` directory beside it (CNAB's build layout) go
    into the invocation image too. Raises ``AppInvalid`` naming the file (and line).
    """
    path = Path(argument)
    if path.is_file():
        if path.suffix != ".json":
            raise AppInvalid(
                f"{path}: expected a docker-app directory (NAME.dockerapp/) or a bundle.json file"
            )
        document = bundles.load_bundle_file(path)
        files: dict[str, bytes] = {}
        app_dir = path.parent / "cnab" / "app"
        if app_dir.is_dir():
            for file in sorted(app_dir.rglob("*")):
                if file.is_file() and not file.is_symlink():
                    files[file.relative_to(app_dir).as_posix()] = read_file(file)
        files.pop("bundle.json", None)
        return AppSource(path, document, files, None)
    app = load_docker_app(path)
    return AppSource(app.path, bundles.docker_app_bundle(app, ""), app.files, app.directory_name)


@dataclass(frozen=True, slots=True)
class Resolved:
    """An image found in a registry."""

    ref: ImageRef
    client: RegistryClient
    content: bytes
    media_type: str
    digest: str

    @property
    def descriptor(self) -> bundles.Descriptor:
        return bundles.Descriptor(self.media_type, self.digest, len(self.content))


@dataclass(frozen=True, slots=True)
class PushResult:
    reference: ImageRef
    digest: str
    invocation: ImageRef
    invocation_digest: str
    components: dict[str, bundles.Descriptor]
    bundle: dict[str, Any]
    config_media_type: str
    index_media_type: str


def invocation_reference(target: ImageRef) -> ImageRef:
    """``TAG-invoc`` (``latest-invoc`` for an untagged target), as docker-app named it."""
    return target.with_tag(f"{target.tag or 'latest'}{INVOCATION_SUFFIX}")


def _cause(ref: ImageRef, exc: ClientError) -> str:
    if exc.status == 404:
        return f"{ref}: not found"
    return str(exc)


def fixup_error(target: ImageRef, ref: ImageRef | str, cause: str) -> AppPushError:
    return AppPushError(
        f'fixing up "{target}" for push: failed to resolve "{ref}", '
        f"push the image to the registry before pushing the bundle: {cause}"
    )


async def resolve(registries: Registries, ref: ImageRef) -> Resolved:
    client = registries.client(ref.host)
    content, media_type, digest = await client.get_manifest(ref.repository, ref.reference)
    if media_type not in mt.MANIFEST_TYPES:
        try:
            media_type = parse_manifest(content, media_type).media_type
        except RegistryError as exc:
            raise ClientError(f"{ref} is not an image: {exc.message}") from None
    return Resolved(ref, client, content, media_type, digest)


async def resolve_components(
    registries: Registries, target: ImageRef, bundle: dict[str, Any]
) -> dict[str, Resolved]:
    out: dict[str, Resolved] = {}
    for name, image in bundles.component_images(bundle).items():
        try:
            ref = parse_image_ref(image["image"], default_host=target.host)
        except ReferenceInvalid as exc:
            raise fixup_error(target, image["image"], str(exc)) from None
        pinned = image.get("contentDigest")
        lookup = ref.with_digest(pinned) if pinned and ref.digest is None else ref
        try:
            out[name] = await resolve(registries, lookup)
        except ClientError as exc:
            raise fixup_error(target, ref, _cause(lookup, exc)) from None
    return out


async def resolve_base(
    registries: Registries, target: ImageRef, reference: str, platform: Platform | None
) -> tuple[Resolved, BaseImage, Platform]:
    """The ``--base`` image for ``platform`` (picked out of a multi-arch base), with its config."""
    try:
        ref = parse_image_ref(reference, default_host=target.host)
    except ReferenceInvalid as exc:
        raise AppPushError(f"--base: {exc}") from None
    try:
        found = await resolve(registries, ref)
        manifest = parse_manifest(found.content, found.media_type)
        if manifest.is_index:
            wanted = platform or DEFAULT_PLATFORM
            child = _pick_platform(manifest, wanted)
            if child is None:
                available = ", ".join(str(d.platform) for d in manifest.manifests if d.platform) or "none"
                raise AppPushError(f"base image {ref} has no image for {wanted} (it has: {available})")
            found = await resolve(registries, ref.with_digest(child))
            manifest = parse_manifest(found.content, found.media_type)
        if manifest.config is None:
            raise AppPushError(f"base image {ref} is not an image")
        config = await found.client.read_blob(ref.repository, manifest.config.digest)
    except ClientError as exc:
        raise AppPushError(f'failed to resolve base image "{ref}": {_cause(ref, exc)}') from None
    except RegistryError as exc:
        raise AppPushError(f"base image {ref}: {exc.message}") from None
    try:
        parsed = json.loads(config)
    except ValueError:
        raise AppPushError(f"base image {ref}: its config is not JSON") from None
    if not isinstance(parsed, dict):
        raise AppPushError(f"base image {ref}: its config is not an image config")
    base = BaseImage(
        str(ref), tuple(LayerDescriptor(d.media_type, d.digest, d.size) for d in manifest.layers), parsed
    )
    base_platform = base.platform
    if platform is None:
        platform = base_platform or DEFAULT_PLATFORM
    elif base_platform is not None and (base_platform.os, base_platform.architecture) != (
        platform.os,
        platform.architecture,
    ):
        raise AppPushError(f"base image {ref} is {base_platform}, not {platform} (--platform)")
    return found, base, platform


def _pick_platform(index: Manifest, wanted: Platform) -> str | None:
    for d in index.manifests:
        p = d.platform
        if (
            p
            and p.os == wanted.os
            and p.architecture == wanted.architecture
            and (wanted.variant is None or p.variant == wanted.variant)
        ):
            return d.digest
    return None


async def _put_first_accepted(
    client: RegistryClient, repo: str, tag: str | None, candidates: list[tuple[bytes, str]]
) -> tuple[bytes, str, str]:
    """Push the first of ``candidates`` the registry accepts (cnab-to-oci's fallbacks), as ``tag`` or,
    without one, by its own digest. When the registry refuses them all, raise the first refusal:
    it names the real problem."""
    first: ClientError | None = None
    for content, media_type in candidates:
        try:
            digest = await client.put_manifest(repo, tag or str(compute(content)), content, media_type)
            return content, media_type, digest
        except ClientError as exc:
            if exc.status not in _REFUSED:
                raise
            first = first or exc
    assert first is not None
    raise first


async def push_app(
    source: AppSource,
    target: ImageRef,
    registries: Registries,
    reporter: Reporter,
    platform: Platform | None = None,
    base: str | None = None,
) -> PushResult:
    """Push ``source`` as the application ``target`` (``HOST/NS/REPO:TAG``); see the module docstring."""
    if target.digest is not None:
        raise AppPushError(f"--tag {target}: push to a tag, not a digest")
    target = target if target.tag else target.with_tag("latest")
    repo = target.repository
    client = registries.client(target.host)
    invocation_ref = invocation_reference(target)
    bundle = bundles.with_invocation_image(source.bundle, str(invocation_ref))

    # 1. Resolve everything before writing anything.
    components = await resolve_components(registries, target, bundle)
    base_image: BaseImage | None = None
    base_found: Resolved | None = None
    if base is not None:
        base_found, base_image, platform = await resolve_base(registries, target, base, platform)
    platform = platform or DEFAULT_PLATFORM

    try:
        # 2. Components into the target repository, by digest.
        for name, found in components.items():
            try:
                await copy_manifest(
                    found.client,
                    found.ref.repository,
                    client,
                    repo,
                    found.content,
                    found.media_type,
                    found.digest,
                    reporter,
                    name,
                )
            except ClientError as exc:
                raise AppPushError(
                    f'fixing up "{target}" for push: failed to copy "{found.ref}" into {target.name}: {exc}'
                ) from None
        descriptors = {name: found.descriptor for name, found in components.items()}

        # 3. The invocation image, tagged TAG-invoc.
        inner_bundle = bundles.fixed_bundle(bundle, None, descriptors)
        files = layer_files(bundles.canonical_json(inner_bundle), source.files, source.directory)
        labels = {
            "org.opencontainers.image.title": str(bundle["name"]),
            "org.opencontainers.image.version": str(bundle["version"]),
        }
        try:
            image = build_invocation_image(files, platform, base_image, labels)
        except ValueError as exc:
            raise AppPushError(str(exc)) from None
        if base_found is not None:
            for layer in image.base_layers:
                await copy_blob(
                    base_found.client,
                    base_found.ref.repository,
                    client,
                    repo,
                    layer.digest,
                    layer.size,
                    reporter,
                    "base",
                )
        for label, data in (("invocation", image.layer), ("invocation", image.config)):
            task = reporter.task(f"{label} {str(compute(data))[7:19]}", len(data))
            try:
                await client.push_blob(repo, str(compute(data)), data, progress=task.advance)
            finally:
                task.finish()
        invocation_digest = await client.put_manifest(
            repo, invocation_ref.tag or "", image.manifest, image.media_type
        )
        if invocation_digest != image.digest:
            raise AppPushError(
                f"{invocation_ref}: the registry stored {invocation_digest}, not {image.digest}"
            )
        reporter.line(str(invocation_ref))
        invocation = bundles.Descriptor(image.media_type, image.digest, len(image.manifest))

        # 4. The bundle config: bundle.json naming every digest, and its manifest, by digest.
        final = bundles.fixed_bundle(inner_bundle, invocation, {})
        config_blob = bundles.canonical_json(final)
        config_digest = str(compute(config_blob))
        await client.push_blob(repo, config_digest, config_blob)
        config_content, config_type, config_manifest_digest = await _put_first_accepted(
            client, repo, None, bundles.config_manifest_candidates(config_blob)
        )
        config_descriptor = bundles.Descriptor(config_type, config_manifest_digest, len(config_content))

        # 5. The bundle index, tagged TAG.
        index_candidates = [
            (bundles.bundle_index(final, config_descriptor, invocation, descriptors), mt.OCI_INDEX),
            (
                bundles.bundle_index(
                    final, config_descriptor, invocation, descriptors, docker_manifest_list=True
                ),
                mt.DOCKER_MANIFEST_LIST,
            ),
        ]
        _, index_type, digest = await _put_first_accepted(
            client, repo, target.tag or "latest", index_candidates
        )
    except ClientError as exc:
        raise AppPushError(str(exc)) from None
    reporter.line(f"Successfully pushed bundle to {target}. Digest is {digest}.")
    config_media_type = parse_manifest(config_content, config_type).config.media_type  # type: ignore[union-attr]
    return PushResult(
        target, digest, invocation_ref, image.digest, descriptors, final, config_media_type, index_type
    )
