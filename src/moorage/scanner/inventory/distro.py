"""The distribution (``os-release``) and the identity it gives to operating system packages."""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from urllib.parse import unquote

from packageurl import PackageURL

from .models import Component, Distro, ParseError, make_purl

__all__ = ["OS_RELEASE_PATHS", "os_component", "os_ecosystem", "package_family", "parse_os_release", "rebase"]

#: in order of preference (``etc/os-release`` is often a symlink to the other one)
OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")

#: the OSV ecosystem each family of OS packages gets when the image has no os-release at all
_PLACEHOLDER = {"deb": "Debian", "apk": "Alpine", "rpm": "Red Hat"}
_FAMILIES = {
    "debian": "deb",
    "ubuntu": "deb",
    "alpine": "apk",
    "almalinux": "rpm",
    "rocky": "rpm",
    "rhel": "rpm",
    "centos": "rpm",
    "fedora": "rpm",
    "ol": "rpm",
    "amzn": "rpm",
    "opensuse": "rpm",
    "sles": "rpm",
}
_LINE = re.compile(r"^([A-Za-z0-9_]+)=(.*)$")


def parse_os_release(data: bytes) -> Distro:
    """A ``Distro`` from the content of an os-release file; ``ParseError`` if it names no ``ID``."""
    fields: dict[str, str] = {}
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        value = match.group(2)
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value.strip("\"'")]
        fields[match.group(1)] = " ".join(words)
    distro_id = fields.get("ID", "").strip().lower()
    if not distro_id:
        raise ParseError("os-release has no ID")
    distro = Distro(
        id=distro_id,
        version_id=fields.get("VERSION_ID", "").strip(),
        ecosystem=None,
        id_like=tuple(fields.get("ID_LIKE", "").lower().split()),
        version_codename=fields.get("VERSION_CODENAME", "").strip(),
    )
    return replace(distro, ecosystem=os_ecosystem(distro, lts="LTS" in fields.get("VERSION", "")))


def _numbers(version: str, count: int) -> str | None:
    match = re.match(rf"^v?(\d+(?:\.\d+){{0,{count - 1}}})", version)
    if not match:
        return None
    parts = match.group(1).split(".")
    return ".".join(parts) if len(parts) == count else None


def os_ecosystem(distro: Distro, lts: bool = False) -> str | None:
    """The OSV ecosystem of a distribution's packages, ``None`` when OSV has none for it."""
    version = distro.version_id
    if distro.id == "debian":
        major = _numbers(version, 1)
        return f"Debian:{major}" if major else "Debian"
    if distro.id == "ubuntu":
        release = _numbers(version, 2)
        if not release:
            return "Ubuntu"
        return f"Ubuntu:{release}:LTS" if lts else f"Ubuntu:{release}"
    if distro.id == "alpine":
        release = _numbers(version, 2)
        return f"Alpine:v{release}" if release else "Alpine"
    if distro.id == "almalinux":
        major = _numbers(version, 1)
        return f"AlmaLinux:{major}" if major else "AlmaLinux"
    if distro.id == "rocky":
        major = _numbers(version, 1)
        return f"Rocky Linux:{major}" if major else "Rocky Linux"
    return None


def package_family(distro: Distro) -> str | None:
    """``deb``, ``apk`` or ``rpm``: the kind of OS packages a distribution uses."""
    for name in (distro.id, *distro.id_like):
        if name in _FAMILIES:
            return _FAMILIES[name]
    return None


def _identity(purl_type: str, distro: Distro | None) -> tuple[str, str, str | None]:
    """(ecosystem, purl namespace, distro qualifier) of an OS package under ``distro``."""
    default_ns = {"deb": "debian", "apk": "alpine", "rpm": "redhat"}[purl_type]
    if distro is None or package_family(distro) != purl_type:
        return _PLACEHOLDER[purl_type], default_ns, None
    qualifier = f"{distro.id}-{distro.version_id}" if distro.version_id else distro.id
    return distro.ecosystem or _PLACEHOLDER[purl_type], distro.id, qualifier


def os_component(
    purl_type: str,
    *,
    name: str,
    version: str,
    arch: str | None,
    source_name: str | None,
    source_version: str | None,
    layer: str,
    path: str,
    distro: Distro | None,
) -> Component:
    ecosystem, namespace, qualifier = _identity(purl_type, distro)
    qualifiers = {"arch": arch or "", "distro": qualifier or ""}
    return Component(
        name=name,
        version=version,
        ecosystem=ecosystem,
        purl=make_purl(purl_type, name, version, namespace, qualifiers),
        source_name=source_name,
        layer=layer,
        path=path,
        source_version=source_version,
    )


def _distro_qualifier(purl: str) -> str | None:
    """The ``distro`` qualifier of a purl string, read without parsing the whole purl."""
    query = purl.partition("?")[2].partition("#")[0]
    for pair in query.split("&") if query else ():
        key, _, value = pair.partition("=")
        if key == "distro":
            return unquote(value) or None
    return None


def rebase(component: Component, distro: Distro | None) -> Component:
    """An OS package seen under the image's final distribution (ecosystem and purl)."""
    purl_type = component.purl_type
    if purl_type not in _PLACEHOLDER:
        return component
    ecosystem, namespace, qualifier = _identity(purl_type, distro)
    if (
        ecosystem == component.ecosystem
        and component.purl.startswith(f"pkg:{purl_type}/{namespace}/")
        and _distro_qualifier(component.purl) == (qualifier or None)
    ):
        return component  # already seen under this distribution: no purl parsed and rebuilt
    purl = PackageURL.from_string(component.purl)
    qualifiers = dict(purl.qualifiers) if isinstance(purl.qualifiers, dict) else {}
    qualifiers.pop("distro", None)
    if qualifier:
        qualifiers["distro"] = qualifier
    new_purl = make_purl(purl_type, component.name, component.version, namespace, qualifiers)
    if new_purl == component.purl and ecosystem == component.ecosystem:
        return component
    return replace(component, ecosystem=ecosystem, purl=new_purl)
