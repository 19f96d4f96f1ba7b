"""HTTP byte ranges: ``Range`` on blob GET, ``Content-Range`` on upload PATCH."""

from __future__ import annotations

import re

from moorage.oci.errors import RangeInvalid

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(\d+|\*))?$")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse a single-range ``Range`` header against a resource of ``size`` bytes.

    Returns ``(start, end)`` with ``end`` inclusive; ``None`` when the header should be
    ignored (not a single ``bytes`` range: the whole resource is sent). Raises
    ``RangeInvalid`` when the range cannot be satisfied (HTTP 416).
    """
    match = _RANGE_RE.match(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise RangeInvalid("range not satisfiable", {"size": size})
        return max(0, size - length), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # syntactically invalid: ignored
    if start >= size:
        raise RangeInvalid("range not satisfiable", {"size": size})
    return start, min(end, size - 1)


def parse_content_range(header: str) -> tuple[int, int]:
    """Parse an upload chunk's ``Content-Range`` (``start-end``, inclusive)."""
    match = _CONTENT_RANGE_RE.match(header.strip())
    if match is None:
        raise RangeInvalid(f"malformed Content-Range {header[:100]!r}")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise RangeInvalid(f"Content-Range end before start: {header[:100]!r}")
    return start, end
