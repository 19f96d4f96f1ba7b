"""Matching ``/v2/`` paths. Repository names contain slashes, so routes are matched from the
end of the path; the name is whatever precedes the route's fixed suffix."""

from __future__ import annotations

import re
from dataclasses import dataclass

# (route, a literal every matching path contains, pattern): the literal is tested first, so a
# request does not run the patterns (each scans the whole path) of the routes before its own.
_ROUTES: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("base", "/v2", re.compile(r"^/v2/?$")),
    ("catalog", "/v2/_catalog", re.compile(r"^/v2/_catalog$")),
    ("tags", "/tags/list", re.compile(r"^/v2/(?P<name>.+)/tags/list$")),
    ("manifest", "/manifests/", re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")),
    ("upload_start", "/blobs/uploads", re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/?$")),
    ("upload", "/blobs/uploads/", re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<upload>[^/]+)$")),
    ("blob", "/blobs/", re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$")),
    ("referrers", "/referrers/", re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$")),
)


@dataclass(frozen=True, slots=True)
class Match:
    route: str
    name: str = ""
    reference: str = ""  # tag or digest, upload id, or digest, by route


def match(path: str) -> Match | None:
    for route, literal, pattern in _ROUTES:
        if literal not in path:
            continue
        m = pattern.match(path)
        if m is None:
            continue
        groups = m.groupdict()
        ref = groups.get("reference") or groups.get("upload") or groups.get("digest") or ""
        return Match(route, groups.get("name") or "", ref)
    return None
