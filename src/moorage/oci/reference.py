"""Repository names and tags, validated as the distribution-spec requires."""

from __future__ import annotations

import re

from moorage.oci.errors import NameInvalid, TagInvalid

# distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z")
_TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\Z")

#: Longest repository name accepted (the spec lets registries choose; distribution uses 255).
MAX_NAME_LENGTH = 255


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise ``NameInvalid``."""
    if len(name) > MAX_NAME_LENGTH:
        raise NameInvalid(
            f"repository name is longer than {MAX_NAME_LENGTH} characters", {"name": name[:300]}
        )
    if not _NAME_RE.match(name):
        raise NameInvalid(
            f"invalid repository name {name[:300]!r}: use lowercase path components of "
            "[a-z0-9] separated by '.', '_', '__' or '-', joined by '/'",
            {"name": name[:300]},
        )
    return name


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _NAME_RE.match(name) is not None


def is_valid_tag(tag: str) -> bool:
    return _TAG_RE.match(tag) is not None


def validate_tag(tag: str) -> str:
    if not is_valid_tag(tag):
        raise TagInvalid(
            f"invalid tag {tag[:200]!r}: at most 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'",
            {"tag": tag[:200]},
        )
    return tag


_NAMESPACE_RE = re.compile(rf"^{_COMPONENT}\Z")
MAX_NAMESPACE_LENGTH = 64


def is_valid_namespace(name: str) -> bool:
    """A user, organization or team name: one repository-name path component, at most 64 characters."""
    return len(name) <= MAX_NAMESPACE_LENGTH and _NAMESPACE_RE.match(name) is not None


def namespace_of(repository: str) -> str:
    """The namespace a repository lives in: its first path component."""
    return repository.split("/", 1)[0]
