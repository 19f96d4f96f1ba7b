"""The invocation image of an application: a real OCI image holding the CNAB layout.

Its one layer of our own (a gzip tar, reproducible: fixed owners, modes and times) holds::

    cnab/app/bundle.json                 the bundle, as pushed (less its own invocation digest)
    cnab/app/NAME.dockerapp/...          a docker-app's files (metadata.yml, docker-compose.yml,
                                         parameters.yml and every other file of the directory)
    cnab/app/...                         for a bundle.json, the files of the cnab/app/ directory
                                         next to it (the CNAB build layout), when there is one

On ``--base`` the image keeps the base image's layers, environment, entry point and history and
adds this layer on top (that is how ``docker app`` built it: ``FROM docker/cnab-app-base``,
``COPY . /cnab/app``). Without a base, the image is that one layer: a carrier of the app,
with the CNAB convention of ``/cnab/app/run`` as its command.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import posixpath
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from moorage.oci import mediatypes as mt
from moorage.oci.digest import compute
from moorage.oci.manifest import Platform

APP_ROOT = "cnab/app"
BUNDLE_PATH = f"{APP_ROOT}/bundle.json"
DEFAULT_PLATFORM = Platform("linux", "amd64")
HISTORY_COMMENT = "moorage app push: the CNAB application layout in /cnab/app"

#: Layer media types of Docker images and what they are called in an OCI manifest.
_OCI_LAYER_TYPE = {
    mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    ),
}


class PlatformInvalid(ValueError):
    pass


def parse_platform(text: str) -> Platform:
    """``os/architecture[/variant]`` (``linux/amd64``, ``linux/arm64/v8``)."""
    parts = text.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(
        p and p.replace("_", "").replace("-", "").isalnum() for p in parts
    ):
        raise PlatformInvalid(
            f"invalid platform {text!r}: expected OS/ARCHITECTURE[/VARIANT], as in linux/amd64"
        )
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


@dataclass(frozen=True, slots=True)
class LayerDescriptor:
    media_type: str
    digest: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True, slots=True)
class BaseImage:
    """What the invocation image takes from ``--base``: its layers and its image config."""

    reference: str
    layers: tuple[LayerDescriptor, ...]
    config: dict[str, Any]  # the parsed image config blob

    @property
    def platform(self) -> Platform | None:
        os_, arch = self.config.get("os"), self.config.get("architecture")
        if isinstance(os_, str) and isinstance(arch, str):
            variant = self.config.get("variant")
            return Platform(os_, arch, variant if isinstance(variant, str) and variant else None)
        return None


@dataclass(frozen=True, slots=True)
class InvocationImage:
    manifest: bytes
    config: bytes
    layer: bytes  # the app layer (gzip)
    base_layers: tuple[LayerDescriptor, ...] = field(default=())
    media_type: str = mt.OCI_MANIFEST

    @property
    def digest(self) -> str:
        return str(compute(self.manifest))

    @property
    def layer_digest(self) -> str:
        return str(compute(self.layer))

    @property
    def config_digest(self) -> str:
        return str(compute(self.config))


def layer_files(bundle_json: bytes, files: Mapping[str, bytes], directory: str | None) -> dict[str, bytes]:
    """Paths in the layer: ``cnab/app/bundle.json`` and ``files`` under ``cnab/app/[directory/]``."""
    prefix = f"{APP_ROOT}/{directory}" if directory else APP_ROOT
    out: dict[str, bytes] = {}
    for path, data in files.items():
        clean = posixpath.normpath(path)
        if clean.startswith(("../", "/")) or clean == "..":
            raise ValueError(f"{path!r} is outside the application directory")
        out[f"{prefix}/{clean}"] = data
    out[BUNDLE_PATH] = bundle_json
    return dict(sorted(out.items()))


def _mtime() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else 0


def layer_tar(files: Mapping[str, bytes]) -> tuple[bytes, str]:
    """A reproducible gzip tar of ``files``: ``(compressed, diff_id)``. Parent directories get
    entries of their own (0755); files are 0644, and 0755 for ``run`` scripts (CNAB's entry point)."""
    mtime = _mtime()
    directories = sorted({parent for p in files for parent in _parents(p)})
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in directories:
            tar.addfile(_info(directory + "/", tarfile.DIRTYPE, 0o755, mtime))
        for path in sorted(files):
            data = files[path]
            mode = 0o755 if posixpath.basename(path) == "run" else 0o644
            info = _info(path, tarfile.REGTYPE, mode, mtime)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    uncompressed = raw.getvalue()
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0) as gz:
        gz.write(uncompressed)
    return compressed.getvalue(), str(compute(uncompressed))


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _info(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build_invocation_image(
    files: Mapping[str, bytes],
    platform: Platform = DEFAULT_PLATFORM,
    base: BaseImage | None = None,
    labels: Mapping[str, str] | None = None,
) -> InvocationImage:
    """The OCI image: ``base``'s layers (if any) and one layer holding ``files`` (see ``layer_files``)."""
    layer, diff_id = layer_tar(files)
    base_config = copy.deepcopy(base.config) if base is not None else {}
    runtime: dict[str, Any] = dict(base_config.get("config") or {})
    if base is None:
        runtime = {"WorkingDir": "/" + APP_ROOT, "Cmd": ["/" + APP_ROOT + "/run"]}
    if labels:
        runtime["Labels"] = {**(runtime.get("Labels") or {}), **labels}
    rootfs = base_config.get("rootfs") or {}
    diff_ids = list(rootfs.get("diff_ids") or []) if base is not None else []
    if base is not None and len(diff_ids) != len(base.layers):
        raise ValueError(
            f"base image {base.reference} has {len(base.layers)} layers but its config lists "
            f"{len(diff_ids)} diff_ids"
        )
    config: dict[str, Any] = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        config["variant"] = platform.variant
    for key in ("created", "author", "os.version", "os.features"):
        if key in base_config:
            config[key] = base_config[key]
    config["config"] = runtime
    config["rootfs"] = {"type": "layers", "diff_ids": [*diff_ids, diff_id]}
    config["history"] = [*(base_config.get("history") or []), {"created_by": HISTORY_COMMENT}]
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    base_layers = tuple(
        LayerDescriptor(_OCI_LAYER_TYPE.get(d.media_type, d.media_type), d.digest, d.size)
        for d in (base.layers if base is not None else ())
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {
            "mediaType": mt.OCI_CONFIG,
            "digest": str(compute(config_bytes)),
            "size": len(config_bytes),
        },
        "layers": [
            *(d.as_json() for d in base_layers),
            LayerDescriptor(mt.OCI_LAYER_GZIP, str(compute(layer)), len(layer)).as_json(),
        ],
    }
    return InvocationImage(
        manifest=json.dumps(manifest, separators=(",", ":")).encode(),
        config=config_bytes,
        layer=layer,
        base_layers=base_layers,
    )


def extract_app_files(layer: bytes | BinaryIO, limit: int = 1 << 30) -> dict[str, bytes]:
    """Regular files under ``cnab/app/`` in a (gzip) layer, by path relative to ``cnab/app``.

    Links, devices, absolute paths and ``..`` are skipped: this reads what someone else pushed.
    """
    fileobj: BinaryIO = io.BytesIO(layer) if isinstance(layer, bytes) else layer
    out: dict[str, bytes] = {}
    total = 0
    with tarfile.open(fileobj=fileobj, mode="r:*") as tar:
        for member in tar:
            name = posixpath.normpath(member.name[2:] if member.name.startswith("./") else member.name)
            if not member.isreg() or name.startswith(("/", "..")) or not name.startswith(APP_ROOT + "/"):
                continue
            relative = name[len(APP_ROOT) + 1 :]
            total += member.size
            if total > limit:
                raise ValueError(f"the application files are larger than {limit >> 20} MiB")
            handle = tar.extractfile(member)
            if handle is not None:
                out[relative] = handle.read()
    return out
