"""Python distributions: ``*.dist-info/METADATA``, ``*.egg-info/PKG-INFO`` (and ``*.egg-info`` files)."""

from __future__ import annotations

from email.parser import BytesHeaderParser

from .models import Component, ParseError, ParseResult, make_purl

__all__ = ["is_python_metadata", "parse_python_metadata"]


def is_python_metadata(path: str) -> bool:
    return (
        path.endswith(".dist-info/METADATA")
        or path.endswith(".egg-info/PKG-INFO")
        or (path.endswith(".egg-info") and "/" in path)
    )


def parse_python_metadata(data: bytes, path: str, layer: str) -> ParseResult:
    """The ``Name`` and ``Version`` headers of core metadata (the body, the long description, is skipped)."""
    if b"\x00" in data[:4096]:
        raise ParseError("binary content, not core metadata")
    headers = BytesHeaderParser().parsebytes(data)
    name = (headers.get("Name") or "").strip()
    version = (headers.get("Version") or "").strip()
    if not name or not version:
        raise ParseError("no Name or Version header")
    component = Component(
        name=name,
        version=version,
        ecosystem="PyPI",
        purl=make_purl("pypi", name, version),
        source_name=None,
        layer=layer,
        path=path,
    )
    return ParseResult(components=[component])
