"""Build (and read back) OCI image layouts on disk, byte for byte reproducible.

An OCI image layout is a directory with an ``oci-layout`` marker, an ``index.json`` naming
its tagged manifests (``org.opencontainers.image.ref.name``), and content-addressed
``blobs/sha256/<hex>``. ``skopeo copy oci:DIR:TAG ...`` reads it and ``skopeo copy ...
oci:DIR:TAG`` writes one.

Everything here is deterministic — fixed mtimes and owners in the tars, no timestamp in
the gzip header, sorted compact JSON — so a given image always has the same digests.
Docker schema 2 images are not built here: ``skopeo copy --format v2s2`` converts on copy.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
REF_NAME = "org.opencontainers.image.ref.name"

#: 2023-11-14T22:13:20Z, for every file in every layer and the config's ``created``.
FIXED_MTIME = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def as_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
ARMV7 = Platform("linux", "arm", "v7")
PLATFORMS = (AMD64, ARM64, ARMV7)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform is not None:
            out["platform"] = self.platform.as_json()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


def tar_gz(files: Mapping[str, bytes]) -> tuple[bytes, str]:
    """A gzip-compressed tar of ``files`` (path -> content): ``(compressed bytes, diff_id)``.

    Parent directories get their own entries, as in real image layers; a path ending in
    ``.sh`` or under ``bin/`` is executable.
    """
    directories = sorted({str(Path(p).parents[i]) for p in files for i in range(len(Path(p).parents) - 1)})
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for directory in directories:
            info = _tar_info(directory + "/", tarfile.DIRTYPE, 0o755)
            tar.addfile(info)
        for path in sorted(files):
            data = files[path]
            mode = 0o755 if path.endswith(".sh") or path.startswith("bin/") else 0o644
            info = _tar_info(path, tarfile.REGTYPE, mode)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    uncompressed = raw.getvalue()
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
        gz.write(uncompressed)
    return compressed.getvalue(), sha256(uncompressed)


def _tar_info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def layer_files(platform: Platform, count: int, salt: str = "") -> list[dict[str, bytes]]:
    """``count`` (1-3) layers of real-looking files: a base shared by every platform, then
    platform-specific ones. ``salt`` makes a different image with the same shape."""
    base = {
        "etc/os-release": b'NAME="Moorage Test Linux"\nID=moorage\nVERSION_ID=1\n',
        "etc/hostname": b"moorage\n",
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
    }
    app = {
        "usr/share/moorage/platform.txt": f"{platform}\n{salt}".encode(),
        "bin/hello.sh": f"#!/bin/sh\necho 'hello from {platform}{salt}'\n".encode(),
    }
    data = {"var/lib/moorage/data.bin": hashlib.sha512(f"{platform}{salt}".encode()).digest() * 512}
    return [base, app, data][: max(1, min(count, 3))]


@dataclass(frozen=True)
class Image:
    """A single-platform image held in memory: its manifest, config and layer blobs."""

    platform: Platform
    manifest: bytes
    config: bytes
    layers: tuple[bytes, ...]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(OCI_MANIFEST, self.digest, len(self.manifest), self.platform)

    @property
    def blobs(self) -> dict[str, bytes]:
        """Config and layers by digest (shared layers appear once)."""
        return {sha256(data): data for data in (self.config, *self.layers)}


def build_image(
    platform: Platform = AMD64,
    layers: Sequence[Mapping[str, bytes]] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """An OCI image for ``platform`` whose layers hold ``layers`` (default: two of ``layer_files``)."""
    layers = layers if layers is not None else layer_files(platform, 2)
    blobs, diff_ids = [], []
    for files in layers:
        blob, diff_id = tar_gz(files)
        blobs.append(blob)
        diff_ids.append(diff_id)
    config = canonical_json(
        {
            **platform.as_json(),
            "created": CREATED,
            "config": {"Cmd": ["/bin/hello.sh"], "Env": ["PATH=/usr/bin:/bin"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [
                {"created": CREATED, "created_by": f"moorage e2e layer {i}"} for i in range(len(layers))
            ],
        }
    )
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": Descriptor(OCI_CONFIG, sha256(config), len(config)).as_json(),
        "layers": [Descriptor(OCI_LAYER_GZIP, sha256(b), len(b)).as_json() for b in blobs],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return Image(platform, canonical_json(manifest), config, tuple(blobs))


class Layout:
    """An OCI image layout directory that this test writes (or that skopeo wrote)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        marker = root / "oci-layout"
        if not marker.exists():
            marker.write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
        if not (root / "index.json").exists():
            self._write_index([])

    # -- writing ------------------------------------------------------------------------
    def add_blob(self, data: bytes) -> str:
        digest = sha256(data)
        path = self.blob_path(digest)
        if not path.exists():
            path.write_bytes(data)
        return digest

    def add_image(
        self,
        platform: Platform = AMD64,
        layers: Sequence[Mapping[str, bytes]] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """An image manifest with its config and gzip layers; returns its descriptor."""
        image = build_image(platform, layers, annotations)
        for data in image.blobs.values():
            self.add_blob(data)
        self.add_blob(image.manifest)
        return image.descriptor

    def add_index(self, images: Sequence[Descriptor]) -> Descriptor:
        """An OCI image index over ``images`` (each with its platform)."""
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d.as_json() for d in images]}
        data = canonical_json(index)
        return Descriptor(OCI_INDEX, self.add_blob(data), len(data))

    def tag(self, descriptor: Descriptor, tag: str) -> None:
        """Name ``descriptor`` ``tag`` in ``index.json`` (what ``oci:DIR:TAG`` refers to)."""
        entries = [e for e in self._read_index() if e.get("annotations", {}).get(REF_NAME) != tag]
        entry = Descriptor(
            descriptor.media_type, descriptor.digest, descriptor.size, annotations={REF_NAME: tag}
        )
        entries.append(entry.as_json())
        self._write_index(entries)

    # -- reading ------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        algorithm, encoded = digest.split(":", 1)
        return self.root / "blobs" / algorithm / encoded

    def blob(self, digest: str) -> bytes:
        data = self.blob_path(digest).read_bytes()
        assert sha256(data) == digest, f"blob {digest} in {self.root} does not match its digest"
        return data

    def json_blob(self, digest: str) -> dict[str, Any]:
        document = json.loads(self.blob(digest))
        assert isinstance(document, dict)
        return document

    def resolve(self, tag: str) -> Descriptor:
        """The descriptor ``index.json`` names ``tag``."""
        for entry in self._read_index():
            if entry.get("annotations", {}).get(REF_NAME) == tag:
                return Descriptor(entry["mediaType"], entry["digest"], entry["size"])
        raise KeyError(f"{tag!r} is not in {self.root / 'index.json'}")

    def walk(self, digest: str) -> Iterator[tuple[str, str]]:
        """``(kind, digest)`` for a manifest and everything it references, depth first;
        kind is ``index``, ``manifest``, ``config`` or ``layer``."""
        document = self.json_blob(digest)
        media_type = document.get("mediaType")
        if media_type in INDEX_TYPES or "manifests" in document:
            yield "index", digest
            for child in document["manifests"]:
                yield from self.walk(child["digest"])
            return
        yield "manifest", digest
        yield "config", document["config"]["digest"]
        for layer in document["layers"]:
            yield "layer", layer["digest"]

    def _read_index(self) -> list[dict[str, Any]]:
        entries = json.loads((self.root / "index.json").read_bytes()).get("manifests", [])
        assert isinstance(entries, list)
        return entries

    def _write_index(self, entries: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        (self.root / "index.json").write_bytes(canonical_json(index))


def single_platform_layout(
    root: Path, tag: str = "v1", platform: Platform = AMD64, layers: int = 2, salt: str = ""
) -> tuple[Layout, Descriptor]:
    """A layout holding one image for ``platform``, tagged ``tag``."""
    layout = Layout(root)
    image = layout.add_image(platform, layer_files(platform, layers, salt))
    layout.tag(image, tag)
    return layout, image


def multi_platform_layout(
    root: Path, tag: str = "multi", platforms: Sequence[Platform] = PLATFORMS, salt: str = ""
) -> tuple[Layout, Descriptor]:
    """A layout holding an OCI index over one image per platform (1, 2, 3... layers), tagged ``tag``."""
    layout = Layout(root)
    images = [layout.add_image(p, layer_files(p, 1 + i % 3, salt)) for i, p in enumerate(platforms)]
    index = layout.add_index(images)
    layout.tag(index, tag)
    return layout, index
