"""Content digests (``algorithm:encoded``) as the OCI image-spec defines them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from moorage.oci.errors import DigestInvalid, Unsupported

# image-spec descriptor.md: algorithm-component [ algorithm-separator algorithm-component ]* ":" encoded
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)\Z")

#: Registered algorithms and the length of their lowercase hex encoding.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}


class Hasher(Protocol):
    """The part of ``hashlib`` hash objects Moorage uses."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...

    def copy(self) -> Hasher: ...


@dataclass(frozen=True, slots=True)
class Digest:
    """A validated digest of a registered algorithm."""

    algorithm: str
    encoded: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.encoded[:12]}"

    def hasher(self) -> Hasher:
        return new_hasher(self.algorithm)


def parse_digest(value: str) -> Digest:
    """Parse and validate a digest string; raise ``DigestInvalid`` or ``Unsupported``."""
    match = _DIGEST_RE.match(value)
    if match is None:
        raise DigestInvalid(f"invalid digest {value[:200]!r}", {"digest": value[:200]})
    algorithm, encoded = match.group(1), match.group(2)
    length = ALGORITHMS.get(algorithm)
    if length is None:
        raise Unsupported(
            f"digest algorithm {algorithm!r} is not supported (use sha256 or sha512)",
            {"digest": value[:200]},
        )
    if len(encoded) != length or not all(c in "0123456789abcdef" for c in encoded):
        raise DigestInvalid(
            f"invalid {algorithm} digest: expected {length} lowercase hex characters",
            {"digest": value[:200]},
        )
    return Digest(algorithm, encoded)


def is_digest(value: str) -> bool:
    """True when ``value`` is syntactically a digest (``alg:encoded``), whatever its algorithm."""
    return _DIGEST_RE.match(value) is not None and ":" in value


def new_hasher(algorithm: str = "sha256") -> Hasher:
    if algorithm not in ALGORITHMS:
        raise Unsupported(f"digest algorithm {algorithm!r} is not supported")
    return hashlib.new(algorithm)


def compute(data: bytes, algorithm: str = "sha256") -> Digest:
    """Digest of in-memory ``data``."""
    h = new_hasher(algorithm)
    h.update(data)
    return Digest(algorithm, h.hexdigest())
