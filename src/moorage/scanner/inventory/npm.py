"""npm: ``node_modules/<name>/package.json`` and ``node_modules/@scope/<name>/package.json``."""

from __future__ import annotations

import json
import re

from .models import Component, ParseError, ParseResult, make_purl

__all__ = ["is_npm_package", "parse_package_json"]

_PACKAGE_JSON = re.compile(r"(?:^|/)node_modules/(?:@[^/]+/)?[^/@.][^/]*/package\.json$")


def is_npm_package(path: str) -> bool:
    """A package's own manifest, not one of the ``package.json`` files nested inside its folders."""
    return _PACKAGE_JSON.search(path) is not None


def parse_package_json(data: bytes, path: str, layer: str) -> ParseResult:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ParseError("package.json is not an object")
    name, version = document.get("name"), document.get("version")
    if document.get("private") is True and not version:
        return ParseResult()
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise ParseError("no string name and version")
    namespace, _, short = name.rpartition("/")
    component = Component(
        name=name,
        version=version,
        ecosystem="npm",
        purl=make_purl("npm", short, version, namespace or None),
        source_name=None,
        layer=layer,
        path=path,
    )
    return ParseResult(components=[component])
