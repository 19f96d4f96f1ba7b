"""What every ``/v2/`` handler receives."""

from __future__ import annotations

from dataclasses import dataclass

from moorage.registry.auth import RegistryAuth
from moorage.services.blobs import BlobService
from moorage.services.manifests import ManifestService
from moorage.services.repositories import RepositoryService


@dataclass(frozen=True, slots=True)
class RegistryContext:
    repositories: RepositoryService
    blobs: BlobService
    manifests: ManifestService
    auth: RegistryAuth
