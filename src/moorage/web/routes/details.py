"""What a tag or manifest holds: an image's layers, components and vulnerabilities, a multi-arch
image's platforms, an application's bundle and its components' scans; overrides and the SBOM."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from moorage.oci.classify import APPLICATION, MULTI_ARCH
from moorage.services import errors as svc
from moorage.services.access import Level
from moorage.services.scanning import SEVERITIES
from moorage.web.routes.repositories import SCAN_ACTIVE, registry_host
from moorage.web.templating import repo_url
from moorage.web.view import View, page

SEVERITY_ORDER = {s: i for i, s in enumerate(SEVERITIES)}
DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


def _sorted_findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        findings,
        key=lambda f: (
            SEVERITY_ORDER.get((f.get("severity") or "").lower(), 9),
            -(f.get("score") or 0),
            f["id"],
            f["package"],
        ),
    )


def vulnerability_links(finding: dict[str, Any]) -> list[tuple[str, str]]:
    """Where to read about a vulnerability: OSV for every id, NVD for CVEs, GitHub for GHSAs."""
    ids = [finding["id"], *[a for a in finding.get("aliases") or [] if a != finding["id"]]]
    links = [("OSV", f"https://osv.dev/vulnerability/{finding['id']}")]
    for ident in ids:
        if ident.startswith("CVE-"):
            links.append(("NVD", f"https://nvd.nist.gov/vuln/detail/{ident}"))
        elif ident.startswith("GHSA-"):
            links.append(("GitHub", f"https://github.com/advisories/{ident}"))
    return list(dict.fromkeys(links))


async def _components(view: View, name: str, digest: str) -> list[dict[str, str]] | None:
    """An image's packages, from its SBOM; ``None`` until it has been scanned."""
    try:
        bom = await view.services.scanning.sbom(view.user, name, digest)
    except svc.NotFound:
        return None
    out = []
    for c in bom.get("components", []):
        props = {p.get("name"): p.get("value") for p in c.get("properties", [])}
        out.append(
            {
                "name": c.get("name", ""),
                "version": c.get("version", ""),
                "ecosystem": props.get("moorage:ecosystem") or "",
                "layer": props.get("moorage:layer") or "",
                "path": props.get("moorage:path") or "",
                "purl": c.get("purl", ""),
            }
        )
    out.sort(key=lambda c: (c["ecosystem"], c["name"].lower(), c["version"]))
    return out


async def _render(view: View, name: str, digest: str, tag: str | None) -> Response:
    repo = await view.services.repositories.get(view.user, name)
    level = Level.parse(repo.level)
    detail = await view.services.artifacts.manifest_detail(view.user, name, digest)
    report = await view.services.scanning.vulnerabilities(view.user, name, digest)
    severity = view.query("severity").lower()
    if severity not in SEVERITIES:
        severity = ""
    findings = _sorted_findings(report["findings"])
    shown = [f for f in findings if not severity or (f.get("severity") or "").lower() == severity]
    layer_index = {layer["digest"]: i + 1 for i, layer in enumerate(detail.get("layers") or [])}
    kind = detail["type"]
    components = None
    if kind not in (MULTI_ARCH, APPLICATION) and report["status"] == "completed":
        components = await _components(view, name, digest)
    bundle_components: list[dict[str, Any]] = []
    if kind == APPLICATION:
        scans = {c["digest"]: c for c in report.get("components", [])}
        bundle = detail["bundle"]
        for role, images in (("invocation", bundle["invocationImages"]), ("component", bundle["components"])):
            for image in images:
                bundle_components.append({**image, "role": role, "scan": scans.get(image["digest"])})
    context: dict[str, Any] = {
        "repo": repo,
        "tag": tag,
        "detail": detail,
        "kind": kind,
        "report": report,
        "findings": shown,
        "all_count": len(findings),
        "severity": severity,
        "severities": SEVERITIES,
        "hidden": _sorted_findings(report["hidden"]),
        "layer_index": layer_index,
        "components": components,
        "bundle_components": bundle_components,
        "may_write": level >= Level.READ_WRITE,
        "may_admin": level >= Level.ADMIN,
        "host": registry_host(view),
        "links": vulnerability_links,
        "scan_active": report["status"] in SCAN_ACTIVE,
        "config_json": json.dumps(detail.get("config"), indent=2)[:20000] if detail.get("config") else "",
        "here": view.request.url.path,
    }
    if view.is_htmx and view.request.headers.get("hx-target") == "vulnerabilities":
        return view.render("details/_vulnerabilities.html", **context)
    return view.render("details/manifest.html", **context)


async def tag_details(view: View) -> Response:
    name = view.request.path_params["name"]
    tag = view.request.path_params["tag"]
    tags = await view.services.artifacts.list_tags(view.user, name)
    found = next((t for t in tags if t["name"] == tag), None)
    if found is None:
        raise svc.NotFound(
            f"Tag {tag!r} is not in {name} (any more): it may have been deleted meanwhile. "
            "The repository page lists the tags it holds now."
        )
    return await _render(view, name, found["digest"], tag)


def _digest(view: View) -> str:
    digest = str(view.request.path_params["digest"])
    if not DIGEST.match(digest):
        raise svc.NotFound(f"{digest!r} is not a manifest digest")
    return digest


async def manifest_details(view: View) -> Response:
    name = view.request.path_params["name"]
    return await _render(view, name, _digest(view), view.query("tag", max_length=128) or None)


async def sbom(view: View) -> Response:
    name = view.request.path_params["name"]
    digest = _digest(view)
    document = await view.services.scanning.sbom(view.user, name, digest)
    filename = f"{name.replace('/', '_')}_{digest.split(':', 1)[1][:12]}.cdx.json"
    return Response(
        json.dumps(document, indent=2),
        media_type="application/vnd.cyclonedx+json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def add_override(view: View) -> Response:
    name = view.request.path_params["name"]
    digest = _digest(view)
    form = await view.form()
    vuln = str(form.get("id", "")).strip()[:255]
    package = str(form.get("package", "")).strip()[:255] or "*"
    note = str(form.get("note", "")).strip()[:2000]
    back = _back(form, name, digest)
    if not vuln:
        view.flash("Say which vulnerability to hide.", "error")
        return view.redirect(back)
    if not note:
        view.flash(
            f"Add a note saying why {vuln} is hidden: it is shown to everyone who reads the scan.", "error"
        )
        return view.redirect(back)
    await view.services.scanning.add_override(view.user, name, vuln, package, note)
    view.flash(f"{vuln} is now hidden for {'every package' if package == '*' else package} in {name}.")
    return view.redirect(back)


async def remove_override(view: View) -> Response:
    name = view.request.path_params["name"]
    digest = _digest(view)
    form = await view.form()
    vuln = str(form.get("id", "")).strip()[:255]
    package = str(form.get("package", "")).strip()[:255] or "*"
    try:
        await view.services.scanning.remove_override(view.user, name, vuln, package)
    except svc.NotFound as exc:
        view.flash(exc.message, "error")
    else:
        view.flash(f"{vuln} is shown again.")
    return view.redirect(_back(form, name, digest))


async def scan_manifest(view: View) -> Response:
    name = view.request.path_params["name"]
    digest = _digest(view)
    form = await view.form()
    await view.services.scanning.request_scan(view.user, name, digest)
    view.flash("Scan queued.")
    return view.redirect(_back(form, name, digest))


def _back(form: Any, name: str, digest: str) -> str:
    target = str(form.get("next", ""))
    prefix = repo_url(name) + "/-/"
    return target if target.startswith(prefix) and "//" not in target else repo_url(name, "manifests", digest)


N = "{name:path}"
M = f"/repositories/{N}/-/manifests/{{digest}}"
ROUTES: list[BaseRoute] = [
    Route(f"{M}/sbom", page(sbom), methods=["GET"]),
    Route(f"{M}/overrides", page(add_override), methods=["POST"]),
    Route(f"{M}/overrides/remove", page(remove_override), methods=["POST"]),
    Route(f"{M}/scan", page(scan_manifest), methods=["POST"]),
    Route(M, page(manifest_details), methods=["GET"]),
    Route(f"/repositories/{N}/-/tags/{{tag}}", page(tag_details), methods=["GET"]),
]
