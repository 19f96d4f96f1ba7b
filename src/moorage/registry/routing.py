"""Matching ``/v2/`` paths. Repository names contain slashes, so routes are matched from the
end of the path; the name is whatever precedes the route's fixed suffix."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("base", re.compile(r"^/v2/?$")),
    ("catalog", re.compile(r"^/v2/_catalog$")),
    ("tags", re.compile(r"^/v2/(?P<name>.+)/tags/list$")),
    ("manifest", re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")),
    ("upload_start", re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/?$")),
    ("upload", re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<upload>[^/]+)$")),
    ("blob", re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$")),
    ("referrers", re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$")),
)


@dataclass(frozen=True, slots=True)
class Match:
    route: str
    name: str = ""
    reference: str = ""  # tag or digest, upload id, or digest, by route


def match(path: str) -> Match | None:
    for route, pattern in _ROUTES:
        m = pattern.match(path)
        if m is None:
            continue
        groups = m.groupdict()
        ref = groups.get("reference") or groups.get("upload") or groups.get("digest") or ""
        return Match(route, groups.get("name") or "", ref)
    return None
