"""Image references as the app client takes them: ``HOST/NAMESPACE/REPO[:TAG][@DIGEST]``.

A reference whose first component is not a registry host (no ``.`` or ``:``, not ``localhost``)
is *relative*: it names a repository of the registry the application is pushed to. So with
the target ``registry.example.com/lab/app:1``, ``lab/web:2`` means
``registry.example.com/lab/web:2``. There is no Docker Hub default: Moorage pushes bundles to
one registry and resolves their images there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from moorage.oci.digest import parse_digest
from moorage.oci.errors import RegistryError
from moorage.oci.reference import is_valid_tag, validate_name

_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)
DEFAULT_TAG = "latest"


class ReferenceInvalid(ValueError):
    """A reference that cannot name an image."""


@dataclass(frozen=True, slots=True)
class ImageRef:
    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What to ask ``/v2/<repo>/manifests/`` for: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def name(self) -> str:
        """``HOST/REPO`` without tag or digest."""
        return f"{self.host}/{self.repository}"

    def with_tag(self, tag: str) -> ImageRef:
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> ImageRef:
        return replace(self, tag=None, digest=digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def is_host(component: str) -> bool:
    """Whether the first component of a reference names a registry (Docker's rule)."""
    return (
        "." in component or ":" in component or component == "localhost" or component.startswith("[")
    ) and (_HOST_RE.match(component) is not None)


def parse_image_ref(text: str, default_host: str | None = None) -> ImageRef:
    """Parse ``[HOST/]REPO[:TAG][@DIGEST]``; a reference without tag or digest gets ``:latest``.

    ``default_host`` resolves relative references; without it a reference must name its host.
    Raises ``ReferenceInvalid`` with a message that quotes the reference.
    """
    value = text.strip()
    if not value:
        raise ReferenceInvalid("an image reference cannot be empty")
    rest, digest = value, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        try:
            parse_digest(digest)
        except RegistryError as exc:
            raise ReferenceInvalid(f"invalid reference {text!r}: {exc.message}") from None
    first, slash, remainder = rest.partition("/")
    if slash and is_host(first):
        host, path = first, remainder
    elif default_host is not None:
        host, path = default_host, rest
    else:
        raise ReferenceInvalid(
            f"invalid reference {text!r}: it must start with the registry, as in HOST/NAMESPACE/REPO:TAG"
        )
    tag = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        if not is_valid_tag(tag):
            raise ReferenceInvalid(f"invalid reference {text!r}: {tag!r} is not a valid tag")
    try:
        validate_name(path)
    except RegistryError as exc:
        raise ReferenceInvalid(f"invalid reference {text!r}: {exc.message}") from None
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return ImageRef(host, path, tag, digest)
